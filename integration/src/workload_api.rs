//! A SPIFFE Workload API server for tests: `SpiffeWorkloadAPI.FetchX509SVID`
//! over gRPC on a Unix socket, as SPIRE's agent serves it, streaming an
//! `X509SVIDResponse` whenever the test pushes one. The messages are those of
//! the SPIFFE project's public `workload.proto` (field numbers as there);
//! requests without the `workload.spiffe.io: true` metadata are refused, as
//! the specification asks.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use prost::bytes::Bytes;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt as _};
use tonic::codegen::{http, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use x0tta6bl4_actors::svid::IssuedSvid;

/// `X509SVIDRequest`: no parameters.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct X509SvidRequest {}

/// `X509SVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidResponse {
    /// The SVIDs, each with its key and trust bundle.
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    /// DER CRLs.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub crl: Vec<Bytes>,
}

/// `X509SVID`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509Svid {
    /// The SPIFFE ID.
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// DER certificate chain, leaf first.
    #[prost(bytes = "bytes", tag = "2")]
    pub x509_svid: Bytes,
    /// DER PKCS#8 private key.
    #[prost(bytes = "bytes", tag = "3")]
    pub x509_svid_key: Bytes,
    /// DER certificates of the trust domain's bundle.
    #[prost(bytes = "bytes", tag = "4")]
    pub bundle: Bytes,
    /// Which SVID to use, when there are several.
    #[prost(string, tag = "5")]
    pub hint: String,
}

impl X509SvidResponse {
    /// A response carrying `svid`, with the CA certificates in `bundle_pem`.
    pub fn of(svid: &IssuedSvid, bundle_pem: &str) -> Self {
        let der = |pem: &str| -> Vec<u8> {
            x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
                .flat_map(|block| block.expect("PEM").contents)
                .collect()
        };
        Self {
            svids: vec![X509Svid {
                spiffe_id: svid.id.to_string(),
                x509_svid: Bytes::from(svid.cert_der.clone()),
                x509_svid_key: Bytes::from(der(&svid.key_pem)),
                bundle: Bytes::from(der(bundle_pem)),
                hint: String::new(),
            }],
            crl: Vec::new(),
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<X509SvidResponse, Status>> + Send>>;

/// The gRPC service: every caller follows the pushed responses.
#[derive(Clone)]
struct WorkloadApi {
    current: watch::Receiver<Option<X509SvidResponse>>,
}

struct FetchX509Svid(watch::Receiver<Option<X509SvidResponse>>);

impl ServerStreamingService<X509SvidRequest> for FetchX509Svid {
    type Response = X509SvidResponse;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<X509SvidRequest>) -> Self::Future {
        let current = self.0.clone();
        Box::pin(async move {
            let header = request.metadata().get("workload.spiffe.io");
            if header.is_none_or(|value| value != "true") {
                return Err(Status::invalid_argument("security header missing from request"));
            }
            let updates = tokio_stream::wrappers::WatchStream::new(current).filter_map(|pushed| pushed.map(Ok));
            Ok(Response::new(Box::pin(updates) as ResponseStream))
        })
    }
}

impl<B> Service<http::Request<B>> for WorkloadApi
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let current = self.current.clone();
        if request.uri().path() != "/SpiffeWorkloadAPI/FetchX509SVID" {
            return Box::pin(async { Ok(Status::unimplemented("only FetchX509SVID is served").into_http()) });
        }
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(FetchX509Svid(current), request).await)
        })
    }
}

impl NamedService for WorkloadApi {
    const NAME: &'static str = "SpiffeWorkloadAPI";
}

/// A running Workload API on a Unix socket; stops when dropped.
pub struct WorkloadApiServer {
    socket: PathBuf,
    push: watch::Sender<Option<X509SvidResponse>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl WorkloadApiServer {
    /// Serves on a new socket `agent.sock` in `dir`.
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (push, current) = watch::channel(None);
        let listener = runtime
            .block_on(async { tokio::net::UnixListener::bind(&socket) })
            .expect("socket");
        runtime.spawn(async move {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let served = tonic::transport::Server::builder()
                .add_service(WorkloadApi { current })
                .serve_with_incoming(incoming)
                .await;
            if let Err(error) = served {
                eprintln!("the Workload API fixture stopped: {error}");
            }
        });
        Self {
            socket,
            push,
            runtime: Some(runtime),
        }
    }

    /// `SPIFFE_ENDPOINT_SOCKET` for a workload of this server.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Streams `response` to every caller (and to later ones).
    pub fn push(&self, response: X509SvidResponse) {
        self.push.send_replace(Some(response));
    }
}

impl Drop for WorkloadApiServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

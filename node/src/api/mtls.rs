//! What the mTLS listener's handshake tells the API about a connection: the
//! client's certificate chain, if it presented one (rustls has already
//! checked it against the trust bundle; [`super::auth`] checks it again at
//! each change, against the CRL in force then).

use std::any::Any;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

/// A connection to the mTLS listener.
#[derive(Debug, Clone)]
pub struct MtlsConnection {
    /// The client's chain, leaf first, DER; `None` without a client certificate.
    pub chain: Option<Vec<Vec<u8>>>,
}

/// `HttpServer::on_connect` hook: marks connections that came over TLS.
pub fn on_connect(connection: &dyn Any, extensions: &mut Extensions) {
    if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect());
        extensions.insert(MtlsConnection { chain });
    }
}

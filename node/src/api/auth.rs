//! Who may use the HTTP API. Requests that change the node (every POST and
//! DELETE) need `Authorization: Bearer <token>` when a token is configured
//! (`http.token_file`, or `http.token` / `X0TTA6BL4_HTTP__TOKEN`), and are
//! refused outright when none is and the server listens beyond loopback.
//! Reads (GET views, `/metrics`, the dashboard) stay open unless
//! `http.protect_reads` is on; `/health` and `/ready` are always open, for
//! probes, and so is `/download/<token>` (the signed link is the
//! credential); the shop's orders name buyers and need credentials even to
//! read. Tokens are compared in constant time.
//!
//! With the mTLS listener (`http.tls.listen`) changes are taken there only,
//! from clients presenting an SVID of the trust domain that validates at the
//! time of the request (so a CRL refreshed since the handshake applies); the
//! plain listener serves reads.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::{header, Method, StatusCode};
use subtle::ConstantTimeEq as _;
use x0tta6bl4_actors::svid::{Trust, Usage, VerifiedSvid};

use super::error::ApiError;
use super::mtls::MtlsConnection;

/// The API's access rule, fixed at start.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
    loopback: bool,
    protect_reads: bool,
    mtls: Option<MtlsRule>,
}

/// Where changes are taken when the mTLS listener is on, and whom it trusts.
#[derive(Clone)]
struct MtlsRule {
    listen: SocketAddr,
    trust: Arc<Trust>,
}

/// What [`Access::check`] looks at in a request.
pub struct Asked<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The TLS facts, when the request came over the mTLS listener.
    pub mtls: Option<&'a MtlsConnection>,
}

/// The client SVID a request was allowed with, in its extensions for the
/// policy's `admin` rule.
#[derive(Debug, Clone)]
pub struct ClientSvid(pub VerifiedSvid);

impl Access {
    /// The rule for a server bound to `listen` with `token` (if any).
    pub fn new(listen: SocketAddr, token: Option<String>, protect_reads: bool) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
            loopback: listen.ip().is_loopback(),
            protect_reads,
            mtls: None,
        }
    }

    /// The same rule with changes taken only over mTLS on `listen`, from
    /// clients whose SVID `trust` validates.
    pub fn with_mtls(mut self, listen: SocketAddr, trust: Arc<Trust>) -> Self {
        self.mtls = Some(MtlsRule { listen, trust });
        self
    }

    /// What the start-up log says about it.
    pub fn describe(&self) -> String {
        let reads = if self.protect_reads { "need it too" } else { "are open" };
        if let Some(mtls) = &self.mtls {
            return format!(
                "API: changes only over mTLS at https://{} with a client SVID of {}; plain HTTP serves reads, which {reads}",
                mtls.listen,
                mtls.trust.trust_domain()
            );
        }
        match (&self.token, self.loopback) {
            (Some(_), _) => format!("API: changes need the bearer token; reads {reads}"),
            (None, true) => "API: open to loopback clients (no http.token_file set)".into(),
            (None, false) => "API: listening beyond loopback with no http.token_file: every change is refused \
                 (401) until one is set"
                .into(),
        }
    }

    /// Checks a request: `Ok` with the client SVID it was allowed with, if
    /// any; `Err` is the 401 or 403 to answer.
    pub fn check(&self, asked: &Asked<'_>) -> Result<Option<ClientSvid>, ApiError> {
        if !self.guards(asked.method, asked.path) {
            return Ok(None);
        }
        match (&self.mtls, asked.mtls) {
            (None, _) => self.check_token(asked.authorization).map(|()| None),
            (Some(rule), Some(connection)) => rule.check(connection).map(Some),
            (Some(_), None) if is_read(asked.method) => self.check_token(asked.authorization).map(|()| None),
            (Some(rule), None) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "changes_need_mtls",
                format!(
                    "this node takes changes over mTLS only: https://{} with a client SVID of {}",
                    rule.listen,
                    rule.trust.trust_domain()
                ),
            )),
        }
    }

    fn check_token(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        match &self.token {
            None if self.loopback => Ok(()),
            None => Err(unauthorized(
                "no_credentials",
                "this node listens beyond loopback and has no API token: set http.token_file (or \
                 X0TTA6BL4_HTTP__TOKEN) and send Authorization: Bearer <token>",
            )),
            Some(token) => {
                let given = authorization
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .unwrap_or_default();
                match bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    true => Ok(()),
                    false => Err(unauthorized(
                        "bad_token",
                        "missing or wrong bearer token (Authorization: Bearer <the token in http.token_file>)",
                    )),
                }
            }
        }
    }

    /// Whether `method` on `path` needs credentials.
    fn guards(&self, method: &Method, path: &str) -> bool {
        match (method, path) {
            (_, "/health" | "/ready") => false,
            // A download link is its own credential.
            (_, path) if path.starts_with("/download/") => false,
            // Orders name buyers: never open, whatever `protect_reads` says.
            (_, path) if path.starts_with("/api/v1/orders") => true,
            (method, _) if is_read(method) => self.protect_reads,
            _ => true,
        }
    }
}

impl MtlsRule {
    /// The client SVID of a request over mTLS, validated now.
    fn check(&self, connection: &MtlsConnection) -> Result<ClientSvid, ApiError> {
        let chain = connection.chain.as_deref().ok_or_else(|| {
            unauthorized(
                "no_client_svid",
                &format!(
                    "this request needs a client SVID of {} (present it as the TLS client certificate)",
                    self.trust.trust_domain()
                ),
            )
        })?;
        self.trust
            .validate(chain, Usage::Client)
            .map(ClientSvid)
            .map_err(|refusal| {
                unauthorized(
                    "bad_client_svid",
                    &format!("the client SVID is refused ({}): {refusal}", refusal.reason()),
                )
            })
    }
}

/// Whether `method` only reads.
fn is_read(method: &Method) -> bool {
    [Method::GET, Method::HEAD].contains(method)
}

/// A 401, counted in `x0tta_api_rejected_total{reason}` like every refusal.
fn unauthorized(reason: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, reason, message)
}

/// Middleware applying the [`Access`] rule in the app data.
pub async fn require(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    if let Some(access) = req.app_data::<actix_web::web::Data<Access>>() {
        let client = access.check(&Asked {
            method: req.method(),
            path: req.path(),
            authorization: req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            mtls: req.conn_data::<MtlsConnection>(),
        })?;
        if let Some(client) = client {
            req.extensions_mut().insert(client);
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError as _;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn ask(access: &Access, method: &Method, path: &str, authorization: Option<&str>) -> Result<(), ApiError> {
        access
            .check(&Asked {
                method,
                path,
                authorization,
                mtls: None,
            })
            .map(|_| ())
    }

    #[test]
    fn loopback_without_a_token_is_open_and_elsewhere_changes_are_refused() {
        let open = Access::new(addr("127.0.0.1:8080"), None, false);
        assert!(ask(&open, &Method::POST, "/api/v1/quarantine", None).is_ok());
        let exposed = Access::new(addr("10.0.0.1:8080"), None, false);
        let refused = ask(&exposed, &Method::POST, "/api/v1/quarantine", None).expect_err("refused");
        assert_eq!(refused.status_code(), StatusCode::UNAUTHORIZED);
        assert!(refused.to_string().contains("http.token_file"), "{refused}");
        assert!(
            ask(&exposed, &Method::GET, "/api/v1/status", None).is_ok(),
            "reads open"
        );
        assert!(ask(&exposed, &Method::GET, "/metrics", None).is_ok());
        assert!(exposed.describe().contains("refused"));
    }

    #[test]
    fn a_configured_token_is_required_everywhere_and_compared_exactly() {
        let access = Access::new(addr("0.0.0.0:8080"), Some("s3cret".into()), false);
        for method in [Method::POST, Method::DELETE] {
            assert!(ask(&access, &method, "/api/v1/alerts", Some("Bearer s3cret")).is_ok());
            for wrong in [
                None,
                Some("Bearer s3cre"),
                Some("Bearer s3cret2"),
                Some("s3cret"),
                Some("Basic s3cret"),
            ] {
                assert!(ask(&access, &method, "/api/v1/alerts", wrong).is_err(), "{wrong:?}");
            }
        }
        let on_loopback = Access::new(addr("127.0.0.1:8080"), Some("s3cret".into()), false);
        assert!(ask(&on_loopback, &Method::POST, "/api/v1/messages", None).is_err());
    }

    #[test]
    fn protect_reads_closes_views_and_metrics_but_not_the_probes() {
        let access = Access::new(addr("10.0.0.1:8080"), Some("t".into()), true);
        for path in ["/api/v1/status", "/metrics", "/"] {
            assert!(ask(&access, &Method::GET, path, None).is_err(), "{path}");
            assert!(ask(&access, &Method::GET, path, Some("Bearer t")).is_ok(), "{path}");
        }
        for path in ["/health", "/ready"] {
            assert!(ask(&access, &Method::GET, path, None).is_ok(), "{path}");
        }
    }

    #[test]
    fn with_mtls_changes_need_a_valid_client_svid_over_tls_and_plain_http_serves_reads() {
        use x0tta6bl4_actors::svid::{Revoked, SpiffeId, TrustDomainCa};
        let hour = std::time::Duration::from_secs(3600);
        let ca = TrustDomainCa::generate("mesh.test", hour).expect("CA");
        let trust = Arc::new(
            Trust::new(
                "mesh.test",
                ca.bundle_pem(),
                std::time::Duration::ZERO,
                Default::default(),
            )
            .expect("trust"),
        );
        let access = Access::new(addr("127.0.0.1:8080"), None, false).with_mtls(addr("127.0.0.1:8443"), trust.clone());
        let alice = SpiffeId::parse("spiffe://mesh.test/admin/alice").expect("id");
        let svid = ca.issue(&alice, hour).expect("SVID");
        let over_tls = |chain: Option<Vec<Vec<u8>>>, method: &Method| {
            access.check(&Asked {
                method,
                path: "/api/v1/quarantine",
                authorization: None,
                mtls: Some(&MtlsConnection { chain }),
            })
        };
        let allowed = over_tls(Some(vec![svid.cert_der.clone()]), &Method::POST).expect("allowed");
        assert_eq!(allowed.map(|c| c.0.id), Some(alice));
        let refused = |result: Result<Option<ClientSvid>, ApiError>| {
            let error = result.expect_err("refused");
            (error.status_code(), error.to_string())
        };
        let (status, message) = refused(over_tls(None, &Method::DELETE));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(message.contains("client SVID of mesh.test"), "{message}");
        let (_, message) = refused(over_tls(Some(vec![b"garbage".to_vec()]), &Method::POST));
        assert!(message.contains("(malformed)"), "{message}");
        assert!(
            over_tls(None, &Method::GET).expect("reads open").is_none(),
            "reads need no SVID"
        );

        let plain = |method: &Method| ask(&access, method, "/api/v1/quarantine", None);
        let (status, message) = refused(plain(&Method::POST).map(|()| None));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(message.contains("https://127.0.0.1:8443"), "{message}");
        assert!(plain(&Method::GET).is_ok());
        assert!(access.describe().contains("mTLS"));

        // Revoked after the handshake: the next change is refused.
        let revoked = Revoked {
            serial: svid.serial.clone(),
            at_unix: x0tta6bl4_actors::svid::unix_secs(std::time::SystemTime::now()),
        };
        trust
            .set_crls(ca.crl_pem(&[revoked], 1, hour).expect("CRL").as_bytes())
            .expect("CRL in force");
        let (_, message) = refused(over_tls(Some(vec![svid.cert_der]), &Method::POST));
        assert!(message.contains("(revoked)"), "{message}");
    }
}

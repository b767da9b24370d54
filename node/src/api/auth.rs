//! Who may use the HTTP API. Requests that change the node (every POST and
//! DELETE) need `Authorization: Bearer <token>` when a token is configured
//! (`http.token_file`, or `http.token` / `X0TTA6BL4_HTTP__TOKEN`), and are
//! refused outright when none is and the server listens beyond loopback.
//! Reads (GET views, `/metrics`, the dashboard) stay open unless
//! `http.protect_reads` is on; `/health` and `/ready` are always open, for
//! probes. Tokens are compared in constant time.

use std::net::SocketAddr;

use actix_web::http::{header, Method, StatusCode};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;

/// The API's access rule, fixed at start.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
    loopback: bool,
    protect_reads: bool,
}

impl Access {
    /// The rule for a server bound to `listen` with `token` (if any).
    pub fn new(listen: SocketAddr, token: Option<String>, protect_reads: bool) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
            loopback: listen.ip().is_loopback(),
            protect_reads,
        }
    }

    /// What the start-up log says about it.
    pub fn describe(&self) -> String {
        let reads = if self.protect_reads { "need it too" } else { "are open" };
        match (&self.token, self.loopback) {
            (Some(_), _) => format!("API: changes need the bearer token; reads {reads}"),
            (None, true) => "API: open to loopback clients (no http.token_file set)".into(),
            (None, false) => "API: listening beyond loopback with no http.token_file: every change is refused \
                 (401) until one is set"
                .into(),
        }
    }

    /// Checks a request; `Err` is the 401 to answer.
    pub fn check(&self, method: &Method, path: &str, authorization: Option<&str>) -> Result<(), ApiError> {
        if !self.guards(method, path) {
            return Ok(());
        }
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
            (&Method::GET | &Method::HEAD, _) => self.protect_reads,
            _ => true,
        }
    }
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
    if let Some(access) = req.app_data::<actix_web::web::Data<Access>>() {
        let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        access.check(req.method(), req.path(), authorization)?;
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

    #[test]
    fn loopback_without_a_token_is_open_and_elsewhere_changes_are_refused() {
        let open = Access::new(addr("127.0.0.1:8080"), None, false);
        assert!(open.check(&Method::POST, "/api/v1/quarantine", None).is_ok());
        let exposed = Access::new(addr("10.0.0.1:8080"), None, false);
        let refused = exposed
            .check(&Method::POST, "/api/v1/quarantine", None)
            .expect_err("refused");
        assert_eq!(refused.status_code(), StatusCode::UNAUTHORIZED);
        assert!(refused.to_string().contains("http.token_file"), "{refused}");
        assert!(
            exposed.check(&Method::GET, "/api/v1/status", None).is_ok(),
            "reads open"
        );
        assert!(exposed.check(&Method::GET, "/metrics", None).is_ok());
        assert!(exposed.describe().contains("refused"));
    }

    #[test]
    fn a_configured_token_is_required_everywhere_and_compared_exactly() {
        let access = Access::new(addr("0.0.0.0:8080"), Some("s3cret".into()), false);
        for method in [Method::POST, Method::DELETE] {
            assert!(access.check(&method, "/api/v1/alerts", Some("Bearer s3cret")).is_ok());
            for wrong in [
                None,
                Some("Bearer s3cre"),
                Some("Bearer s3cret2"),
                Some("s3cret"),
                Some("Basic s3cret"),
            ] {
                assert!(access.check(&method, "/api/v1/alerts", wrong).is_err(), "{wrong:?}");
            }
        }
        let on_loopback = Access::new(addr("127.0.0.1:8080"), Some("s3cret".into()), false);
        assert!(on_loopback.check(&Method::POST, "/api/v1/messages", None).is_err());
    }

    #[test]
    fn protect_reads_closes_views_and_metrics_but_not_the_probes() {
        let access = Access::new(addr("10.0.0.1:8080"), Some("t".into()), true);
        for path in ["/api/v1/status", "/metrics", "/"] {
            assert!(access.check(&Method::GET, path, None).is_err(), "{path}");
            assert!(access.check(&Method::GET, path, Some("Bearer t")).is_ok(), "{path}");
        }
        for path in ["/health", "/ready"] {
            assert!(access.check(&Method::GET, path, None).is_ok(), "{path}");
        }
    }
}

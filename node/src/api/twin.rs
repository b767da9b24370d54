//! `GET /api/v1/twin/whatif`: what the failure of nodes, links or one side of
//! a partition would break, answered by the digital twin on this node's
//! current graph.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_sim::Failure;

use super::error::ApiError;
use super::views::router_state;
use super::AppState;

/// The query: `fail=<peer>|<a>-<b>[,…]`, `partition=<peer>[,…]` (one side),
/// `traffic=false` to skip the all-pairs traffic matrix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhatIfQuery {
    #[serde(default)]
    fail: String,
    #[serde(default)]
    partition: String,
    #[serde(default = "yes")]
    traffic: bool,
}

fn yes() -> bool {
    true
}

/// `GET /api/v1/twin/whatif`
pub async fn what_if(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<WhatIfQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?
        .into_inner();
    let failure = Failure::from_specs(&query.fail, &query.partition);
    if failure == Failure::default() {
        return Err(ApiError::bad_request(
            "no_failure",
            "say what fails: fail=<peer>|<a>-<b>[,…] or partition=<peer>[,…]",
        ));
    }
    let router = router_state(&state).await?;
    let topology = crate::twin::topology_of(&state.name, &router)
        .map_err(|e| ApiError::unavailable(format!("the router's graph is not a valid topology: {e}")))?;
    let answer = web::block(move || crate::twin::answer(&topology, &failure, query.traffic))
        .await
        .map_err(|_| ApiError::unavailable("the twin's worker stopped"))?
        .map_err(|e| ApiError::bad_request("unknown_target", e.to_string()))?;
    Ok(HttpResponse::Ok().json(answer))
}

//! The replicated state: `GET /api/v1/state`, `GET|PUT|DELETE /api/v1/state/{key}`.
//! Writes pass the `admin` policy rule like every write of the API (the middleware)
//! and are published to the mesh at once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_actors::sync::{Intent, KeyKind, SyncError, SyncNode};

use super::error::{parse_json, ApiError};
use super::AppState;

/// A write to one key; which field applies depends on the key's kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StateWrite {
    /// A register's new value (`flag.*`, `config.*`, `note.*`); writing a
    /// `note.*` key resolves its concurrent values.
    value: Option<serde_json::Value>,
    /// A member to add to a set.
    add: Option<String>,
    /// A member to remove from a set.
    remove: Option<String>,
    /// An amount to add to a counter (negative subtracts).
    count: Option<i64>,
}

impl StateWrite {
    /// The body parsed into exactly one intent.
    pub(super) fn checked(body: &[u8]) -> Result<Intent, ApiError> {
        let write: Self = parse_json(body)?;
        let intents: Vec<Intent> = [
            write.value.map(|v| Intent::Put(v.to_string())),
            write.add.map(Intent::Add),
            write.remove.map(Intent::Remove),
            write.count.map(Intent::Count),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[Intent; 1]>::try_from(intents) {
            Ok([intent]) => Ok(intent),
            Err(_) => Err(ApiError::bad_request(
                "bad_state_write",
                "give exactly one of value, add, remove, count",
            )),
        }
    }
}

fn sync_of(state: &AppState) -> Result<&SyncNode, ApiError> {
    state
        .sync
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("replicated state is off (sync.enabled = false)"))
}

/// The API error for a refused write.
pub(super) fn sync_error(error: SyncError) -> ApiError {
    let status = match &error {
        SyncError::BadKey(_) | SyncError::BadValue(_) | SyncError::TooLarge(_) => StatusCode::BAD_REQUEST,
        SyncError::NotFound(_) => StatusCode::NOT_FOUND,
        SyncError::Full(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.reason(), error.to_string())
}

/// `GET /api/v1/state`: every key with its value, the version vector, pending
/// conflicts, the log and the replicas heard.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(sync_of(&state)?.view()))
}

/// `GET /api/v1/state/{key}`.
pub async fn get(state: web::Data<AppState>, key: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let sync = sync_of(&state)?;
    KeyKind::of(&key).map_err(sync_error)?;
    match sync.entry(&key) {
        Some(entry) => Ok(HttpResponse::Ok().json(entry)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_key",
            format!("{key} holds nothing"),
        )),
    }
}

/// `PUT /api/v1/state/{key}` with one of `{"value": ...}`, `{"add": "..."}`,
/// `{"remove": "..."}`, `{"count": n}`: the key's new value.
pub async fn put(
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let intent = StateWrite::checked(&body)?;
    let entry = sync_of(&state)?.write(&key, intent).map_err(sync_error)?;
    Ok(HttpResponse::Ok().json(entry))
}

/// `DELETE /api/v1/state/{key}`: a register becomes `null`, a set empties.
pub async fn delete(state: web::Data<AppState>, key: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = sync_of(&state)?.write(&key, Intent::Delete).map_err(sync_error)?;
    Ok(HttpResponse::Ok().json(entry))
}

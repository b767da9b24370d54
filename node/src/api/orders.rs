//! The shop's orders and downloads: `GET /api/v1/orders` (every order; it
//! names buyers' chats, so it needs the API token even when reads are
//! open), `GET /api/v1/orders/{id}`, `POST /api/v1/orders` (an order made by
//! an operator), and the public `GET /download/{token}` that streams a paid
//! order's file.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use x0tta6bl4_actors::mesh::unix_ms;
use x0tta6bl4_actors::payments::money::Currency;
use x0tta6bl4_actors::payments::{DownloadRefusal, PaymentError, Payments};

use super::error::{parse_json, ApiError};
use super::AppState;

/// `POST /api/v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderRequest {
    /// Product id.
    product: String,
    /// `usdt-trc20` or `ton`; the first the product is sold for when unset.
    currency: Option<String>,
    /// The buyer's Telegram chat, to be told when it is paid.
    chat_id: Option<i64>,
}

/// A checked [`OrderRequest`].
pub(super) struct NewOrderRequest {
    product: String,
    currency: Option<Currency>,
    chat_id: Option<i64>,
}

impl OrderRequest {
    /// The body parsed and checked.
    pub(super) fn checked(body: &[u8]) -> Result<NewOrderRequest, ApiError> {
        let request: Self = parse_json(body)?;
        let currency =
            match &request.currency {
                None => None,
                Some(text) => Some(Currency::parse(text).ok_or_else(|| {
                    ApiError::bad_request("bad_currency", format!("{text:?} is not usdt-trc20 or ton"))
                })?),
            };
        if request.product.trim().is_empty() || request.product.len() > 64 {
            return Err(ApiError::bad_request(
                "bad_product",
                "product must be 1 to 64 characters",
            ));
        }
        Ok(NewOrderRequest {
            product: request.product,
            currency,
            chat_id: request.chat_id,
        })
    }
}

fn payments_of(state: &AppState) -> Result<&Payments, ApiError> {
    state
        .payments
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("the shop is off (payments.enabled = false)"))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "order_book", error.to_string())
}

/// `GET /api/v1/orders`: counts per status, the outbox, every order.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = payments_of(&state)?.view().map_err(internal)?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /api/v1/orders/{id}`.
pub async fn show(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match payments_of(&state)?.book().get(&id).map_err(internal)? {
        Some(order) => Ok(HttpResponse::Ok().json(order)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_order",
            format!("no order {id}"),
        )),
    }
}

/// `POST /api/v1/orders` with `{"product", "currency"?, "chat_id"?}`: the
/// order and how to pay it.
pub async fn create(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let request = OrderRequest::checked(&body)?;
    let payments = payments_of(&state)?;
    match payments.create(&request.product, request.currency, request.chat_id) {
        Ok(order) => Ok(HttpResponse::Created().json(serde_json::json!({
            "order": order,
            "instructions": payments.shop().instructions(&order),
        }))),
        Err(PaymentError::Shop(refusal)) => Err(ApiError::bad_request("not_for_sale", refusal.to_string())),
        Err(PaymentError::Book(error)) => Err(ApiError::new(StatusCode::CONFLICT, "no_order", error.to_string())),
    }
}

/// `GET /download/{token}`: the paid order's file, streamed; 403 for a
/// forged or expired link or an order that is not paid.
pub async fn download(state: web::Data<AppState>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let payments = payments_of(&state)?;
    let (order, path) = payments.download(&token, unix_ms()).map_err(|refusal| {
        let status = match refusal {
            DownloadRefusal::Link(_) | DownloadRefusal::Unpaid(_) => StatusCode::FORBIDDEN,
            DownloadRefusal::Missing(_) => StatusCode::NOT_FOUND,
            DownloadRefusal::Book(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, refusal.label(), refusal.to_string())
    })?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::error!(order = %order.id, path = %path.display(), error = %e, "a paid download's file cannot be opened");
        x0tta6bl4_actors::payments::metrics::download("missing");
        ApiError::new(StatusCode::NOT_FOUND, "missing", format!("the file of {} is not available", order.product))
    })?;
    let length = file.metadata().await.map(|m| m.len()).map_err(internal)?;
    let name = path
        .file_name()
        .map_or_else(|| order.product.clone(), |n| n.to_string_lossy().into_owned())
        .replace(['"', '\\'], "_");
    let body = actix_web::body::SizedStream::new(length, tokio_util::io::ReaderStream::new(file));
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .body(body))
}

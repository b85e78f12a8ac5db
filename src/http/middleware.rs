//! Every request gets a transaction id (echoed as `X-Transaction-Id`) and
//! one `http_request` log line with its status and duration.

use super::error::ApiError;
use super::extract::{AuthenticatedUser, TransactionId};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use std::time::Instant;

pub const TRANSACTION_ID: HeaderName = HeaderName::from_static("x-transaction-id");

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let transaction_id = match req.headers().get(&TRANSACTION_ID) {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(value) => client_transaction_id(value).ok_or(ApiError::InvalidTransactionId),
    };
    let (transaction_id, mut response) = match transaction_id {
        Ok(id) => {
            req.extensions_mut().insert(TransactionId(id.clone()));
            (id, next.call(req).await?.map_into_boxed_body())
        }
        Err(error) => {
            let id = uuid::Uuid::new_v4().to_string();
            (id, req.into_response(error.error_response()))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&transaction_id) {
        response.headers_mut().insert(TRANSACTION_ID, value);
    }
    let username = response
        .request()
        .extensions()
        .get::<AuthenticatedUser>()
        .map(|user| user.username.clone());
    tracing::info!(
        event = "http_request",
        method,
        path,
        statusCode = response.status().as_u16(),
        durationMs = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        transactionId = transaction_id,
        username,
    );
    Ok(response)
}

fn client_transaction_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let visible = |b: u8| (0x21..=0x7e).contains(&b);
    (!text.is_empty() && text.len() <= 128 && text.bytes().all(visible)).then(|| text.to_owned())
}

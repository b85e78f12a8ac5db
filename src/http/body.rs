//! Reading request bodies: a hard size limit (whatever Content-Length
//! claims) and JSON parsing with our own error codes.

use super::error::ApiError;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
pub async fn read_limited(mut payload: web::Payload, declared_length: Option<u64>, limit: usize) -> Result<Bytes, ApiError> {
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses exactly one JSON value (trailing bytes are an error). Bad syntax
/// is `invalid_json`; valid JSON of the wrong shape is `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

//! The one error type of the HTTP layer. Each variant documents its status;
//! every rejection answers `{"error": "<stable code>", "message": "..."}`.
//! Internal causes are logged with their chain and never shown to clients.

use crate::domain::items::ItemError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not one valid JSON value.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// 400: the body is not UTF-8.
    #[error("the body is not valid UTF-8: {0}")]
    InvalidUtf8(String),
    /// 400: a `\u` escape names half of a UTF-16 surrogate pair.
    #[error("the body has a lone UTF-16 surrogate escape: {0}")]
    InvalidUnicodeEscape(String),
    /// 400: an object names the same key twice.
    #[error("an object in the body has the key {0:?} twice")]
    DuplicateJsonKey(String),
    /// 400: arrays and objects nest deeper than `--max-json-depth`.
    #[error("the body nests arrays and objects deeper than {limit} levels")]
    JsonTooDeep { limit: usize },
    /// 400: the body uses the key the JSON parser reserves for big numbers.
    #[error("the key `$serde_json::private::Number` is reserved")]
    ReservedJsonKey,
    /// 400: the key is not 1-128 characters of `A-Z a-z 0-9 . _ -`.
    #[error("{0}")]
    InvalidKey(#[from] crate::domain::storage_key::InvalidKey),
    /// 400: a conditional header cannot be parsed.
    #[error("{0}")]
    InvalidPrecondition(#[from] crate::domain::precondition::InvalidPrecondition),
    /// 400: `X-Transaction-Id` must be 1-128 visible ASCII characters.
    #[error("X-Transaction-Id must be 1-128 visible ASCII characters")]
    InvalidTransactionId,
    /// 400: a well-formed request with a field out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401: no valid, unexpired bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 401: unknown user or wrong password (deliberately indistinguishable).
    #[error("unknown user or wrong password")]
    InvalidCredentials,
    /// 429: too many failed logins for this username or from this address.
    #[error("too many failed logins; retry later")]
    TooManyAttempts { retry_after: std::time::Duration },
    /// 403: the route is for admins.
    #[error("this route is for admins")]
    Forbidden,
    /// 404: no such key, draft or route (or not yours).
    #[error("not found")]
    NotFound,
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 409: a user with that name exists.
    #[error("a user with that name already exists")]
    UserExists,
    /// 404, 409: an item write that does not fit the key's current value.
    #[error("{0}")]
    Item(#[from] crate::domain::items::ItemError),
    /// 400: `Idempotency-Key` must be 1-255 visible ASCII characters.
    #[error("Idempotency-Key must be 1-255 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// 422: this `Idempotency-Key` was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// 413: the body is larger than `--max-body-bytes`.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 428: an existing key may only be replaced with `If-Match`.
    #[error("the key exists: send If-Match with its current version (ETag)")]
    PreconditionRequired,
    /// 503: the database did not answer; retry later.
    #[error("storage is unavailable, retry later")]
    StorageUnavailable(#[source] sqlx::Error),
    /// 500: a bug or an invariant broken; details are in the log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidUtf8(_) => "invalid_utf8",
            ApiError::InvalidUnicodeEscape(_) => "invalid_unicode_escape",
            ApiError::DuplicateJsonKey(_) => "duplicate_json_key",
            ApiError::JsonTooDeep { .. } => "json_too_deep",
            ApiError::ReservedJsonKey => "reserved_json_key",
            ApiError::InvalidKey(_) => "invalid_key",
            ApiError::InvalidPrecondition(_) => "invalid_precondition",
            ApiError::InvalidTransactionId => "invalid_transaction_id",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UserExists => "user_exists",
            ApiError::Item(error) => error.code(),
            ApiError::InvalidIdempotencyKey => "invalid_idempotency_key",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::PreconditionRequired => "precondition_required",
            ApiError::StorageUnavailable(_) => "storage_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::StorageUnavailable(error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidUtf8(_)
            | ApiError::InvalidUnicodeEscape(_)
            | ApiError::DuplicateJsonKey(_)
            | ApiError::JsonTooDeep { .. }
            | ApiError::ReservedJsonKey
            | ApiError::InvalidKey(_)
            | ApiError::InvalidPrecondition(_)
            | ApiError::InvalidTransactionId
            | ApiError::InvalidIdempotencyKey
            | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Item(ItemError::RecordNotFound) => StatusCode::NOT_FOUND,
            ApiError::Item(ItemError::DuplicateId | ItemError::NotAnArray) => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UserExists => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::StorageUnavailable(cause) => {
                tracing::error!(event = "storage_unavailable", error = %cause)
            }
            ApiError::Internal(cause) => tracing::error!(event = "internal_error", error = format!("{cause:#}")),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::StorageUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::TooManyAttempts { retry_after } => {
                // Whole seconds, rounded up: never tell a client to retry too early.
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.json(json!({ "error": self.code(), "message": self.to_string() }))
    }
}

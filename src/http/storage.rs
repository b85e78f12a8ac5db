//! `GET` and `PUT /api/storage/{key}`.

use super::body::{parse_json, read_limited};
use super::error::ApiError;
use super::extract::{AdminUser, AuthenticatedUser, TransactionId};
use super::state::AppState;
use crate::coordinator::{Write, WriteOutcome};
use crate::domain::merge::record_count;
use crate::domain::{Precondition, StorageKey};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tokio::sync::oneshot;

fn etag(version: i64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

pub async fn get_value(
    state: web::Data<AppState>,
    _user: AuthenticatedUser,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = StorageKey::parse(&key)?;
    let stored = state.store.load_value(key.as_str()).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().insert_header(etag(stored.version)).json(json!({
        "key": key.as_str(),
        "value": stored.value,
        "version": stored.version,
        "updatedAt": stored.updated_at,
    })))
}

const DEFAULT_HISTORY_LIMIT: i64 = 100;
const MAX_HISTORY_LIMIT: i64 = 1000;

#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    limit: Option<i64>,
}

/// Admin: the versions of a key, newest first (the audit trail).
pub async fn history(
    state: web::Data<AppState>,
    _admin: AdminUser,
    key: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = StorageKey::parse(&key)?;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!("limit must be 1-{MAX_HISTORY_LIMIT}")));
    }
    let versions = state.store.history(key.as_str(), limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "key": key.as_str(), "versions": versions })))
}

/// Admin: one committed version with its value. Restoring it is an ordinary
/// conditional PUT of that value.
pub async fn version(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (key, version) = path.into_inner();
    let key = StorageKey::parse(&key)?;
    let entry = state
        .store
        .history_entry(key.as_str(), version)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut body = serde_json::to_value(&entry).map_err(|e| ApiError::Internal(e.into()))?;
    body["key"] = json!(key.as_str());
    Ok(HttpResponse::Ok().json(body))
}

pub async fn put_value(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    TransactionId(transaction_id): TransactionId,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Everything is validated before the actor sees the write: a rejected
    // request stores nothing and makes no draft.
    let key = StorageKey::parse(&key)?;
    let raw_if_match = req.headers().get(header::IF_MATCH);
    let precondition = Precondition::from_headers(
        raw_if_match.map(HeaderValue::as_bytes),
        req.headers().get(header::IF_NONE_MATCH).map(HeaderValue::as_bytes),
    )?;
    let if_match = raw_if_match.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = read_limited(payload, super::content_length(&req), state.max_body_bytes).await?;
    let value: Value = parse_json(&body)?;

    tracing::info!(
        event = "storage_request",
        key = %key,
        username = %user.username,
        transactionId = %transaction_id,
        conditional = precondition.is_conditional(),
        ifMatch = if_match.as_deref(),
        incomingCount = record_count(&value),
    );
    let (reply, outcome) = oneshot::channel();
    state.registry.dispatch(
        &key,
        Write {
            key: key.clone(),
            value,
            precondition,
            if_match: if_match.clone(),
            username: user.username,
            transaction_id: transaction_id.clone(),
            reply,
        },
    );
    let outcome = outcome
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the key actor dropped a write without answering")))?;

    Ok(match outcome {
        WriteOutcome::Committed {
            version,
            updated_at,
            created,
        } => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            HttpResponse::build(status).insert_header(etag(version)).json(json!({
                "key": key.as_str(),
                "version": version,
                "updatedAt": updated_at,
            }))
        }
        WriteOutcome::Conflict { current, draft_id } => {
            let mut response = HttpResponse::Conflict();
            if let Some(current) = current {
                response.insert_header(etag(current.version));
            }
            response.json(json!({
                "error": "conflict",
                "message": "the value changed since the version you named; your payload is kept as a draft",
                "key": key.as_str(),
                "ifMatch": if_match,
                "currentVersion": current.map(|c| c.version),
                "currentUpdatedAt": current.map(|c| c.updated_at),
                "draftSaved": draft_id.is_some(),
                "draftId": draft_id,
                "transactionId": transaction_id,
            }))
        }
        WriteOutcome::PreconditionRequired => return Err(ApiError::PreconditionRequired),
        WriteOutcome::Failed { draft_id } => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(json!({
                "error": "storage_unavailable",
                "message": "the write could not be committed; your payload is kept as a draft",
                "key": key.as_str(),
                "draftSaved": draft_id.is_some(),
                "draftId": draft_id,
                "transactionId": transaction_id,
            })),
    })
}

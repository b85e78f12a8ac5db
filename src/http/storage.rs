//! `/api/storage/{key}`: read, write (whole value or one record), history.

use super::body::{parse_json, read_limited};
use super::error::ApiError;
use super::extract::{AdminUser, AuthenticatedUser, TransactionId};
use super::state::AppState;
use crate::coordinator::{IdempotencyRequest, PersistDraft, Write, WriteOutcome};
use crate::domain::credentials::sha256_hex;
use crate::domain::draft::{Draft, DraftSource};
use crate::domain::items::{id_is, Change};
use crate::domain::merge::record_count;
use crate::domain::DraftReason;
use crate::domain::{Precondition, StorageKey};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const PREFER: HeaderName = HeaderName::from_static("prefer");

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

/// `PUT /api/storage/{key}`: replace the whole value.
pub async fn put_value(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = StorageKey::parse(&key)?;
    let request = WriteRequest::read(&state, &req, payload).await?;
    let value: Value = parse_json(&request.body, state.max_json_depth)?;
    let change = Change::Replace(value);
    dispatch(&state, user, transaction_id, key, change, request).await
}

/// `POST /api/storage/{key}/items`: append one record (an `id` is assigned
/// when missing).
pub async fn append_item(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = StorageKey::parse(&key)?;
    let request = WriteRequest::read(&state, &req, payload).await?;
    let mut record: serde_json::Map<String, Value> = parse_json(&request.body, state.max_json_depth)?;
    match record.get("id") {
        None => {
            record.insert("id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        }
        Some(id) if id.is_string() || id.is_number() => {}
        Some(_) => return Err(ApiError::InvalidRequest("a record's id is a string or a number".into())),
    }
    let change = Change::Append(Value::Object(record));
    dispatch(&state, user, transaction_id, key, change, request).await
}

/// `PATCH /api/storage/{key}/items/{id}`: replace some fields of one record.
pub async fn patch_item(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (key, id) = path.into_inner();
    let key = StorageKey::parse(&key)?;
    let request = WriteRequest::read(&state, &req, payload).await?;
    let fields: serde_json::Map<String, Value> = parse_json(&request.body, state.max_json_depth)?;
    if fields.get("id").is_some_and(|new_id| !id_is(new_id, &id)) {
        return Err(ApiError::InvalidRequest("a record's id cannot be changed".into()));
    }
    let change = Change::Patch { id, fields };
    dispatch(&state, user, transaction_id, key, change, request).await
}

/// `DELETE /api/storage/{key}/items/{id}`: remove one record.
pub async fn delete_item(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (key, id) = path.into_inner();
    let key = StorageKey::parse(&key)?;
    let request = WriteRequest::read(&state, &req, payload).await?;
    dispatch(&state, user, transaction_id, key, Change::Remove { id }, request).await
}

/// What every write route reads from the request, validated before the
/// key's actor sees anything: a rejected request stores nothing, makes no
/// draft, and does not use up its `Idempotency-Key`.
struct WriteRequest {
    precondition: Precondition,
    if_match: Option<String>,
    prefer_merge: bool,
    idempotency_key: Option<String>,
    /// Hash of method, path, conditional headers and body: what the
    /// `Idempotency-Key` stands for.
    request_hash: String,
    body: web::Bytes,
}

impl WriteRequest {
    async fn read(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Self, ApiError> {
        let headers = req.headers();
        // Several lines of one list header are one comma-separated list (RFC 9110 5.3).
        let joined = |name| {
            let lines: Vec<&[u8]> = headers.get_all(name).map(HeaderValue::as_bytes).collect();
            (!lines.is_empty()).then(|| lines.join(&b", "[..]))
        };
        let raw_if_match = joined(header::IF_MATCH);
        let raw_if_none_match = joined(header::IF_NONE_MATCH);
        let precondition = Precondition::from_headers(raw_if_match.as_deref(), raw_if_none_match.as_deref())?;
        let if_match = raw_if_match.as_deref().map(|v| String::from_utf8_lossy(v).into_owned());
        let prefer_merge = headers.get_all(PREFER).any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',').any(|preference| {
                    preference
                        .split(';')
                        .next()
                        .is_some_and(|p| p.trim().eq_ignore_ascii_case("merge"))
                })
            })
        });
        let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let text = value.to_str().map_err(|_| ApiError::InvalidIdempotencyKey)?;
                let visible = |b: u8| (0x21..=0x7e).contains(&b);
                if text.is_empty() || text.len() > 255 || !text.bytes().all(visible) {
                    return Err(ApiError::InvalidIdempotencyKey);
                }
                Some(text.to_owned())
            }
        };
        let body = read_limited(payload, super::content_length(req), state.max_body_bytes).await?;
        let fingerprint = [
            req.method().as_str().as_bytes(),
            req.path().as_bytes(),
            raw_if_match.as_deref().unwrap_or_default(),
            raw_if_none_match.as_deref().unwrap_or_default(),
            if prefer_merge { b"merge" } else { b"" },
            &body,
        ]
        .join(&0u8);
        Ok(Self {
            precondition,
            if_match,
            prefer_merge,
            idempotency_key,
            request_hash: sha256_hex(&fingerprint),
            body,
        })
    }
}

/// Hands a validated write to the key's actor and answers with its outcome.
async fn dispatch(
    state: &AppState,
    user: AuthenticatedUser,
    TransactionId(transaction_id): TransactionId,
    key: StorageKey,
    change: Change,
    request: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let appends = matches!(change, Change::Append(_));
    let incoming_count = match &change {
        Change::Replace(value) => record_count(value),
        _ => None,
    };
    tracing::info!(
        event = "storage_request",
        key = %key,
        username = %user.username,
        transactionId = %transaction_id,
        conditional = request.precondition.is_conditional(),
        ifMatch = request.if_match.as_deref(),
        change = change.kind(),
        incomingCount = incoming_count,
    );
    let _one_at_a_time = match &request.idempotency_key {
        Some(idempotency_key) => Some(state.idempotency_locks.acquire(&user.username, idempotency_key).await),
        None => None,
    };
    let change = Arc::new(change);
    let kept_for_failure = change.clone();
    let username = user.username.clone();
    let (reply, outcome) = oneshot::channel();
    let idempotency = request.idempotency_key.map(|key| IdempotencyRequest {
        key,
        request_hash: request.request_hash,
    });
    state.registry.dispatch(
        &key,
        Write {
            key: key.clone(),
            change,
            precondition: request.precondition,
            if_match: request.if_match.clone(),
            prefer_merge: request.prefer_merge,
            allow_unconditional: state.allow_unconditional,
            idempotency,
            username: user.username,
            transaction_id: transaction_id.clone(),
            reply,
        },
    );
    let outcome = match outcome.await {
        Ok(outcome) => outcome,
        Err(_) => {
            let orphan = Orphan {
                key: &key,
                change: &kept_for_failure,
                username,
                if_match: request.if_match.clone(),
                transaction_id: transaction_id.clone(),
            };
            return Ok(keep_orphaned_write(state, orphan).await);
        }
    };
    let shown = Shown {
        key: &key,
        if_match: request.if_match.as_deref(),
        transaction_id: &transaction_id,
        appends,
    };
    render(outcome, &shown)
}

/// A write whose key actor failed before answering.
struct Orphan<'a> {
    key: &'a StorageKey,
    change: &'a Change,
    username: String,
    if_match: Option<String>,
    transaction_id: String,
}

/// The key's actor failed mid-write (a bug): whether the write committed is
/// unknown to us, so its payload is kept as a `write_failed` draft — a later
/// submit merges it idempotently — and the client gets a 500 naming it.
async fn keep_orphaned_write(state: &AppState, orphan: Orphan<'_>) -> HttpResponse {
    tracing::error!(
        event = "storage_write_failed",
        key = %orphan.key,
        username = %orphan.username,
        transactionId = %orphan.transaction_id,
        statusCode = 500,
        error = "the key actor failed before answering",
    );
    let draft = Draft::new(DraftSource {
        key: orphan.key.to_string(),
        username: orphan.username,
        reason: DraftReason::WriteFailed,
        payload: orphan.change.as_draft_payload(),
        if_match: orphan.if_match,
        base_version: None,
        current_version: None,
        transaction_id: orphan.transaction_id.clone(),
        last_error: Some("the key actor failed before answering".into()),
    });
    let (saved, draft_id) = oneshot::channel();
    state.registry.writer().do_send(PersistDraft {
        draft,
        then: Box::new(move |id| {
            let _ = saved.send(id);
        }),
    });
    let draft_id = draft_id.await.ok().flatten();
    HttpResponse::InternalServerError().json(json!({
        "error": "internal_error",
        "message": "the write failed on our side; your payload is kept as a draft",
        "key": orphan.key.as_str(),
        "draftSaved": draft_id.is_some(),
        "draftId": draft_id,
        "transactionId": orphan.transaction_id,
    }))
}

/// What a write's response shows besides its outcome.
struct Shown<'a> {
    key: &'a StorageKey,
    if_match: Option<&'a str>,
    transaction_id: &'a str,
    /// `POST .../items` answers 201: it created a record.
    appends: bool,
}

fn render(outcome: WriteOutcome, shown: &Shown<'_>) -> Result<HttpResponse, ApiError> {
    let Shown {
        key,
        if_match,
        transaction_id,
        appends,
    } = *shown;
    Ok(match outcome {
        WriteOutcome::Committed {
            version,
            updated_at,
            created,
            merged,
            item_id,
        } => {
            let status = if created || appends {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut response = HttpResponse::build(status);
            response.insert_header(etag(version));
            if merged {
                response.insert_header(("preference-applied", "merge"));
            }
            let mut body = json!({ "key": key.as_str(), "version": version, "updatedAt": updated_at });
            if merged {
                body["merged"] = json!(true);
            }
            if let Some(id) = item_id {
                body["id"] = id;
            }
            response.json(body)
        }
        WriteOutcome::Conflict {
            current,
            draft_id,
            reason,
        } => {
            let mut response = HttpResponse::Conflict();
            if let Some(current) = current {
                response.insert_header(etag(current.version));
            }
            response.json(json!({
                "error": "conflict",
                "message": "the value changed since the version you named; your payload is kept as a draft",
                "reason": reason,
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
        WriteOutcome::Rejected { error } => return Err(ApiError::Item(error)),
        WriteOutcome::IdempotencyKeyReused => return Err(ApiError::IdempotencyKeyReused),
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
        WriteOutcome::Replayed(first) => {
            let mut response = render(*first, shown)?;
            response.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
            response
        }
    })
}

//! Drafts: a user's own (`/api/drafts`) and everyone's for admins
//! (`/api/admin/drafts`). Another user's draft answers 404, never 403, so
//! draft ids cannot be probed.

use super::error::ApiError;
use super::extract::{AdminUser, AuthenticatedUser, TransactionId};
use super::state::AppState;
use crate::coordinator::{SubmitDraft, SubmitOutcome};
use crate::domain::draft::{Draft, DraftView};
use crate::domain::merge::preview_submit;
use crate::domain::{DraftReason, StorageKey};
use crate::store::DraftFilter;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const DEFAULT_LIST_LIMIT: i64 = 500;
const MAX_LIST_LIMIT: i64 = 5000;

fn views(drafts: &[Draft]) -> Vec<DraftView<'_>> {
    drafts.iter().map(DraftView::from).collect()
}

pub async fn list_mine(state: web::Data<AppState>, user: AuthenticatedUser) -> Result<HttpResponse, ApiError> {
    let filter = DraftFilter {
        username: Some(user.username),
        limit: MAX_LIST_LIMIT,
        ..DraftFilter::default()
    };
    let drafts = state.store.list_drafts(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "drafts": views(&drafts) })))
}

/// The draft with this id, if `owner` may see it (`None` = an admin).
async fn find_draft(state: &AppState, id: &str, owner: Option<&str>) -> Result<Draft, ApiError> {
    match state.store.get_draft(id).await? {
        Some(draft) if owner.is_none_or(|owner| owner == draft.username) => Ok(draft),
        _ => Err(ApiError::NotFound),
    }
}

pub async fn get_mine(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, Some(&user.username)).await?;
    detail(&state, &draft).await
}

pub async fn get_any(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, None).await?;
    detail(&state, &draft).await
}

/// The draft with a preview of its submit against the current value (a
/// read-only merge; the real one happens in the key's actor).
async fn detail(state: &AppState, draft: &Draft) -> Result<HttpResponse, ApiError> {
    let current = state.store.load_value(&draft.key).await?;
    let base = match draft.base_version {
        Some(version) => state.store.history_value(&draft.key, version).await?,
        None => None,
    };
    let preview = preview_submit(base.as_ref(), current.as_ref().map(|c| &c.value), &draft.payload);
    Ok(HttpResponse::Ok().json(json!({
        "draft": DraftView::from(draft),
        "currentVersion": current.as_ref().map(|c| c.version),
        "diff": preview,
    })))
}

pub async fn submit_mine(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, Some(&user.username)).await?;
    let outcome = submit(&state, &draft, Some(&user.username), &user.username, &transaction_id.0).await?;
    Ok(submit_response(&draft.id, outcome))
}

pub async fn submit_all_mine(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    transaction_id: TransactionId,
) -> Result<HttpResponse, ApiError> {
    let filter = DraftFilter {
        username: Some(user.username.clone()),
        limit: MAX_LIST_LIMIT,
        oldest_first: true,
        ..DraftFilter::default()
    };
    let drafts = state.store.list_drafts(&filter).await?;
    let mut results = Vec::with_capacity(drafts.len());
    for draft in &drafts {
        let result = match submit(&state, draft, Some(&user.username), &user.username, &transaction_id.0).await {
            Ok(outcome) => submit_result(&draft.id, outcome),
            Err(error) => json!({ "draftId": draft.id, "status": "failed", "error": error.code() }),
        };
        results.push(result);
    }
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

pub async fn delete_mine(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, Some(&user.username)).await?;
    discard(&state, &draft, &user.username, None).await
}

#[derive(Deserialize)]
pub struct AdminDraftQuery {
    key: Option<String>,
    username: Option<String>,
    reason: Option<String>,
    limit: Option<i64>,
}

pub async fn list_all(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<AdminDraftQuery>,
) -> Result<HttpResponse, ApiError> {
    let reason = match query.reason.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(raw) => {
            Some(DraftReason::parse(raw).ok_or_else(|| ApiError::InvalidRequest(format!("unknown reason {raw:?}")))?)
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!("limit must be 1-{MAX_LIST_LIMIT}")));
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let filter = DraftFilter {
        username: non_empty(&query.username),
        key: non_empty(&query.key),
        reason,
        limit,
        oldest_first: false,
    };
    let drafts = state.store.list_drafts(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "drafts": views(&drafts) })))
}

pub async fn stats(state: web::Data<AppState>, _admin: AdminUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.store.draft_stats().await?))
}

pub async fn submit_any(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    transaction_id: TransactionId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, None).await?;
    let outcome = submit(&state, &draft, None, &admin.username, &transaction_id.0).await?;
    let response = submit_response(&draft.id, outcome);
    tracing::info!(
        event = "admin_draft_submitted",
        admin = %admin.username,
        draftId = %draft.id,
        key = %draft.key,
        username = %draft.username,
        transactionId = %transaction_id.0,
        statusCode = response.status().as_u16(),
    );
    Ok(response)
}

pub async fn delete_any(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let draft = find_draft(&state, &id, None).await?;
    discard(&state, &draft, &admin.username, Some(&admin.username)).await
}

/// Deletes the draft; `admin` names the admin when one acts on the route for
/// everyone's drafts, so the log says who did it.
async fn discard(state: &AppState, draft: &Draft, by: &str, admin: Option<&str>) -> Result<HttpResponse, ApiError> {
    if !state.store.delete_draft(&draft.id).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(
        event = "storage_draft_discarded",
        draftId = %draft.id,
        key = %draft.key,
        username = %draft.username,
        discardedBy = by,
        admin,
    );
    Ok(HttpResponse::NoContent().finish())
}

/// Hands the draft to its key's actor, which merges and commits it in order
/// with the key's other writes.
async fn submit(
    state: &AppState,
    draft: &Draft,
    owner: Option<&str>,
    submitted_by: &str,
    transaction_id: &str,
) -> Result<SubmitOutcome, ApiError> {
    let key = StorageKey::parse(&draft.key)?;
    let (reply, outcome) = oneshot::channel();
    state.registry.dispatch(
        &key,
        SubmitDraft {
            draft_id: draft.id.clone(),
            owner: owner.map(str::to_owned),
            submitted_by: submitted_by.to_owned(),
            transaction_id: transaction_id.to_owned(),
            reply,
        },
    );
    outcome
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the key actor dropped a submit without answering")))
}

fn submit_result(draft_id: &str, outcome: SubmitOutcome) -> Value {
    match outcome {
        SubmitOutcome::Saved { version, updated_at } => {
            json!({ "draftId": draft_id, "status": "saved", "version": version, "updatedAt": updated_at })
        }
        SubmitOutcome::Conflict(conflict) => json!({
            "draftId": draft_id,
            "status": "conflict",
            "error": conflict.code(),
            "message": conflict.message(),
            "conflictingIds": conflict.conflicting_ids(),
        }),
        SubmitOutcome::NotFound => json!({ "draftId": draft_id, "status": "not_found", "error": "not_found" }),
        SubmitOutcome::Failed => {
            json!({ "draftId": draft_id, "status": "failed", "error": "storage_unavailable" })
        }
    }
}

fn submit_response(draft_id: &str, outcome: SubmitOutcome) -> HttpResponse {
    let mut response = match &outcome {
        SubmitOutcome::Saved { .. } => HttpResponse::Ok(),
        SubmitOutcome::Conflict(_) => HttpResponse::Conflict(),
        SubmitOutcome::NotFound => HttpResponse::NotFound(),
        SubmitOutcome::Failed => HttpResponse::ServiceUnavailable(),
    };
    response.json(submit_result(draft_id, outcome))
}

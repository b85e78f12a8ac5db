//! What the admin activity page reads: `GET /api/admin/events` (the latest
//! storage events from the in-memory [`ActivityLog`], newest first) and
//! `GET /api/admin/keys` (every key with its version and last update).

use super::error::ApiError;
use super::extract::AdminUser;
use super::state::AppState;
use crate::activity::ActivityLog;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

const DEFAULT_EVENT_LIMIT: i64 = 200;
const DEFAULT_KEY_LIMIT: i64 = 500;
const MAX_KEY_LIMIT: i64 = 5000;

/// Registers the two routes and hands them the process's activity ring.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::from(ActivityLog::global()))
        .service(super::resource("/api/admin/events").route(web::get().to(events)))
        .service(super::resource("/api/admin/keys").route(web::get().to(keys)));
}

/// The `limit` of the query string, read by hand so that any bad query answers
/// our JSON error rather than actix's plain-text one.
fn limit_param(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::InvalidRequest("the query string cannot be read".into()))?;
    Ok(pairs
        .into_inner()
        .into_iter()
        .rev()
        .find(|(name, _)| name == "limit")
        .map(|(_, value)| value))
}

fn parse_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
        return Ok(default);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be a whole number from 1 to {max}")))
}

pub async fn events(
    log: web::Data<ActivityLog>,
    _admin: AdminUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let capacity = i64::try_from(log.capacity()).unwrap_or(i64::MAX);
    let limit = parse_limit(
        limit_param(&req)?.as_deref(),
        DEFAULT_EVENT_LIMIT.min(capacity),
        capacity,
    )?;
    let events = log.latest(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(HttpResponse::Ok().json(json!({ "events": events, "capacity": capacity })))
}

pub async fn keys(state: web::Data<AppState>, _admin: AdminUser, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(limit_param(&req)?.as_deref(), DEFAULT_KEY_LIMIT, MAX_KEY_LIMIT)?;
    let keys = state.store.list_keys(limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_when_absent_or_empty() {
        assert_eq!(parse_limit(None, 7, 10).unwrap(), 7);
        assert_eq!(parse_limit(Some(""), 7, 10).unwrap(), 7);
    }

    #[test]
    fn limit_must_be_a_number_in_range() {
        assert_eq!(parse_limit(Some("10"), 7, 10).unwrap(), 10);
        for bad in ["0", "11", "-1", "abc", "1.5"] {
            let error = parse_limit(Some(bad), 7, 10).unwrap_err();
            assert_eq!(error.code(), "invalid_request", "{bad}");
        }
    }
}

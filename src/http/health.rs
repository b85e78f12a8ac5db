//! For operators, without a login: `GET /healthz` (the process answers),
//! `GET /readyz` (the database answers and has every migration) and
//! `GET /metrics` (Prometheus text; a bearer token only when
//! `--metrics-token` is set).

use super::error::ApiError;
use super::extract::bearer_token;
use super::state::AppState;
use crate::domain::credentials::sha256_hex;
use crate::metrics::{Metrics, Snapshot};
use crate::store::Readiness;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::time::Duration;

/// A probe must answer quickly even when the pool waits for a connection.
const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz").route(web::get().to(healthz)))
        .service(super::resource("/readyz").route(web::get().to(readyz)))
        .service(super::resource("/metrics").route(web::get().to(metrics)));
}

/// 200 as long as the process serves HTTP; it touches nothing else.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the database answers within the timeout and has every migration
/// of this binary; else 503 `database_unavailable` or `migrations_pending`.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (code, message) = match tokio::time::timeout(READINESS_TIMEOUT, state.store.readiness()).await {
        Ok(Ok(Readiness::Ready)) => return HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Ok(Readiness::MigrationsPending(versions))) => (
            "migrations_pending",
            format!("the database lacks migrations {versions:?}; run `coordinator migrate`"),
        ),
        Ok(Err(error)) => {
            tracing::warn!(event = "readiness_failed", error = %error);
            ("database_unavailable", "the database did not answer".to_owned())
        }
        Err(_) => {
            tracing::warn!(event = "readiness_failed", error = "timed out");
            ("database_unavailable", "the database did not answer in time".to_owned())
        }
    };
    HttpResponse::ServiceUnavailable().json(json!({ "error": code, "message": message, "status": "not_ready" }))
}

/// The counters of [`crate::metrics`], with pending drafts and live key
/// actors read now. The pending-draft gauge is left out (not failed) when the
/// database does not answer, so a scrape still shows the rest.
async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let given = bearer_token(&req).ok_or(ApiError::Unauthorized)?;
        if !same_secret(given, expected) {
            return Err(ApiError::Unauthorized);
        }
    }
    let pending_drafts = match tokio::time::timeout(READINESS_TIMEOUT, state.store.draft_stats()).await {
        Ok(Ok(stats)) => stats.by_reason,
        Ok(Err(error)) => {
            tracing::warn!(event = "metrics_draft_stats_failed", error = %error);
            Default::default()
        }
        Err(_) => Default::default(),
    };
    let snapshot = Snapshot {
        pending_drafts,
        live_key_actors: state.registry.live_actors(),
        write_batches: state.batch_stats.snapshot(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(Metrics::global().render(&snapshot)))
}

/// Compares the digests byte by byte without an early exit, so the time taken
/// says nothing about how much of the token was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (sha256_hex(given.as_bytes()), sha256_hex(expected.as_bytes()));
    given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

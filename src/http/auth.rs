//! `POST /api/login`: a username and password for a bearer token, throttled
//! per username and per address ([`super::rate_limit`]); `POST /api/logout`:
//! the caller's token stops working.

use super::body::{parse_json, read_limited};
use super::error::ApiError;
use super::extract::{bearer_token, AuthenticatedUser};
use super::state::AppState;
use crate::domain::credentials::{new_token, token_hash, verify_password, MAX_PASSWORD_LEN};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, super::content_length(&req), 64 * 1024).await?;
    let LoginRequest { username, password } = parse_json(&body, state.max_json_depth)?;
    let address = req.peer_addr().map(|peer| peer.ip());
    if let Err(retry_after) = state.login_limiter.check(&username, address) {
        tracing::warn!(event = "user_login_throttled", username = %username, address = ?address);
        return Err(ApiError::TooManyAttempts { retry_after });
    }
    if password.len() > MAX_PASSWORD_LEN {
        state.login_limiter.record_failure(&username, address);
        return Err(ApiError::InvalidCredentials);
    }
    let stored = state.store.find_user(&username).await?;
    let stored_hash = stored.as_ref().map(|(hash, _)| hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = web::block(move || verify_password(&password, stored_hash.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let Some((_, role)) = stored.filter(|_| verified) else {
        tracing::warn!(event = "user_login_failed", username = %username);
        state.login_limiter.record_failure(&username, address);
        return Err(ApiError::InvalidCredentials);
    };
    state.login_limiter.record_success(&username);
    let token = new_token();
    let ttl = chrono::Duration::from_std(state.token_ttl).unwrap_or(chrono::Duration::hours(12));
    let expires_at = chrono::Utc::now() + ttl;
    state
        .store
        .insert_session(&token_hash(&token), &username, expires_at)
        .await?;
    tracing::info!(event = "user_login", username = %username, role = role.as_str());
    Ok(HttpResponse::Ok().json(json!({
        "token": token,
        "username": username,
        "role": role,
        "expiresAt": crate::domain::Timestamp::from_datetime(expires_at),
    })))
}

/// `POST /api/logout`: revokes the token the request carries (other tokens of
/// the same user stay valid); `204`, and the token then gets `401`.
pub async fn logout(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&req).ok_or(ApiError::Unauthorized)?;
    let hash = token_hash(token);
    state.sessions.revoke(&hash);
    state.store.revoke_session(&hash).await?;
    tracing::info!(event = "user_logout", username = %user.username);
    Ok(HttpResponse::NoContent().finish())
}

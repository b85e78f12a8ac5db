//! `POST /api/admin/users`: admins create users.

use super::body::{parse_json, read_limited};
use super::error::ApiError;
use super::extract::AdminUser;
use super::state::AppState;
use crate::domain::credentials::{check_password_rules, hash_password};
use crate::domain::{Role, Username};
use crate::store::NewUserOutcome;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    Role::User.as_str().into()
}

pub async fn create_user(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, super::content_length(&req), 64 * 1024).await?;
    let new_user: NewUser = parse_json(&body, state.max_json_depth)?;
    let username = Username::parse(&new_user.username).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let role = Role::parse(&new_user.role)
        .ok_or_else(|| ApiError::InvalidRequest("role must be \"user\" or \"admin\"".into()))?;
    let hash = hash_new_password(new_user.password).await?;
    match state.store.insert_user(&username, &hash, role).await? {
        NewUserOutcome::AlreadyExists => Err(ApiError::UserExists),
        NewUserOutcome::Created => {
            tracing::info!(
                event = "admin_user_created",
                username = %username,
                role = role.as_str(),
                admin = %admin.username,
            );
            Ok(HttpResponse::Created().json(json!({ "username": username.as_str(), "role": role })))
        }
    }
}

/// Checks the length rules and hashes off the async workers.
pub async fn hash_new_password(password: String) -> Result<String, ApiError> {
    check_password_rules(&password).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    web::block(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)
}

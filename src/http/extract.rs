//! Request extractors: who is calling, and under which transaction id.

use super::error::ApiError;
use super::state::AppState;
use crate::domain::credentials::token_hash;
use crate::domain::Role;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};

/// A caller with a valid, unexpired bearer token.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub username: String,
    pub role: Role,
}

/// An authenticated caller with the admin role; others get 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthenticatedUser);

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState is not registered")))?;
            let token = bearer_token(&req).ok_or(ApiError::Unauthorized)?;
            let hash = token_hash(token);
            let confirmed = state.sessions.recently_confirmed(&hash);
            let looked_up = match confirmed {
                Some(session) => Ok(Some(session)),
                None => state.store.find_session(&hash).await.inspect(|found| {
                    if let Some(session) = found {
                        state.sessions.remember(&hash, session);
                    }
                }),
            };
            let session = match looked_up {
                Ok(Some(session)) => session,
                Ok(None) => {
                    state.sessions.forget(&hash);
                    return Err(ApiError::Unauthorized);
                }
                // The database is out of reach: a session seen before still
                // counts, so the request can go on and keep its payload.
                Err(error) => state
                    .sessions
                    .recall(&hash)
                    .ok_or(ApiError::StorageUnavailable(error))?,
            };
            let user = AuthenticatedUser {
                username: session.username,
                role: session.role,
            };
            // The request log names the user; the middleware reads it from here.
            req.extensions_mut().insert(user.clone());
            Ok(user)
        })
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthenticatedUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if user.role != Role::Admin {
                return Err(ApiError::Forbidden);
            }
            Ok(AdminUser(user))
        })
    }
}

pub(super) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The request's transaction id: the client's `X-Transaction-Id`, or a new
/// UUID. Set by the request-context middleware on every request.
#[derive(Debug, Clone)]
pub struct TransactionId(pub String);

impl FromRequest for TransactionId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<TransactionId>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the request-context middleware is not installed"))),
        )
    }
}

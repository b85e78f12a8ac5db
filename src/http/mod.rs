//! The HTTP API: one module per resource, one error type, the routes here.

mod activity;
mod admin;
mod auth;
mod body;
mod drafts;
pub mod error;
mod extract;
mod health;
mod idempotency_locks;
mod middleware;
mod pages;
mod rate_limit;
mod sessions;
mod state;
mod storage;

pub use error::ApiError;
pub use middleware::request_context;
pub use rate_limit::LoginLimiter;
pub use sessions::SessionCache;
pub use state::AppState;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Extractor failures answer in our JSON error shape too.
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
        .app_data(
            web::QueryConfig::default().error_handler(|error, _| ApiError::InvalidRequest(error.to_string()).into()),
        );
    cfg.configure(health::routes);
    cfg.configure(activity::routes)
        .service(
            web::scope("/api")
                .service(resource("/login").route(web::post().to(auth::login)))
                .service(resource("/logout").route(web::post().to(auth::logout)))
                .service(
                    resource("/storage/{key}")
                        .route(web::get().to(storage::get_value))
                        .route(web::put().to(storage::put_value)),
                )
                .service(resource("/storage/{key}/items").route(web::post().to(storage::append_item)))
                .service(
                    resource("/storage/{key}/items/{id}")
                        .route(web::patch().to(storage::patch_item))
                        .route(web::delete().to(storage::delete_item)),
                )
                .service(resource("/storage/{key}/history").route(web::get().to(storage::history)))
                .service(resource("/storage/{key}/versions/{version}").route(web::get().to(storage::version)))
                .service(resource("/drafts").route(web::get().to(drafts::list_mine)))
                .service(resource("/drafts/submit-all").route(web::post().to(drafts::submit_all_mine)))
                .service(
                    resource("/drafts/{id}")
                        .route(web::get().to(drafts::get_mine))
                        .route(web::delete().to(drafts::delete_mine)),
                )
                .service(resource("/drafts/{id}/submit").route(web::post().to(drafts::submit_mine)))
                .service(resource("/admin/users").route(web::post().to(admin::create_user)))
                .service(resource("/admin/drafts").route(web::get().to(drafts::list_all)))
                .service(resource("/admin/drafts/stats").route(web::get().to(drafts::stats)))
                .service(
                    resource("/admin/drafts/{id}")
                        .route(web::get().to(drafts::get_any))
                        .route(web::delete().to(drafts::delete_any)),
                )
                .service(resource("/admin/drafts/{id}/submit").route(web::post().to(drafts::submit_any))),
        )
        .configure(pages::routes)
        .default_service(web::to(not_found));
}

/// A resource whose unknown methods answer 405 in our JSON error shape.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Headers every response carries: no sniffing, no framing, no caching of
/// API answers, no referrer leaks.
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
}

//! The benchmark's ceiling (design B0 of `loadtest bench`): the coordinator's
//! HTTP stack with nothing behind it. `PUT /api/storage/{key}` parses the
//! body as JSON, as the coordinator does, and answers 200 with an `ETag`;
//! nothing is stored, logged or flushed. Prints one `server_started` JSON
//! line with the address it listens on, like the coordinator.
//!
//! ```text
//! cargo run --release --example bare_handler -- 127.0.0.1:0
//! ```

use actix_web::{web, App, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicU64, Ordering};

// The coordinator's allocator, so that the two differ only in what the
// coordinator does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

static VERSION: AtomicU64 = AtomicU64::new(0);

async fn put(key: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let records: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(_) => return HttpResponse::BadRequest().json(serde_json::json!({ "error": "invalid_json" })),
    };
    if !records.is_array() {
        return HttpResponse::BadRequest().json(serde_json::json!({ "error": "not_an_array" }));
    }
    let version = VERSION.fetch_add(1, Ordering::Relaxed) + 1;
    HttpResponse::Ok()
        .insert_header(("ETag", format!("\"{version}\"")))
        .json(serde_json::json!({ "key": key.as_str(), "version": version }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let server = HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/api/storage/{key}", web::put().to(put))
    })
    .bind(&listen)?;
    for address in server.addrs() {
        println!(
            "{}",
            serde_json::json!({ "event": "server_started", "listen": address.to_string() })
        );
    }
    server.run().await
}

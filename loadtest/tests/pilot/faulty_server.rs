//! A small server that speaks just enough of the coordinator's API for the
//! pilot, with planted faults: it acknowledges some writes and drops them,
//! or answers 409 "draft saved" and keeps no draft. Each fault is counted,
//! so a test can demand that the load tester finds every one.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

pub const ADMIN_PASSWORD: &str = "faulty-admin-password";

/// Which faults to plant; 0 = never.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Acknowledge every Nth accepted write to an activities key, store nothing.
    pub drop_every_nth_write: usize,
    /// Answer every Nth conflict with a draft id, keep no draft.
    pub lose_every_nth_draft: usize,
}

/// How many faults were planted.
#[derive(Default)]
pub struct Planted {
    pub dropped_writes: AtomicUsize,
    pub lost_drafts: AtomicUsize,
}

struct Draft {
    id: String,
    key: String,
    username: String,
    payload: Value,
    attempts: i64,
    last_error: Option<String>,
    seq: usize,
}

#[derive(Default)]
struct State {
    passwords: HashMap<String, String>,
    tokens: HashMap<String, String>,
    values: HashMap<String, (Value, i64)>,
    drafts: Vec<Draft>,
    accepted: usize,
    conflicts: usize,
    next: usize,
}

struct Shared {
    state: Mutex<State>,
    faults: Faults,
    planted: Arc<Planted>,
}

pub struct FaultyServer {
    pub url: String,
    pub planted: Arc<Planted>,
    handle: actix_web::dev::ServerHandle,
}

impl FaultyServer {
    pub fn start(faults: Faults) -> Self {
        let planted = Arc::new(Planted::default());
        let mut state = State::default();
        state.passwords.insert("admin".into(), ADMIN_PASSWORD.into());
        let shared = web::Data::new(Shared {
            state: Mutex::new(state),
            faults,
            planted: planted.clone(),
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || App::new().app_data(shared.clone()).configure(routes))
                    .workers(1)
                    .bind(("127.0.0.1", 0))
                    .expect("binding the faulty server");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("the test waits for the port");
                server.await
            })
        });
        let (port, handle) = rx.recv().expect("the faulty server starts");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            planted,
            handle,
        }
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/login", web::post().to(login))
        .route("/api/admin/users", web::post().to(create_user))
        .route("/api/admin/drafts", web::get().to(admin_drafts))
        .route("/api/admin/drafts/stats", web::get().to(stats))
        .route("/api/storage/{key}", web::get().to(get_value))
        .route("/api/storage/{key}", web::put().to(put_value))
        .route("/api/drafts", web::get().to(my_drafts))
        .route("/api/drafts/submit-all", web::post().to(submit_all))
        .route("/api/drafts/{id}", web::get().to(my_draft))
        .route("/api/drafts/{id}", web::delete().to(delete_draft))
        .route("/api/drafts/{id}/submit", web::post().to(submit_one));
}

fn user_of(req: &HttpRequest, state: &State) -> Option<String> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    state.tokens.get(header.strip_prefix("Bearer ")?).cloned()
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "error": "unauthorized" }))
}

async fn login(shared: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    let (Some(name), Some(password)) = (body["username"].as_str(), body["password"].as_str()) else {
        return HttpResponse::BadRequest().finish();
    };
    if state.passwords.get(name).map(String::as_str) != Some(password) {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_credentials" }));
    }
    state.next += 1;
    let token = format!("token-{}", state.next);
    state.tokens.insert(token.clone(), name.to_owned());
    HttpResponse::Ok().json(json!({ "token": token, "username": name, "role": "user" }))
}

async fn create_user(shared: web::Data<Shared>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    if user_of(&req, &state).as_deref() != Some("admin") {
        return unauthorized();
    }
    let name = body["username"].as_str().unwrap_or_default().to_owned();
    if state.passwords.contains_key(&name) {
        return HttpResponse::Conflict().json(json!({ "error": "user_exists" }));
    }
    let password = body["password"].as_str().unwrap_or_default().to_owned();
    state.passwords.insert(name.clone(), password);
    HttpResponse::Created().json(json!({ "username": name, "role": "user" }))
}

async fn get_value(shared: web::Data<Shared>, req: HttpRequest, key: web::Path<String>) -> HttpResponse {
    let state = shared.state.lock().expect("state lock");
    if user_of(&req, &state).is_none() {
        return unauthorized();
    }
    match state.values.get(key.as_str()) {
        None => HttpResponse::NotFound().json(json!({ "error": "not_found" })),
        Some((value, version)) => HttpResponse::Ok()
            .insert_header(("ETag", format!("\"{version}\"")))
            .json(json!({ "key": *key, "value": value, "version": version, "updatedAt": "2026-01-01T00:00:00Z" })),
    }
}

async fn put_value(
    shared: web::Data<Shared>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_json" }));
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let current = state.values.get(key.as_str()).map(|(_, version)| *version);
    let fresh = match (header("if-match"), header("if-none-match"), current) {
        (Some(tag), _, Some(version)) => tag.trim_matches('"') == version.to_string(),
        (None, Some(star), None) => star == "*",
        _ => false,
    };
    if !fresh {
        state.conflicts += 1;
        state.next += 1;
        let id = format!("draft-{}", state.next);
        let lose = shared.faults.lose_every_nth_draft;
        if lose > 0 && state.conflicts.is_multiple_of(lose) {
            shared.planted.lost_drafts.fetch_add(1, Ordering::Relaxed);
        } else {
            let seq = state.next;
            state.drafts.push(Draft {
                id: id.clone(),
                key: key.to_string(),
                username,
                payload: value,
                attempts: 0,
                last_error: None,
                seq,
            });
        }
        return HttpResponse::Conflict().json(json!({
            "error": "conflict", "draftId": id, "draftSaved": true, "currentVersion": current,
        }));
    }
    let version = current.unwrap_or(0) + 1;
    state.accepted += 1;
    let drop_every = shared.faults.drop_every_nth_write;
    let drops = drop_every > 0 && key.ends_with("ctivities") && state.accepted.is_multiple_of(drop_every);
    if drops {
        // The fault: a new version is acknowledged, the old value stays.
        shared.planted.dropped_writes.fetch_add(1, Ordering::Relaxed);
        let old = state
            .values
            .get(key.as_str())
            .map_or(Value::Array(Vec::new()), |(v, _)| v.clone());
        state.values.insert(key.to_string(), (old, version));
    } else {
        state.values.insert(key.to_string(), (value, version));
    }
    let status = if current.is_some() {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    let mut status = status;
    status
        .insert_header(("ETag", format!("\"{version}\"")))
        .json(json!({ "key": *key, "version": version, "updatedAt": "2026-01-01T00:00:00Z" }))
}

fn view(draft: &Draft) -> Value {
    json!({
        "id": draft.id, "key": draft.key, "username": draft.username, "reason": "conflict",
        "attempts": draft.attempts, "lastError": draft.last_error, "payload": draft.payload,
        "createdAt": format!("2026-01-01T00:00:{:02}.{:06}Z", (draft.seq / 1_000_000) % 60, draft.seq % 1_000_000),
    })
}

async fn my_drafts(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    let drafts: Vec<Value> = state
        .drafts
        .iter()
        .filter(|d| d.username == username)
        .map(view)
        .collect();
    HttpResponse::Ok().json(json!({ "drafts": drafts }))
}

async fn my_draft(shared: web::Data<Shared>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    match state.drafts.iter().find(|d| d.id == *id && d.username == username) {
        Some(draft) => HttpResponse::Ok().json(view(draft)),
        None => HttpResponse::NotFound().json(json!({ "error": "not_found" })),
    }
}

async fn delete_draft(shared: web::Data<Shared>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    let before = state.drafts.len();
    state.drafts.retain(|d| !(d.id == *id && d.username == username));
    if state.drafts.len() < before {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().json(json!({ "error": "not_found" }))
    }
}

/// Re-applies a draft: the current records plus the draft's new ones; a
/// record both hold differently is a conflict.
fn submit(state: &mut State, id: &str) -> Value {
    let Some(index) = state.drafts.iter().position(|d| d.id == id) else {
        return json!({ "draftId": id, "status": "not_found", "error": "not_found" });
    };
    let key = state.drafts[index].key.clone();
    let (current, version) = state.values.get(&key).cloned().unwrap_or((Value::Array(Vec::new()), 0));
    let mut merged = current.as_array().cloned().unwrap_or_default();
    let mut clashes = Vec::new();
    for record in state.drafts[index].payload.as_array().cloned().unwrap_or_default() {
        match merged.iter().find(|r| r["id"] == record["id"]) {
            Some(existing) if *existing != record => clashes.push(record["id"].clone()),
            Some(_) => {}
            None => merged.push(record),
        }
    }
    if !clashes.is_empty() {
        let draft = &mut state.drafts[index];
        draft.attempts += 1;
        draft.last_error = Some("records changed on both sides".into());
        return json!({ "draftId": id, "status": "conflict", "error": "merge_conflict", "conflictingIds": clashes });
    }
    state.values.insert(key, (Value::Array(merged), version + 1));
    state.drafts.remove(index);
    json!({ "draftId": id, "status": "saved", "version": version + 1 })
}

async fn submit_one(shared: web::Data<Shared>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    if !state.drafts.iter().any(|d| d.id == *id && d.username == username) {
        return HttpResponse::NotFound().json(json!({ "error": "not_found" }));
    }
    let result = submit(&mut state, &id);
    if result["status"] == "saved" {
        HttpResponse::Ok().json(result)
    } else {
        HttpResponse::Conflict().json(result)
    }
}

async fn submit_all(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let mut state = shared.state.lock().expect("state lock");
    let Some(username) = user_of(&req, &state) else {
        return unauthorized();
    };
    let ids: Vec<String> = state
        .drafts
        .iter()
        .filter(|d| d.username == username)
        .map(|d| d.id.clone())
        .collect();
    let results: Vec<Value> = ids.iter().map(|id| submit(&mut state, id)).collect();
    HttpResponse::Ok().json(json!({ "results": results }))
}

async fn admin_drafts(
    shared: web::Data<Shared>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let state = shared.state.lock().expect("state lock");
    if user_of(&req, &state).as_deref() != Some("admin") {
        return unauthorized();
    }
    let matches = |field: &str, value: &str| query.get(field).is_none_or(|wanted| wanted == value);
    let drafts: Vec<Value> = state
        .drafts
        .iter()
        .filter(|d| matches("username", &d.username) && matches("key", &d.key))
        .map(view)
        .collect();
    HttpResponse::Ok().json(json!({ "drafts": drafts }))
}

async fn stats(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let state = shared.state.lock().expect("state lock");
    if user_of(&req, &state).as_deref() != Some("admin") {
        return unauthorized();
    }
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for draft in &state.drafts {
        *by_key.entry(draft.key.as_str()).or_default() += 1;
    }
    HttpResponse::Ok().json(json!({
        "total": state.drafts.len(), "byReason": { "conflict": state.drafts.len() }, "byKey": by_key,
    }))
}

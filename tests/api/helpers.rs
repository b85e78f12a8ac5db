//! Starting the real service for a test: in-process on port 0, over a fresh
//! SQLite file or a fresh PostgreSQL database, with typed calls for the API.

use coordinator::{Application, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const USER_PASSWORD: &str = "user-password-for-tests";

/// Set to `1` (CI does) to make the PostgreSQL variants fail instead of skip
/// when no server is reachable.
const REQUIRE_POSTGRES: &str = "COORDINATOR_REQUIRE_POSTGRES";
/// The server tests create their databases on; `DROP`ped after each test.
const POSTGRES_ADMIN_URL: &str = "COORDINATOR_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from one body:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($app: $crate::helpers::TestApp) $body

                #[actix_web::test]
                async fn sqlite() {
                    run($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.expect("SQLite is always available")).await
                }

                #[actix_web::test]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                        run(app).await
                    }
                }
            }
        )*
    };
}

/// A database that exists for one test and is removed after it.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    /// Keeps the SQLite directory alive as long as the test needs it.
    _dir: Option<tempfile::TempDir>,
    /// This test's draft spool (see `--spool-dir`), never shared.
    pub spool: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        Self {
            url: format!("sqlite://{}", dir.path().join("coordinator.db").display()),
            backend: Backend::Sqlite,
            _dir: Some(dir),
            spool: tempfile::tempdir().expect("a spool directory"),
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a loud note) when no
    /// server answers and PostgreSQL is not required.
    /// The database's name on the PostgreSQL server, for tests that act on it
    /// from outside (an outage).
    pub fn postgres_name(&self) -> Option<(&str, &str)> {
        self.postgres
            .as_ref()
            .map(|(admin_url, name)| (admin_url.as_str(), name.as_str()))
    }

    pub async fn postgres() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_ADMIN_URL).unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into());
        let required = std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v == "1");
        let connect = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(&admin_url);
        let admin = match connect.await {
            Ok(admin) => admin,
            Err(error) if required => {
                panic!("{REQUIRE_POSTGRES}=1 but PostgreSQL at {admin_url} is unreachable: {error}")
            }
            Err(error) => {
                eprintln!("SKIPPED: PostgreSQL test, no server at {admin_url} ({error}); set {REQUIRE_POSTGRES}=1 to require it");
                return None;
            }
        };
        let name = format!("coordinator_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("creating a test database");
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').expect("a PostgreSQL URL names a database");
        Some(Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            _dir: None,
            spool: tempfile::tempdir().expect("a spool directory"),
            postgres: Some((admin_url, name)),
        })
    }

    pub async fn for_backend(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// Another handle on the same database, for a second instance; only the
    /// first handle drops the database.
    pub fn shared(other: &TestDatabase) -> Self {
        Self {
            url: other.url.clone(),
            backend: other.backend,
            _dir: None,
            spool: tempfile::tempdir().expect("a spool directory"),
            postgres: None,
        }
    }

    /// The SQLite file, for tests that read it directly.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        let path = self.url.strip_prefix("sqlite://")?;
        Some(std::path::PathBuf::from(path))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any async context we could await in: use a
        // throwaway runtime on its own thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let admin = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a PostgreSQL test database: {dropped:?}");
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub db: TestDatabase,
}

pub fn settings_for(db: &TestDatabase) -> Settings {
    Settings {
        admin_password: Some(ADMIN_PASSWORD.into()),
        workers: Some(2),
        spool_dir: Some(db.spool.path().to_path_buf()),
        ..Settings::for_database(db.url.clone())
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let db = TestDatabase::for_backend(backend).await?;
    let settings = settings_for(&db);
    Some(spawn_app_with(db, settings).await)
}

pub async fn spawn_app_with(db: TestDatabase, settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("building the application");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let mut app = TestApp {
        address,
        client,
        admin_token: String::new(),
        db,
    };
    app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
    app
}

static NEXT_USER: AtomicUsize = AtomicUsize::new(1);

/// A JSON answer: status, body and the headers tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub etag: Option<String>,
    pub transaction_id: Option<String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request; `body` is raw bytes so tests can send broken JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header("etag");
        let transaction_id = header("x-transaction-id");
        let bytes = response.bytes().await.expect("reading the body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            body,
            etag,
            transaction_id,
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self.try_login(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "login of {username}: {:?}", reply.body);
        reply.body["token"].as_str().expect("a token").to_owned()
    }

    pub async fn try_login(&self, username: &str, password: &str) -> Reply {
        let body = json!({ "username": username, "password": password })
            .to_string()
            .into_bytes();
        self.call(Method::POST, "/api/login", None, &[], Some(body)).await
    }

    /// Creates a fresh user through the admin API and logs in as them.
    pub async fn new_user(&self) -> User {
        let username = format!("user{}", NEXT_USER.fetch_add(1, Ordering::Relaxed));
        let body = json!({ "username": username, "password": USER_PASSWORD, "role": "user" });
        let reply = self.post(&self.admin_token, "/api/admin/users", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let token = self.login(&username, USER_PASSWORD).await;
        User { username, token }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Method::GET, path, Some(token), &[], None).await
    }

    /// Serialises `body` before returning, so callers may pass temporaries.
    pub fn post<'a>(&'a self, token: &'a str, path: &str, body: &Value) -> impl Future<Output = Reply> + 'a {
        let body = body.to_string().into_bytes();
        let path = path.to_owned();
        async move { self.call(Method::POST, &path, Some(token), &[], Some(body)).await }
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), &[], None).await
    }

    /// `PUT /api/storage/{key}` with an optional `If-Match` header value.
    /// Serialises `value` before returning, so callers may pass temporaries.
    pub fn put<'a>(
        &'a self,
        token: &'a str,
        key: &str,
        value: &Value,
        if_match: Option<&str>,
    ) -> impl Future<Output = Reply> + 'a {
        let body = value.to_string().into_bytes();
        let path = format!("/api/storage/{key}");
        let if_match = if_match.map(str::to_owned);
        async move {
            let headers: Vec<(&str, &str)> = if_match.as_deref().map(|v| ("if-match", v)).into_iter().collect();
            self.call(Method::PUT, &path, Some(token), &headers, Some(body)).await
        }
    }

    pub async fn read(&self, token: &str, key: &str) -> Reply {
        self.get(token, &format!("/api/storage/{key}")).await
    }

    pub async fn my_drafts(&self, token: &str) -> Vec<Value> {
        let reply = self.get(token, "/api/drafts").await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.body["drafts"].as_array().expect("a drafts array").clone()
    }

    /// Creates `key` with `value` (version 1).
    pub async fn seed(&self, key: &str, value: &Value) -> Reply {
        let reply = self.put(&self.admin_token, key, value, None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply
    }
}

pub struct User {
    pub username: String,
    pub token: String,
}

/// An external activity as the web app stores it.
pub fn activity(id: &str, created_by: &str, notes: &str) -> Value {
    json!({
        "id": id,
        "accountId": "acct-1",
        "projectId": "proj-1",
        "type": "customerCall",
        "date": "2026-12-03",
        "durationMinutes": 30,
        "notes": notes,
        "createdBy": created_by,
    })
}

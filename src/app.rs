//! Building and running the service: connect and migrate the database,
//! create the first admin, start the batch writer and the key registry, bind.
//! Tests build an `Application` on port 0 exactly as `main` does.

use crate::config::Settings;
use crate::coordinator::{BatchStats, BatchWriter, Registry, Spool};
use crate::domain::credentials::{generate_password, hash_password};
use crate::domain::{Role, Username};
use crate::http::{self, AppState};
use crate::store::{NewUserOutcome, Store};
use actix::Actor;
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url, settings.db_max_connections).await?;
        store.migrate().await?;
        bootstrap_admin(&store, settings.admin_password.as_deref()).await?;

        let batch_stats = Arc::new(BatchStats::default());
        let spool = Arc::new(Spool::new(&spool_dir(&settings, &store)));
        let writer = BatchWriter::new(store.clone(), settings.max_batch, batch_stats.clone(), spool).start();
        let registry = Registry::new(store.clone(), writer, settings.actor_idle_timeout());
        let state = web::Data::new(AppState {
            store: store.clone(),
            registry,
            max_body_bytes: settings.max_body_bytes,
            token_ttl: settings.token_ttl(),
            sessions: http::SessionCache::new(settings.session_recheck()),
            idempotency_locks: Default::default(),
            allow_unconditional: settings.allow_unconditional,
            max_json_depth: settings.max_json_depth as usize,
            metrics_token: settings.metrics_token.clone(),
            login_limiter: http::LoginLimiter::new(
                settings.login_max_failures_per_user,
                settings.login_max_failures_per_address,
                Duration::from_secs(settings.login_failure_window_secs),
            ),
            batch_stats,
        });

        let listener = TcpListener::bind(&settings.listen).with_context(|| format!("binding {}", settings.listen))?;
        let address = listener.local_addr()?;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(http::security_headers())
                .wrap(middleware::from_fn(http::request_context))
                .configure(http::routes)
        })
        .listen(listener)?;
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        // SIGTERM / Ctrl-C: stop accepting, let every request in flight get its
        // answer (each waits for its commit or draft to be durable), then stop.
        let server = server.shutdown_timeout(SHUTDOWN_GRACE.as_secs()).run();
        spawn_session_sweeper(store.clone());
        tracing::info!(
            event = "server_started",
            listen = %address,
            backend = store.backend_name(),
            maxBodyBytes = settings.max_body_bytes,
        );
        Ok(Self {
            port: address.port(),
            server,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        self.store.close().await;
        tracing::info!(event = "server_stopped");
        Ok(())
    }
}

/// `--spool-dir`, or `spool` beside the SQLite database (`data/spool` on PostgreSQL).
fn spool_dir(settings: &Settings, store: &Store) -> PathBuf {
    if let Some(dir) = &settings.spool_dir {
        return dir.clone();
    }
    store
        .sqlite_file()
        .and_then(|file| file.parent().map(|dir| dir.join("spool")))
        .unwrap_or_else(|| PathBuf::from("data/spool"))
}

/// Forgets expired sessions (refused at lookup anyway) and Idempotency-Keys
/// past their retention, so the tables stay small.
fn spawn_session_sweeper(store: Store) {
    actix_web::rt::spawn(async move {
        let mut every_hour = actix_web::rt::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            if let Err(error) = store.delete_expired_sessions().await {
                tracing::warn!(event = "session_sweep_failed", error = %error);
            }
            if let Err(error) = store.delete_expired_idempotency().await {
                tracing::warn!(event = "idempotency_sweep_failed", error = %error);
            }
        }
    });
}

/// On a database with no users, creates `admin`. The password is the given
/// one, or a generated one written to `admin-password` (mode 0600) beside the
/// database; the log names the file, never the password.
async fn bootstrap_admin(store: &Store, password: Option<&str>) -> anyhow::Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, file) = match password {
        Some(password) => (password.to_owned(), None),
        None => {
            let password = generate_password();
            // Beside the SQLite file; `data/` when the database is elsewhere.
            let dir = store
                .sqlite_file()
                .and_then(|f| f.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("data"));
            let file = dir.join("admin-password");
            write_secret(&file, &password)?;
            (password, Some(file))
        }
    };
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let admin = Username::parse("admin").expect("`admin` is a valid username");
    if store.insert_user(&admin, &hash, Role::Admin).await? == NewUserOutcome::Created {
        match file {
            Some(file) => tracing::info!(
                event = "admin_user_created",
                username = "admin",
                passwordFile = %file.display(),
            ),
            None => tracing::info!(
                event = "admin_user_created",
                username = "admin",
                passwordSource = "COORDINATOR_ADMIN_PASSWORD",
            ),
        }
    }
    Ok(())
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(())
}

/// `coordinator user add`: creates a user from the command line.
pub async fn add_user(store: &Store, name: &str, password: &str, role: Role) -> anyhow::Result<()> {
    let username = Username::parse(name)?;
    let password = password.to_owned();
    crate::domain::credentials::check_password_rules(&password)?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    match store.insert_user(&username, &hash, role).await? {
        NewUserOutcome::Created => Ok(()),
        NewUserOutcome::AlreadyExists => anyhow::bail!("user {name} already exists"),
    }
}

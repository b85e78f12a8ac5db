//! Every setting, with its flag, its environment variable and its default.
//! Flags win over the environment; the README's configuration table lists
//! the same.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    version,
    about = "Serialises concurrent JSON writes per key; stale writes become drafts."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of stdin.
    Add {
        name: String,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Address and port to listen on; port 0 picks a free port (the log says which).
    #[arg(long, env = "COORDINATOR_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: String,

    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/coordinator.db",
        global = true
    )]
    pub database_url: String,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "COORDINATOR_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// `json` (one object per line) or `text` (for people).
    #[arg(
        long,
        env = "COORDINATOR_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `debug` or `warn,coordinator=debug`.
    #[arg(long, env = "COORDINATOR_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// Lifetime of a login token, in seconds.
    #[arg(long, env = "COORDINATOR_TOKEN_TTL_SECS", default_value_t = 12 * 60 * 60, global = true)]
    pub token_ttl_secs: u64,

    /// A key actor with no message for this many seconds stops; the next
    /// request for its key starts a new one that reloads from the database.
    #[arg(long, env = "COORDINATOR_ACTOR_IDLE_SECS", default_value_t = 60.0, global = true)]
    pub actor_idle_secs: f64,

    /// Size of the database connection pool.
    #[arg(long, env = "COORDINATOR_DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub db_max_connections: u32,

    /// For legacy clients that send no If-Match: let such a PUT through when it
    /// only adds records (a superset by id of the current value); anything
    /// else becomes a 409 and an `unsafe_overwrite` draft.
    #[arg(long, env = "COORDINATOR_ALLOW_UNCONDITIONAL", global = true)]
    pub allow_unconditional: bool,

    /// Most commits and drafts written in one transaction (group commit:
    /// what queues while a transaction is in flight goes into the next).
    /// `1` turns batching off.
    #[arg(long, env = "COORDINATOR_MAX_BATCH", default_value_t = 512, global = true)]
    pub max_batch: usize,

    /// Where drafts are kept when the database refuses them, until it takes
    /// them again; defaults to `spool/` beside the SQLite file, `data/spool` on PostgreSQL.
    #[arg(long, env = "COORDINATOR_SPOOL_DIR", global = true)]
    pub spool_dir: Option<std::path::PathBuf>,

    /// Deepest nesting of arrays and objects accepted in a JSON body (at most
    /// 127, the parser's own limit); deeper bodies get 400 `json_too_deep`.
    #[arg(long, env = "COORDINATOR_MAX_JSON_DEPTH", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=127), global = true)]
    pub max_json_depth: u32,

    /// When set, `GET /metrics` requires `Authorization: Bearer <this token>`;
    /// without it the metrics are open (bind to a private address).
    #[arg(long, env = "COORDINATOR_METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,

    /// Failed logins per username within the window before further attempts
    /// for that username get 429 (counted in memory, per instance).
    #[arg(
        long,
        env = "COORDINATOR_LOGIN_MAX_FAILURES_PER_USER",
        default_value_t = 10,
        global = true
    )]
    pub login_max_failures_per_user: u32,

    /// Failed logins per client address within the window before further
    /// attempts from that address get 429 (counted in memory, per instance).
    #[arg(
        long,
        env = "COORDINATOR_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub login_max_failures_per_address: u32,

    /// The window, in seconds, over which failed logins are counted.
    #[arg(
        long,
        env = "COORDINATOR_LOGIN_FAILURE_WINDOW_SECS",
        default_value_t = 300,
        global = true
    )]
    pub login_failure_window_secs: u64,

    /// A session the database confirmed less than this many seconds ago is
    /// trusted without asking it again (one database round trip less per
    /// request). A logout is seen at once by the instance that served it and
    /// within this time by other instances. `0` asks the database every time.
    #[arg(long, env = "COORDINATOR_SESSION_RECHECK_SECS", default_value_t = 5.0, global = true)]
    pub session_recheck_secs: f64,

    /// HTTP worker threads; defaults to the number of CPU cores.
    #[arg(long, env = "COORDINATOR_WORKERS", global = true)]
    pub workers: Option<usize>,

    /// Password for the `admin` user created on first start. Prefer the
    /// environment variable: a flag is visible to other local users.
    /// Without it a password is generated into `admin-password`.
    #[arg(long, env = "COORDINATOR_ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl Settings {
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    pub fn session_recheck(&self) -> Duration {
        // `from_secs_f64` panics on infinity and NaN.
        let secs = if self.session_recheck_secs.is_nan() {
            0.0
        } else {
            self.session_recheck_secs.clamp(0.0, 86_400.0)
        };
        Duration::from_secs_f64(secs)
    }

    pub fn actor_idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.actor_idle_secs.max(0.01))
    }

    /// Defaults for tests and tools: a given database, a free port, quiet logs.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let cli = Cli::parse_from(["coordinator"]);
        Self {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            ..cli.settings
        }
    }
}

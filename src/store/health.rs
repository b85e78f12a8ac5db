//! Readiness: is the database reachable, and has it every migration this
//! binary carries? `GET /readyz` asks; a load balancer stops sending traffic
//! to an instance that answers no.

use super::{with_pool, Backend, Store, StoreResult};
use std::collections::HashSet;

/// What the readiness probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// These migration versions of this binary are not applied (or failed).
    MigrationsPending(Vec<i64>),
}

impl Store {
    /// One round trip to the database: the applied migrations, compared with
    /// the ones embedded in the binary. An error means unreachable.
    pub async fn readiness(&self) -> StoreResult<Readiness> {
        let applied: Vec<i64> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_all(pool)
        .await?);
        let applied: HashSet<i64> = applied.into_iter().collect();
        let migrator = match &self.backend {
            Backend::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        };
        let pending: Vec<i64> = migrator
            .iter()
            .filter(|migration| migration.migration_type.is_up_migration())
            .map(|migration| migration.version)
            .filter(|version| !applied.contains(version))
            .collect();
        Ok(if pending.is_empty() {
            Readiness::Ready
        } else {
            Readiness::MigrationsPending(pending)
        })
    }
}

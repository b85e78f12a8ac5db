use super::{with_pool, Store, StoreResult};
use crate::domain::Timestamp;
use std::time::Duration;

/// How long an `Idempotency-Key` is remembered, at least.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The first outcome of a request sent with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub username: String,
    pub key: String,
    /// SHA-256 of what the request asked for; the same key with another
    /// request is refused.
    pub request_hash: String,
    /// The outcome, as JSON, to answer again on a retry.
    pub outcome: String,
}

impl Store {
    pub async fn find_idempotency(&self, username: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT request_hash, outcome FROM idempotency_keys WHERE username = $1 AND idempotency_key = $2",
        )
        .bind(username)
        .bind(key)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(request_hash, outcome)| IdempotencyRecord {
            username: username.to_owned(),
            key: key.to_owned(),
            request_hash,
            outcome,
        }))
    }

    /// Remembers an outcome; a record already there for the key is kept.
    pub async fn save_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut connection = pool.acquire().await?;
            insert_idempotency(&mut *connection, record).await
        })
    }

    /// Forgets keys older than the retention; returns how many.
    pub async fn delete_expired_idempotency(&self) -> StoreResult<u64> {
        let cutoff = Timestamp::now().as_datetime()
            - chrono::Duration::from_std(IDEMPOTENCY_RETENTION).expect("24 h fits a chrono duration");
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected()),
        )
    }
}

/// The insert, on any connection or transaction of either backend (it also
/// runs inside a commit's transaction).
pub(super) async fn insert_idempotency<'c, E>(executor: E, record: &IdempotencyRecord) -> StoreResult<()>
where
    E: sqlx::Executor<'c>,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
    for<'q> String: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
    for<'q> chrono::DateTime<chrono::Utc>: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
{
    sqlx::query(
        "INSERT INTO idempotency_keys (username, idempotency_key, request_hash, outcome, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(record.username.clone())
    .bind(record.key.clone())
    .bind(record.request_hash.clone())
    .bind(record.outcome.clone())
    .bind(Timestamp::now().as_datetime())
    .execute(executor)
    .await?;
    Ok(())
}

//! Revoking a login: `POST /api/logout` deletes the session row, so the token
//! is refused at its next lookup on every instance sharing the database.

use super::{with_pool, Store, StoreResult};

impl Store {
    /// Deletes the session with this token hash; returns whether it existed.
    pub async fn revoke_session(&self, token_hash: &str) -> StoreResult<bool> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted > 0)
    }
}

use super::{with_pool, Store, StoreResult};
use crate::domain::{Role, Timestamp, Username};
use chrono::{DateTime, Utc};

/// Who a valid session token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub username: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUserOutcome {
    Created,
    AlreadyExists,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    password_hash: String,
    role: String,
}

impl Store {
    pub async fn count_users(&self) -> StoreResult<i64> {
        with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await)
    }

    pub async fn insert_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> StoreResult<NewUserOutcome> {
        let inserted = with_pool!(self, pool => sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(password_hash)
        .bind(role.as_str())
        .bind(Timestamp::now().as_datetime())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(if inserted == 1 {
            NewUserOutcome::Created
        } else {
            NewUserOutcome::AlreadyExists
        })
    }

    /// The stored password hash and role of a user.
    pub async fn find_user(&self, username: &str) -> StoreResult<Option<(String, Role)>> {
        let row: Option<UserRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT password_hash, role FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|row| Some((row.password_hash, Role::parse(&row.role)?))))
    }

    pub async fn insert_session(&self, token_hash: &str, username: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO sessions (token_hash, username, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(username)
        .bind(Timestamp::now().as_datetime())
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ()))
    }

    /// The user behind a token hash, if the session exists and has not expired.
    pub async fn find_session(&self, token_hash: &str) -> StoreResult<Option<SessionUser>> {
        let row: Option<(String, String, DateTime<Utc>)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT s.username, u.role, s.expires_at FROM sessions s JOIN users u ON u.username = s.username \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(Timestamp::now().as_datetime())
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(username, role, expires_at)| {
            Some(SessionUser {
                username,
                role: Role::parse(&role)?,
                expires_at,
            })
        }))
    }

    /// Forgets expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> StoreResult<u64> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(Timestamp::now().as_datetime())
            .execute(pool)
            .await?
            .rows_affected()),
        )
    }
}

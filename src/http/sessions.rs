//! Sessions seen recently, remembered in memory for two reasons:
//! - a session the database confirmed moments ago is trusted without asking
//!   again, which saves a database round trip on most requests of a busy
//!   user (the window is `--session-recheck-secs`; expiry is still checked);
//! - people who are logged in can keep saving while the database is briefly
//!   out of reach: their writes are then answered 503 with the payload kept
//!   (spooled), not refused at the door with nothing kept.
//!
//! Past the window the database is the authority again: a session it no
//! longer knows (logged out on another instance) is refused.

use crate::store::SessionUser;
use chrono::Utc;
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// Beyond this many remembered sessions the cache starts over (it refills
/// from the database on the next request of each user).
const CAPACITY: usize = 10_000;

pub struct SessionCache {
    by_token_hash: DashMap<String, Remembered>,
    /// Tokens logged out here, with when: a lookup that read the session just
    /// before the logout must not put it back.
    revoked: DashMap<String, Instant>,
    recheck_after: Duration,
}

/// How long a logout's mark outlives it: far longer than any lookup takes.
const REVOCATION_MEMORY: Duration = Duration::from_secs(600);

struct Remembered {
    session: SessionUser,
    confirmed_at: Instant,
}

impl SessionCache {
    pub fn new(recheck_after: Duration) -> Self {
        Self {
            by_token_hash: DashMap::new(),
            revoked: DashMap::new(),
            recheck_after,
        }
    }

    /// Notes that the database just confirmed this session.
    pub fn remember(&self, token_hash: &str, session: &SessionUser) {
        if self.revoked.contains_key(token_hash) {
            return;
        }
        if self.by_token_hash.len() >= CAPACITY {
            self.by_token_hash.clear();
        }
        let remembered = Remembered {
            session: session.clone(),
            confirmed_at: Instant::now(),
        };
        self.by_token_hash.insert(token_hash.to_owned(), remembered);
    }

    /// The session, if the database confirmed it within the recheck window
    /// and it has not expired.
    pub fn recently_confirmed(&self, token_hash: &str) -> Option<SessionUser> {
        let entry = self.by_token_hash.get(token_hash)?;
        (entry.confirmed_at.elapsed() < self.recheck_after && entry.session.expires_at > Utc::now())
            .then(|| entry.session.clone())
    }

    /// The remembered session however long ago it was confirmed, if it has
    /// not expired: for when the database cannot be asked.
    pub fn recall(&self, token_hash: &str) -> Option<SessionUser> {
        let session = self.by_token_hash.get(token_hash)?.session.clone();
        (session.expires_at > Utc::now()).then_some(session)
    }

    /// The database no longer knows this session.
    pub fn forget(&self, token_hash: &str) {
        self.by_token_hash.remove(token_hash);
    }

    /// This instance logged the session out: forget it, and refuse to
    /// remember it again from a lookup that raced with the logout.
    pub fn revoke(&self, token_hash: &str) {
        if self.revoked.len() >= CAPACITY {
            self.revoked.retain(|_, at| at.elapsed() < REVOCATION_MEMORY);
        }
        self.revoked.insert(token_hash.to_owned(), Instant::now());
        self.forget(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn session(expires_in: chrono::Duration) -> SessionUser {
        SessionUser {
            username: "alice".into(),
            role: Role::User,
            expires_at: Utc::now() + expires_in,
        }
    }

    #[test]
    fn a_confirmation_is_trusted_only_within_the_window_and_before_expiry() {
        let cache = SessionCache::new(Duration::from_millis(50));
        cache.remember("t", &session(chrono::Duration::hours(1)));
        assert!(cache.recently_confirmed("t").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            cache.recently_confirmed("t").is_none(),
            "past the window the database is asked"
        );
        assert!(
            cache.recall("t").is_some(),
            "but it can still stand in when the database cannot answer"
        );

        cache.remember("expired", &session(chrono::Duration::seconds(-1)));
        assert!(cache.recently_confirmed("expired").is_none());
        assert!(cache.recall("expired").is_none());
    }

    #[test]
    fn a_lookup_that_raced_a_logout_cannot_bring_the_session_back() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let alive = session(chrono::Duration::hours(1));
        cache.remember("t", &alive);
        cache.revoke("t");
        cache.remember("t", &alive);
        assert!(cache.recently_confirmed("t").is_none());
        assert!(cache.recall("t").is_none());
        assert!(SessionCache::new(Duration::ZERO).recently_confirmed("t").is_none());
    }
}

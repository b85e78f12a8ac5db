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
    recheck_after: Duration,
}

struct Remembered {
    session: SessionUser,
    confirmed_at: Instant,
}

impl SessionCache {
    pub fn new(recheck_after: Duration) -> Self {
        Self {
            by_token_hash: DashMap::new(),
            recheck_after,
        }
    }

    /// Notes that the database just confirmed this session.
    pub fn remember(&self, token_hash: &str, session: &SessionUser) {
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

    pub fn forget(&self, token_hash: &str) {
        self.by_token_hash.remove(token_hash);
    }
}

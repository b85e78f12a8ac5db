//! Sessions seen recently, remembered in memory so that people who are
//! logged in can keep saving while the database is briefly out of reach:
//! their writes are then answered 503 with the payload kept (spooled), not
//! refused at the door with nothing kept. The database stays the authority
//! whenever it answers: a revoked or expired session is refused at once.

use crate::store::SessionUser;
use chrono::Utc;
use dashmap::DashMap;

/// Beyond this many remembered sessions the cache starts over (it refills
/// from the database on the next request of each user).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct SessionCache {
    by_token_hash: DashMap<String, SessionUser>,
}

impl SessionCache {
    pub fn remember(&self, token_hash: &str, session: &SessionUser) {
        if self.by_token_hash.len() >= CAPACITY {
            self.by_token_hash.clear();
        }
        self.by_token_hash.insert(token_hash.to_owned(), session.clone());
    }

    /// The remembered session, if it has not expired.
    pub fn recall(&self, token_hash: &str) -> Option<SessionUser> {
        let session = self.by_token_hash.get(token_hash)?.clone();
        (session.expires_at > Utc::now()).then_some(session)
    }

    pub fn forget(&self, token_hash: &str) {
        self.by_token_hash.remove(token_hash);
    }
}

//! Login throttling: too many failed logins for one username, or from one
//! client address, within a window get `429 too_many_attempts` with
//! `Retry-After` until the oldest counted failure leaves the window.
//!
//! The counts live **in memory, per instance**: a restart forgets them, and
//! behind a load balancer each instance counts on its own (an attacker gets
//! at most the limit times the number of instances). That is enough to make
//! guessing passwords slow; argon2 makes each guess expensive as well. The
//! address is the TCP peer, not `X-Forwarded-For` (which a client could
//! forge): behind a proxy all clients share the proxy's address, so the
//! per-address limit should be set higher there.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Beyond this many tracked names or addresses, expired entries are swept
/// before a new one is added, so guessing many usernames cannot grow the
/// maps without bound for longer than one window.
const SWEEP_ABOVE: usize = 10_000;

pub struct LoginLimiter {
    max_per_user: usize,
    max_per_address: usize,
    window: Duration,
    /// One lock for both maps: a login touches both, and a lock held for a
    /// few map operations never contends noticeably with argon2's cost.
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_user: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
}

impl LoginLimiter {
    pub fn new(max_per_user: u32, max_per_address: u32, window: Duration) -> Self {
        Self {
            max_per_user: max_per_user.max(1) as usize,
            max_per_address: max_per_address.max(1) as usize,
            window,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// `Err(retry_after)` when this username or address must wait.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let user_wait = failures
            .by_user
            .get_mut(username)
            .and_then(|times| self.wait(times, self.max_per_user, now));
        let address_wait = address
            .and_then(|address| failures.by_address.get_mut(&address))
            .and_then(|times| self.wait(times, self.max_per_address, now));
        match user_wait.max(address_wait) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed login for the username and the address.
    pub fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.window;
        if failures.by_user.len() > SWEEP_ABOVE {
            failures.by_user.retain(|_, times| expire(times, window, now));
        }
        if failures.by_address.len() > SWEEP_ABOVE {
            failures.by_address.retain(|_, times| expire(times, window, now));
        }
        push(
            failures.by_user.entry(username.to_owned()).or_default(),
            self.max_per_user,
            now,
        );
        if let Some(address) = address {
            push(
                failures.by_address.entry(address).or_default(),
                self.max_per_address,
                now,
            );
        }
    }

    /// A successful login clears the username's failures (not the address's:
    /// one right password must not reset a spray over many usernames).
    pub fn record_success(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.by_user.remove(username);
    }

    /// How long until fewer than `max` failures are in the window, if `max` are.
    fn wait(&self, times: &mut VecDeque<Instant>, max: usize, now: Instant) -> Option<Duration> {
        expire(times, self.window, now);
        if times.len() < max {
            return None;
        }
        let oldest = *times.front()?;
        Some((oldest + self.window).saturating_duration_since(now))
    }
}

/// Drops failures older than the window; returns whether any remain.
fn expire(times: &mut VecDeque<Instant>, window: Duration, now: Instant) -> bool {
    while times.front().is_some_and(|&t| now.duration_since(t) >= window) {
        times.pop_front();
    }
    !times.is_empty()
}

/// Keeps at most `max` timestamps: older ones cannot change a decision.
fn push(times: &mut VecDeque<Instant>, max: usize, now: Instant) {
    times.push_back(now);
    while times.len() > max {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn the_limit_per_user_applies_to_that_user_only() {
        let limiter = LoginLimiter::new(2, 100, Duration::from_secs(60));
        limiter.record_failure("alice", HOME);
        assert!(limiter.check("alice", HOME).is_ok());
        limiter.record_failure("alice", HOME);
        let wait = limiter.check("alice", HOME).unwrap_err();
        assert!(
            wait > Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(limiter.check("bob", HOME).is_ok());
    }

    #[test]
    fn the_limit_per_address_spans_usernames() {
        let limiter = LoginLimiter::new(100, 3, Duration::from_secs(60));
        for name in ["a", "b", "c"] {
            limiter.record_failure(name, HOME);
        }
        assert!(limiter.check("d", HOME).is_err());
        assert!(limiter.check("d", None).is_ok());
    }

    #[test]
    fn failures_leave_the_window_and_success_clears_the_user() {
        let limiter = LoginLimiter::new(1, 100, Duration::from_millis(30));
        limiter.record_failure("alice", HOME);
        assert!(limiter.check("alice", HOME).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(limiter.check("alice", HOME).is_ok());
        limiter.record_failure("alice", HOME);
        limiter.record_success("alice");
        assert!(limiter.check("alice", HOME).is_ok());
    }
}

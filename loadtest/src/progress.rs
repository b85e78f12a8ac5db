//! Progress on stderr: a live line on a terminal, plain lines otherwise
//! (CI logs stay readable). The counters are atomics the virtual users bump.

use crate::client::{PhaseMetrics, PutOutcome};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Progress {
    counts: Arc<Counts>,
    live: bool,
    started: Instant,
}

#[derive(Default)]
struct Counts {
    saved: AtomicU64,
    conflicts: AtomicU64,
    other: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            counts: Arc::default(),
            live: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// A plain progress line, stamped with the seconds since the start.
    pub fn line(&self, text: &str) {
        let clear = if self.live { "\r\x1b[2K" } else { "" };
        let at = self.started.elapsed().as_secs_f64();
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{clear}[{at:6.1}s] {text}");
    }

    pub fn count(&self, outcome: &PutOutcome) {
        let counter = match outcome {
            PutOutcome::Saved { .. } => &self.counts.saved,
            PutOutcome::Conflict { .. } => &self.counts.conflicts,
            _ => &self.counts.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Redraws a status line for `phase` every 250 ms until stopped (on a
    /// terminal only).
    pub fn tick(&self, phase: &'static str, planned: Duration, metrics: Arc<PhaseMetrics>) -> Ticker {
        if !self.live {
            return Ticker(None);
        }
        let counts = self.counts.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                let elapsed = started.elapsed().as_secs_f64();
                let bar = progress_bar(elapsed / planned.as_secs_f64().max(1e-9), 24);
                let mut stderr = std::io::stderr().lock();
                let _ = write!(
                    stderr,
                    "\r\x1b[2K[{phase}] {bar} {elapsed:5.1}s/{:.0}s  requests {}  saved {}  409 {}  other {}",
                    planned.as_secs_f64(),
                    metrics.requests(),
                    counts.saved.load(Ordering::Relaxed),
                    counts.conflicts.load(Ordering::Relaxed),
                    counts.other.load(Ordering::Relaxed),
                );
                let _ = stderr.flush();
            }
        });
        Ticker(Some(task))
    }
}

/// Stops its status line when stopped or dropped.
pub struct Ticker(Option<tokio::task::JoinHandle<()>>);

impl Ticker {
    pub fn stop(self) {}
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// `[#####-----]` for a fraction in 0..=1.
pub fn progress_bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction() {
        assert_eq!(progress_bar(0.0, 4), "[----]");
        assert_eq!(progress_bar(0.5, 4), "[##--]");
        assert_eq!(progress_bar(7.0, 4), "[####]");
    }
}

//! The server-side cross-checks: the coordinator's JSON log lines of this
//! run (matched by our transaction ids) against what the clients were told.

use crate::client::phase_of;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The log events of one phase that the checks read.
#[derive(Debug, Default, Clone)]
pub struct PhaseEvents {
    pub conflict_txs: Vec<String>,
    pub write_txs: Vec<String>,
    pub drafts_saved: Vec<String>,
    pub drafts_failed: usize,
    pub write_failed: usize,
    pub http_500: usize,
    pub http_503: usize,
}

/// This run's events, by phase.
pub fn events_by_phase(log: &str, run_id: &str) -> BTreeMap<String, PhaseEvents> {
    let mut phases: BTreeMap<String, PhaseEvents> = BTreeMap::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(tx) = event["transactionId"].as_str() else {
            continue;
        };
        let Some(phase) = phase_of(tx, run_id) else {
            continue;
        };
        let entry = phases.entry(phase.to_owned()).or_default();
        match event["event"].as_str().unwrap_or_default() {
            "storage_conflict" => entry.conflict_txs.push(tx.to_owned()),
            "storage_write" if event.get("draftId").is_none() => entry.write_txs.push(tx.to_owned()),
            "storage_pending_draft_saved" => {
                if let Some(id) = event["draftId"].as_str() {
                    entry.drafts_saved.push(id.to_owned());
                }
            }
            "storage_pending_draft_failed" => entry.drafts_failed += 1,
            "storage_write_failed" => entry.write_failed += 1,
            "http_request" => match event["statusCode"].as_u64() {
                Some(503) => entry.http_503 += 1,
                Some(code) if code >= 500 => entry.http_500 += 1,
                _ => {}
            },
            _ => {}
        }
    }
    phases
}

/// What the client side of one phase saw, to hold the log against.
#[derive(Debug, Default, Clone)]
pub struct SeenByClients {
    pub conflict_txs: HashSet<String>,
    pub acknowledged_txs: HashSet<String>,
    pub draft_ids: HashSet<String>,
}

/// One phase's cross-check.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogCheck {
    pub conflicts_seen: usize,
    pub conflict_events: usize,
    /// 409s with no `storage_conflict` line, and lines with no 409 seen.
    pub conflicts_unlogged: Vec<String>,
    pub conflict_events_unseen: Vec<String>,
    pub acknowledged: usize,
    pub write_events: usize,
    /// Acknowledged PUTs with no `storage_write` line.
    pub acknowledged_unlogged: Vec<String>,
    pub drafts_answered: usize,
    pub draft_saved_events: usize,
    /// Draft ids answered but never logged as saved, and the reverse.
    pub drafts_unlogged: Vec<String>,
    pub drafts_logged_unanswered: Vec<String>,
    /// `storage_pending_draft_saved` ids whose draft was never found pending
    /// nor recovered or discarded by us: a draft that vanished.
    pub drafts_vanished: Vec<String>,
    pub draft_failed_events: usize,
    pub write_failed_events: usize,
    pub http_500: usize,
    pub http_503: usize,
}

impl LogCheck {
    /// Mismatches that lose no data but mean the log cannot be trusted alone.
    pub fn mismatches(&self) -> usize {
        self.conflicts_unlogged.len()
            + self.conflict_events_unseen.len()
            + self.acknowledged_unlogged.len()
            + self.drafts_unlogged.len()
            + self.drafts_logged_unanswered.len()
    }

    /// Findings that fail the pilot: a vanished draft, a draft that could
    /// not be saved, a 500.
    pub fn incidents(&self) -> usize {
        self.drafts_vanished.len() + self.draft_failed_events + self.http_500
    }
}

pub fn cross_check(events: &PhaseEvents, seen: &SeenByClients, accounted_drafts: &HashSet<String>) -> LogCheck {
    let logged_conflicts: HashSet<&str> = events.conflict_txs.iter().map(String::as_str).collect();
    let logged_writes: HashSet<&str> = events.write_txs.iter().map(String::as_str).collect();
    let logged_drafts: HashSet<&str> = events.drafts_saved.iter().map(String::as_str).collect();
    let missing = |seen: &HashSet<String>, logged: &HashSet<&str>| -> Vec<String> {
        let set: BTreeSet<&String> = seen.iter().filter(|s| !logged.contains(s.as_str())).collect();
        set.into_iter().cloned().collect()
    };
    let unseen = |logged: &HashSet<&str>, seen: &HashSet<String>| -> Vec<String> {
        let set: BTreeSet<&str> = logged.iter().copied().filter(|s| !seen.contains(*s)).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    let vanished: BTreeSet<&str> = logged_drafts
        .iter()
        .copied()
        .filter(|id| !accounted_drafts.contains(*id))
        .collect();
    LogCheck {
        conflicts_seen: seen.conflict_txs.len(),
        conflict_events: events.conflict_txs.len(),
        conflicts_unlogged: missing(&seen.conflict_txs, &logged_conflicts),
        conflict_events_unseen: unseen(&logged_conflicts, &seen.conflict_txs),
        acknowledged: seen.acknowledged_txs.len(),
        write_events: events.write_txs.len(),
        acknowledged_unlogged: missing(&seen.acknowledged_txs, &logged_writes),
        drafts_answered: seen.draft_ids.len(),
        draft_saved_events: events.drafts_saved.len(),
        drafts_unlogged: missing(&seen.draft_ids, &logged_drafts),
        drafts_logged_unanswered: unseen(&logged_drafts, &seen.draft_ids),
        drafts_vanished: vanished.into_iter().map(str::to_owned).collect(),
        draft_failed_events: events.drafts_failed,
        write_failed_events: events.write_failed,
        http_500: events.http_500,
        http_503: events.http_503,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"event":"server_started","listen":"127.0.0.1:1"}
{"event":"storage_conflict","transactionId":"r1.A.5","statusCode":409}
{"event":"storage_pending_draft_saved","transactionId":"r1.A.5","draftId":"d5"}
{"event":"storage_write","transactionId":"r1.A.4"}
{"event":"storage_write","transactionId":"r1.D.9","draftId":"d5"}
{"event":"http_request","transactionId":"r1.A.6","statusCode":500}
{"event":"storage_conflict","transactionId":"other.A.5"}
not json at all
"#;

    #[test]
    fn events_are_grouped_by_the_phase_in_their_transaction_id() {
        let phases = events_by_phase(LOG, "r1");
        let a = &phases["A"];
        assert_eq!(a.conflict_txs, vec!["r1.A.5"]);
        assert_eq!(a.drafts_saved, vec!["d5"]);
        assert_eq!(a.write_txs, vec!["r1.A.4"]);
        assert_eq!(a.http_500, 1);
        // A draft submit's write is not a PUT acknowledgement.
        assert!(phases["D"].write_txs.is_empty());
    }

    #[test]
    fn the_log_agrees_with_what_clients_saw() {
        let phases = events_by_phase(LOG, "r1");
        let seen = SeenByClients {
            conflict_txs: HashSet::from(["r1.A.5".to_owned()]),
            acknowledged_txs: HashSet::from(["r1.A.4".to_owned()]),
            draft_ids: HashSet::from(["d5".to_owned()]),
        };
        let check = cross_check(&phases["A"], &seen, &HashSet::from(["d5".to_owned()]));
        assert_eq!(check.mismatches(), 0);
        assert_eq!(check.incidents(), 1, "the 500");
    }

    #[test]
    fn unlogged_conflicts_and_vanished_drafts_are_reported() {
        let phases = events_by_phase(LOG, "r1");
        let seen = SeenByClients {
            conflict_txs: HashSet::from(["r1.A.5".to_owned(), "r1.A.7".to_owned()]),
            acknowledged_txs: HashSet::new(),
            draft_ids: HashSet::from(["d5".to_owned()]),
        };
        let check = cross_check(&phases["A"], &seen, &HashSet::new());
        assert_eq!(check.conflicts_unlogged, vec!["r1.A.7"]);
        assert_eq!(check.drafts_vanished, vec!["d5"]);
    }
}

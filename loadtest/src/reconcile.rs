//! Reconciliation: what every virtual user was told about each record it
//! created, held against what the server finally stores and keeps as
//! drafts. Pure functions over plain data, so each rule is tested alone.

use crate::client::{DraftView, PutOutcome};
use crate::records::{count_ids, find_record};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// One record a virtual user tried to add, and what the server answered.
#[derive(Debug, Clone)]
pub struct Submission {
    pub phase: &'static str,
    pub username: Arc<str>,
    pub key: String,
    pub record_id: String,
    /// The record as sent; `None` where only its id is checked (burst).
    pub record: Option<Value>,
    /// The PUT's transaction id and outcome; `None` when the read before it failed.
    pub put: Option<(String, PutOutcome)>,
}

impl Submission {
    pub fn outcome(&self) -> Option<&PutOutcome> {
        self.put.as_ref().map(|(_, outcome)| outcome)
    }

    pub fn tx(&self) -> Option<&str> {
        self.put.as_ref().map(|(tx, _)| tx.as_str())
    }
}

/// One record that did not end where its answer said it would.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub phase: String,
    pub key: String,
    pub record_id: String,
    pub username: String,
    pub transaction_id: Option<String>,
    pub detail: String,
}

impl Incident {
    fn of(submission: &Submission, detail: impl Into<String>) -> Self {
        Self {
            phase: submission.phase.to_owned(),
            key: submission.key.clone(),
            record_id: submission.record_id.clone(),
            username: submission.username.to_string(),
            transaction_id: submission.tx().map(str::to_owned),
            detail: detail.into(),
        }
    }
}

/// When the reconciliation runs: right after a scenario (conflicts must be
/// held by drafts), or after D's recovery (every record stored once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    AfterScenario,
    AfterRecovery,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    /// PUTs sent.
    pub writes: usize,
    pub acknowledged: usize,
    pub conflicts: usize,
    pub unavailable: usize,
    pub rejected: usize,
    pub no_answer: usize,
    /// Submissions abandoned because the read before the PUT failed.
    pub not_sent: usize,
    /// Records found stored exactly once.
    pub stored_once: usize,
    /// Records found held by their draft (before recovery).
    pub held_by_draft: usize,
    /// Acknowledged (200/201) but missing: "saved but disappeared".
    pub disappeared: Vec<Incident>,
    /// Stored more than once.
    pub duplicates: Vec<Incident>,
    /// Answered 409/503 but no pending draft holds the record.
    pub lost_conflicts: Vec<Incident>,
    /// After recovery: a conflicted record its draft did not restore.
    pub not_restored: Vec<Incident>,
    /// Answered 409/503/4xx, yet the record is stored: the answer was wrong.
    pub refused_but_stored: Vec<Incident>,
    /// No answer and the record is nowhere: unknown outcome, not an incident.
    pub unknown_missing: usize,
    /// Writes answered 5xx other than 503 (which keeps the payload as a draft).
    pub server_errors: usize,
}

impl Findings {
    /// Data-loss incidents: any one of them fails the pilot.
    pub fn incident_count(&self) -> usize {
        self.disappeared.len()
            + self.duplicates.len()
            + self.lost_conflicts.len()
            + self.not_restored.len()
            + self.server_errors
    }
}

/// Reconciles `submissions` against the final `stored` values (by key) and
/// the pending `drafts` (by id). `drafts` is `None` where the drafts are too
/// many to fetch (burst): a draft the server said it saved is then taken at
/// its word here, and counted against the draft stats by the caller.
pub fn reconcile(
    submissions: &[Submission],
    stored: &HashMap<String, Value>,
    drafts: Option<&HashMap<String, DraftView>>,
    stage: Stage,
) -> Findings {
    let counts: HashMap<&str, HashMap<String, usize>> = stored
        .iter()
        .map(|(key, value)| (key.as_str(), count_ids(value)))
        .collect();
    let mut findings = Findings::default();
    for submission in submissions {
        let times_stored = counts
            .get(submission.key.as_str())
            .and_then(|ids| ids.get(&submission.record_id))
            .copied()
            .unwrap_or(0);
        let Some(outcome) = submission.outcome() else {
            findings.not_sent += 1;
            continue;
        };
        findings.writes += 1;
        if times_stored > 1 {
            findings
                .duplicates
                .push(Incident::of(submission, format!("stored {times_stored} times")));
        }
        match outcome {
            PutOutcome::Saved { status, version } => {
                findings.acknowledged += 1;
                match times_stored {
                    0 => findings.disappeared.push(Incident::of(
                        submission,
                        format!("acknowledged {status} (version {version}) but missing from the stored value"),
                    )),
                    1 => findings.stored_once += 1,
                    _ => {}
                }
            }
            PutOutcome::Conflict { draft_id } | PutOutcome::Unavailable { draft_id } => {
                if matches!(outcome, PutOutcome::Conflict { .. }) {
                    findings.conflicts += 1;
                } else {
                    findings.unavailable += 1;
                }
                judge_refused(
                    &mut findings,
                    submission,
                    draft_id.as_deref(),
                    times_stored,
                    drafts,
                    stage,
                );
            }
            PutOutcome::Rejected { status, .. } => {
                findings.rejected += 1;
                if *status >= 500 {
                    findings.server_errors += 1;
                }
                if times_stored > 0 {
                    findings
                        .refused_but_stored
                        .push(Incident::of(submission, format!("answered {status} but stored")));
                }
            }
            PutOutcome::NoAnswer { .. } => {
                findings.no_answer += 1;
                match times_stored {
                    0 => findings.unknown_missing += 1,
                    1 => findings.stored_once += 1,
                    _ => {}
                }
            }
        }
    }
    findings
}

/// A 409 or 503: before recovery the record must be in its draft and not
/// stored; after recovery it must be stored exactly once.
fn judge_refused(
    findings: &mut Findings,
    submission: &Submission,
    draft_id: Option<&str>,
    times_stored: usize,
    drafts: Option<&HashMap<String, DraftView>>,
    stage: Stage,
) {
    let status = submission.outcome().map_or(0, PutOutcome::status);
    let Some(draft_id) = draft_id else {
        // Counted once, in the scenario's own reconciliation.
        if stage == Stage::AfterScenario {
            findings.lost_conflicts.push(Incident::of(
                submission,
                format!("answered {status} without a saved draft"),
            ));
        }
        return;
    };
    match stage {
        Stage::AfterScenario => {
            if times_stored > 0 {
                findings
                    .refused_but_stored
                    .push(Incident::of(submission, format!("answered {status} but stored")));
            }
            let Some(drafts) = drafts else {
                findings.held_by_draft += 1;
                return;
            };
            match draft_holds(drafts.get(draft_id), submission) {
                Ok(()) => findings.held_by_draft += 1,
                Err(why) => findings.lost_conflicts.push(Incident::of(
                    submission,
                    format!("answered {status}, draft {draft_id} {why}"),
                )),
            }
        }
        Stage::AfterRecovery => match times_stored {
            0 => findings.not_restored.push(Incident::of(
                submission,
                format!("draft {draft_id} was recovered but the record is not stored"),
            )),
            1 => findings.stored_once += 1,
            _ => {}
        },
    }
}

/// Whether the draft exists and its payload holds the record as sent.
fn draft_holds(draft: Option<&DraftView>, submission: &Submission) -> Result<(), &'static str> {
    let draft = draft.ok_or("is not pending")?;
    if draft.key != submission.key {
        return Err("is for another key");
    }
    let held = find_record(&draft.payload, &submission.record_id).ok_or("does not hold the record")?;
    match &submission.record {
        Some(record) if record != held => Err("holds a different version of the record"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn submission(id: &str, outcome: PutOutcome) -> Submission {
        Submission {
            phase: "A",
            username: Arc::from("u1"),
            key: "activities".into(),
            record_id: id.into(),
            record: Some(json!({ "id": id, "notes": "Grüße" })),
            put: Some((format!("tx-{id}"), outcome)),
        }
    }

    fn saved() -> PutOutcome {
        PutOutcome::Saved {
            status: 200,
            version: 2,
        }
    }

    fn conflict(draft: &str) -> PutOutcome {
        PutOutcome::Conflict {
            draft_id: Some(draft.into()),
        }
    }

    fn stored(records: Value) -> HashMap<String, Value> {
        HashMap::from([("activities".to_owned(), records)])
    }

    fn draft(id: &str, payload: Value) -> HashMap<String, DraftView> {
        let view = DraftView {
            id: id.into(),
            key: "activities".into(),
            username: "u1".into(),
            reason: "conflict".into(),
            attempts: 0,
            last_error: None,
            transaction_id: None,
            created_at: None,
            payload,
        };
        HashMap::from([(id.to_owned(), view)])
    }

    #[test]
    fn an_acknowledged_record_that_is_missing_disappeared() {
        let subs = [submission("a", saved()), submission("b", saved())];
        let findings = reconcile(
            &subs,
            &stored(json!([{"id": "a", "notes": "Grüße"}])),
            None,
            Stage::AfterScenario,
        );
        assert_eq!(findings.stored_once, 1);
        assert_eq!(findings.disappeared.len(), 1);
        assert_eq!(findings.disappeared[0].record_id, "b");
        assert_eq!(findings.incident_count(), 1);
    }

    #[test]
    fn a_record_stored_twice_is_a_duplicate() {
        let subs = [submission("a", saved())];
        let value = json!([{"id": "a"}, {"id": "a"}]);
        let findings = reconcile(&subs, &stored(value), None, Stage::AfterRecovery);
        assert_eq!(findings.duplicates.len(), 1);
    }

    #[test]
    fn a_conflict_held_by_its_draft_is_fine() {
        let subs = [submission("c", conflict("d1"))];
        let drafts = draft("d1", json!([{"id": "c", "notes": "Grüße"}]));
        let findings = reconcile(&subs, &stored(json!([])), Some(&drafts), Stage::AfterScenario);
        assert_eq!(findings.held_by_draft, 1);
        assert_eq!(findings.incident_count(), 0);
    }

    #[test]
    fn a_conflict_without_a_draft_holding_it_is_lost() {
        let no_draft = submission("c", PutOutcome::Conflict { draft_id: None });
        let missing_draft = submission("d", conflict("gone"));
        let wrong_payload = submission("e", conflict("d1"));
        let drafts = draft("d1", json!([{"id": "e", "notes": "changed"}]));
        let subs = [no_draft, missing_draft, wrong_payload];
        let findings = reconcile(&subs, &stored(json!([])), Some(&drafts), Stage::AfterScenario);
        assert_eq!(findings.lost_conflicts.len(), 3);
    }

    #[test]
    fn after_recovery_a_conflicted_record_must_be_stored_once() {
        let subs = [submission("c", conflict("d1")), submission("d", conflict("d2"))];
        let findings = reconcile(&subs, &stored(json!([{"id": "c"}])), None, Stage::AfterRecovery);
        assert_eq!(findings.stored_once, 1);
        assert_eq!(findings.not_restored.len(), 1);
        assert_eq!(findings.not_restored[0].record_id, "d");
    }

    #[test]
    fn an_unanswered_write_is_unknown_not_an_incident() {
        let subs = [submission("x", PutOutcome::NoAnswer { error: "reset".into() })];
        let findings = reconcile(&subs, &stored(json!([])), None, Stage::AfterScenario);
        assert_eq!(findings.unknown_missing, 1);
        assert_eq!(findings.incident_count(), 0);
    }

    #[test]
    fn a_refusal_that_stored_anyway_is_flagged() {
        let subs = [submission(
            "r",
            PutOutcome::Rejected {
                status: 428,
                error: "x".into(),
            },
        )];
        let findings = reconcile(&subs, &stored(json!([{"id": "r"}])), None, Stage::AfterScenario);
        assert_eq!(findings.refused_but_stored.len(), 1);
    }
}

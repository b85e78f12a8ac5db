//! The post-pilot report: the runbook's template (section 7) filled from the
//! run, the sign-off criteria (section 6) with their evidence, and the
//! numbers per scenario. One structure, rendered as JSON and as Markdown.

use crate::histogram::LatencySummary;
use crate::logcheck::LogCheck;
use crate::pilot::Client;
use crate::reconcile::Findings;
use crate::verdict::{Decision, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsCheck {
    pub expected_total: i64,
    pub reported_total: i64,
    pub agrees: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub title: String,
    pub started_at: String,
    pub elapsed_secs: f64,
    pub users: usize,
    pub keys: Vec<String>,
    /// Every HTTP request of the scenario (reads, writes, draft calls).
    pub requests: u64,
    pub throughput_rps: f64,
    pub latency: LatencySummary,
    pub findings: Findings,
    pub stats: StatsCheck,
    pub stats_after_recovery: Option<StatsCheck>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    pub drafts_found: usize,
    pub one_by_one: usize,
    pub via_submit_all: usize,
    pub saved: usize,
    pub kept_with_error: usize,
    pub other: usize,
    pub discarded: usize,
    /// The drafts that still failed, with their error detail.
    pub kept_examples: Vec<String>,
}

/// The runbook's section 7, field by field.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub date_time_window: String,
    pub number_of_testers: String,
    pub approx_writes_attempted: usize,
    pub conflicts_observed: usize,
    pub pending_saves_observed: usize,
    pub draft_recoveries_performed: String,
    pub missing_data_incidents: usize,
    pub decision: Decision,
    pub follow_up_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub criterion: &'static str,
    pub met: Option<bool>,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PilotReport {
    pub run_id: String,
    /// How the virtual users wrote their records in A-C.
    pub client: Client,
    pub seed: u64,
    pub server: String,
    pub testers: Vec<String>,
    pub settings: String,
    pub template: Template,
    pub criteria: Vec<Criterion>,
    pub scenarios: Vec<ScenarioReport>,
    pub recovery: RecoveryReport,
    pub final_reconciliation: Findings,
    pub log_checks: Option<BTreeMap<String, LogCheck>>,
    pub log_checks_skipped: Option<String>,
    pub incidents: Vec<String>,
    pub actions: Vec<String>,
    pub decision: Decision,
}

/// Everything a run found, before it is shaped into the report.
pub struct PilotFacts {
    pub run_id: String,
    pub client: Client,
    pub seed: u64,
    pub started_at: DateTime<Utc>,
    pub elapsed: Duration,
    pub server: String,
    pub spawned: bool,
    pub testers: Vec<String>,
    pub window_secs: f64,
    pub think_ms: u64,
    pub rounds: usize,
    pub per_user: usize,
    pub quick: bool,
    pub writes: usize,
    pub conflicts: usize,
    pub drafts_answered: usize,
    /// D's losing account edit was found in its pending draft.
    pub edit_draft_held: bool,
    pub scenarios: Vec<ScenarioReport>,
    pub recovery: RecoveryReport,
    pub final_findings: Findings,
    pub log_checks: Option<BTreeMap<String, LogCheck>>,
    pub log_skipped: Option<String>,
    pub verdict: Verdict,
}

impl PilotReport {
    pub fn build(facts: PilotFacts) -> Self {
        let PilotFacts {
            verdict,
            scenarios,
            recovery,
            final_findings,
            log_checks,
            ..
        } = facts;
        let decision = verdict.decision();
        let ended = facts.started_at + chrono::Duration::from_std(facts.elapsed).unwrap_or_default();
        let time = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
        let window = format!(
            "{} – {} UTC ({:.0} s)",
            time(facts.started_at),
            ended.format("%H:%M:%S"),
            facts.elapsed.as_secs_f64()
        );
        let held: usize = scenarios.iter().map(|s| s.findings.held_by_draft).sum();
        let lost: usize = scenarios.iter().map(|s| s.findings.lost_conflicts.len()).sum();
        let missing = verdict.incidents.len();
        let recoveries = format!(
            "{} ({} one by one, {} via submit-all): {} saved, {} kept with their error detail{}",
            recovery.one_by_one + recovery.via_submit_all,
            recovery.one_by_one,
            recovery.via_submit_all,
            recovery.saved,
            recovery.kept_with_error,
            if recovery.discarded > 0 {
                format!(", {} discarded afterwards", recovery.discarded)
            } else {
                String::new()
            }
        );
        let log_500: usize = log_checks.iter().flat_map(|m| m.values()).map(|c| c.http_500).sum();
        let client_500: usize =
            scenarios.iter().map(|s| s.findings.server_errors).sum::<usize>() + final_findings.server_errors;
        let conflict_lines: usize = log_checks
            .iter()
            .flat_map(|m| m.values())
            .map(|c| c.conflict_events)
            .sum();
        let disappeared: usize = scenarios
            .iter()
            .map(|s| s.findings.disappeared.len() + s.findings.duplicates.len())
            .sum::<usize>()
            + final_findings.disappeared.len()
            + final_findings.duplicates.len();
        let recovery_ok =
            final_findings.not_restored.is_empty() && !verdict.incidents.iter().any(|i| i.starts_with("D: draft"));
        let a = scenarios.iter().find(|s| s.name == "A");
        let criteria = vec![
            Criterion {
                criterion: "No reports of \"saved but disappeared\"",
                met: Some(disappeared == 0),
                evidence: format!(
                    "every acknowledged record looked up in the stored value after each scenario and after recovery: {disappeared} missing or duplicated"
                ),
            },
            Criterion {
                criterion: "All conflicts visible in logs and/or pending saves",
                met: Some(lost == 0),
                evidence: format!(
                    "{} 409s; {held} records{} found in their pending draft, {lost} not; {}",
                    facts.conflicts,
                    if facts.edit_draft_held { " and 1 account edit" } else { "" },
                    if log_checks.is_some() {
                        format!("{conflict_lines} storage_conflict log lines")
                    } else {
                        "log not checked".to_owned()
                    }
                ),
            },
            Criterion {
                criterion: "Draft retry flow successfully restores failed submissions",
                met: Some(recovery_ok),
                evidence: format!(
                    "{} drafts submitted, {} saved; {} conflicted records not restored",
                    recovery.one_by_one + recovery.via_submit_all,
                    recovery.saved,
                    final_findings.not_restored.len()
                ),
            },
            Criterion {
                criterion: "No sustained 500 write errors in storage routes",
                met: Some(client_500 + log_500 == 0),
                evidence: format!("{client_500} 5xx (not 503) answers seen by clients, {log_500} HTTP 500 lines in the log"),
            },
            Criterion {
                criterion: "Team confirms same-project concurrency behavior is acceptable",
                met: None,
                evidence: a.map_or_else(String::new, |a| {
                    format!(
                        "for the team to judge: in A, {} of {} same-project writes met a conflict ({:.0}%) and became drafts",
                        a.findings.conflicts,
                        a.findings.writes,
                        100.0 * a.findings.conflicts as f64 / a.findings.writes.max(1) as f64
                    )
                }),
            },
        ];
        let settings = format!(
            "{} client {}; window {:.1} s, think time up to {} ms, {} record(s) per user per window, C rounds {}, seed {}",
            if facts.quick { "quick;" } else { "" },
            facts.client.describe(),
            facts.window_secs,
            facts.think_ms,
            facts.per_user,
            facts.rounds,
            facts.seed
        )
        .trim()
        .to_owned();
        let _ = facts.spawned;
        PilotReport {
            run_id: facts.run_id,
            client: facts.client,
            seed: facts.seed,
            server: facts.server,
            template: Template {
                date_time_window: window,
                number_of_testers: format!("{} virtual users ({})", facts.testers.len(), facts.testers.join(", ")),
                approx_writes_attempted: facts.writes,
                conflicts_observed: facts.conflicts,
                pending_saves_observed: facts.drafts_answered,
                draft_recoveries_performed: recoveries,
                missing_data_incidents: missing,
                decision,
                follow_up_actions: verdict.actions.clone(),
            },
            testers: facts.testers,
            settings,
            criteria,
            scenarios,
            recovery,
            final_reconciliation: final_findings,
            log_checks,
            log_checks_skipped: facts.log_skipped,
            incidents: verdict.incidents,
            actions: verdict.actions,
            decision,
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let t = &self.template;
        let _ = writeln!(md, "# Pilot report: concurrent activity submission\n");
        let _ = writeln!(md, "Run `{}` against {}.  ", self.run_id, self.server);
        let _ = writeln!(md, "Settings: {}.\n", self.settings);
        let _ = writeln!(md, "## Post-pilot notes\n");
        let _ = writeln!(md, "- Date/time window: {}", t.date_time_window);
        let _ = writeln!(md, "- Number of testers: {}", t.number_of_testers);
        let _ = writeln!(md, "- Approx writes attempted: {}", t.approx_writes_attempted);
        let by_scenario: Vec<String> = self
            .scenarios
            .iter()
            .map(|s| format!("{} {}", s.name, s.findings.conflicts))
            .collect();
        let _ = writeln!(
            md,
            "- Conflicts observed: {} (record writes answered 409 per scenario: {}; client {})",
            t.conflicts_observed,
            by_scenario.join(", "),
            self.client.name()
        );
        let _ = writeln!(md, "- Pending saves observed: {}", t.pending_saves_observed);
        let _ = writeln!(md, "- Draft recoveries performed: {}", t.draft_recoveries_performed);
        let incidents = if self.incidents.is_empty() {
            "none".to_owned()
        } else {
            format!("{} (listed below)", self.incidents.len())
        };
        let _ = writeln!(md, "- Any missing data incidents: {incidents}");
        let _ = writeln!(md, "- Decision: **{}**", t.decision);
        if t.follow_up_actions.is_empty() {
            let _ = writeln!(md, "- Follow-up actions: none");
        } else {
            let _ = writeln!(md, "- Follow-up actions:");
            for action in &t.follow_up_actions {
                let _ = writeln!(md, "  - {action}");
            }
        }
        let _ = writeln!(md, "\n## Sign-off criteria\n");
        let _ = writeln!(md, "| criterion | result | evidence |\n|---|---|---|");
        for c in &self.criteria {
            let result = match c.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "for the team",
            };
            let _ = writeln!(md, "| {} | {result} | {} |", c.criterion, c.evidence);
        }
        let _ = writeln!(md, "\n## Scenarios\n");
        let _ = writeln!(
            md,
            "| scenario | time | writes | saved | 409 | held by draft | incidents | requests | req/s | p50 ms | p95 ms | p99 ms |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for s in &self.scenarios {
            let f = &s.findings;
            let _ = writeln!(
                md,
                "| {} {} | {:.1} s | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.name,
                s.title,
                s.elapsed_secs,
                f.writes,
                f.acknowledged,
                f.conflicts,
                f.held_by_draft,
                f.incident_count(),
                s.requests,
                s.throughput_rps,
                s.latency.p50_ms,
                s.latency.p95_ms,
                s.latency.p99_ms
            );
        }
        for s in &self.scenarios {
            for note in &s.notes {
                let _ = writeln!(md, "\n{}: {note}.", s.name);
            }
        }
        let r = &self.recovery;
        let f = &self.final_reconciliation;
        let _ = writeln!(md, "\n## Recovery and final reconciliation\n");
        let _ = writeln!(
            md,
            "- Drafts found: {}; submitted one by one: {}; via submit-all: {}; saved (and gone from Drafts): {}; still failing (kept with error detail): {}; discarded afterwards: {}",
            r.drafts_found, r.one_by_one, r.via_submit_all, r.saved, r.kept_with_error, r.discarded
        );
        for example in &r.kept_examples {
            let _ = writeln!(md, "  - kept: {example}");
        }
        let _ = writeln!(
            md,
            "- After recovery, of {} records written in A-D: {} stored exactly once, {} missing, {} duplicated, {} not restored from their draft, {} unknown (no answer).",
            f.writes,
            f.stored_once,
            f.disappeared.len(),
            f.duplicates.len(),
            f.not_restored.len(),
            f.unknown_missing
        );
        let _ = writeln!(md, "\n## Server log cross-checks\n");
        match (&self.log_checks, &self.log_checks_skipped) {
            (Some(checks), _) => {
                let _ = writeln!(
                    md,
                    "| phase | 409 seen | storage_conflict | acks | storage_write | drafts answered | draft_saved lines | vanished | write_failed | HTTP 500 |"
                );
                let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
                for (phase, c) in checks {
                    let _ = writeln!(
                        md,
                        "| {phase} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        c.conflicts_seen,
                        c.conflict_events,
                        c.acknowledged,
                        c.write_events,
                        c.drafts_answered,
                        c.draft_saved_events,
                        c.drafts_vanished.len(),
                        c.write_failed_events,
                        c.http_500
                    );
                }
            }
            (None, Some(why)) => {
                let _ = writeln!(md, "Skipped: {why}. The reconciliation alone decided.");
            }
            (None, None) => {
                let _ = writeln!(md, "Skipped.");
            }
        }
        if !self.incidents.is_empty() {
            let _ = writeln!(md, "\n## Incidents\n");
            for incident in self.incidents.iter().take(200) {
                let _ = writeln!(md, "- {incident}");
            }
            if self.incidents.len() > 200 {
                let _ = writeln!(
                    md,
                    "- ... and {} more (see the JSON report)",
                    self.incidents.len() - 200
                );
            }
        }
        md
    }
}

/// `pilot --client both`: the two passes and their conflicts side by side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The worse of the two passes' decisions.
    pub decision: Decision,
    pub rows: Vec<ComparisonRow>,
    pub total: ComparisonRow,
    pub whole: Box<PilotReport>,
    pub items: Box<PilotReport>,
}

/// One scenario's record writes and 409s under each client.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonRow {
    pub scenario: String,
    pub whole_writes: usize,
    pub whole_conflicts: usize,
    pub items_writes: usize,
    pub items_conflicts: usize,
    /// `whole_conflicts - items_conflicts`: what the item writes spared.
    pub avoided: i64,
}

impl Comparison {
    pub fn of(whole: PilotReport, items: PilotReport) -> Self {
        let decision = whole.decision.worst(items.decision);
        let mut rows = Vec::new();
        for w in &whole.scenarios {
            let i = items.scenarios.iter().find(|s| s.name == w.name);
            let (items_writes, items_conflicts) = i.map_or((0, 0), |i| (i.findings.writes, i.findings.conflicts));
            rows.push(ComparisonRow {
                scenario: format!("{} {}", w.name, w.title),
                whole_writes: w.findings.writes,
                whole_conflicts: w.findings.conflicts,
                items_writes,
                items_conflicts,
                avoided: w.findings.conflicts as i64 - items_conflicts as i64,
            });
        }
        let total = rows.iter().fold(
            ComparisonRow {
                scenario: "total".into(),
                ..ComparisonRow::default()
            },
            |mut sum, row| {
                sum.whole_writes += row.whole_writes;
                sum.whole_conflicts += row.whole_conflicts;
                sum.items_writes += row.items_writes;
                sum.items_conflicts += row.items_conflicts;
                sum.avoided += row.avoided;
                sum
            },
        );
        Self {
            decision,
            rows,
            total,
            whole: Box::new(whole),
            items: Box::new(items),
        }
    }

    /// Both reports, then the comparison.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "{}", self.whole.to_markdown());
        let _ = writeln!(md, "{}", self.items.to_markdown());
        let _ = writeln!(
            md,
            "# Whole-value writes vs item writes
"
        );
        let _ = writeln!(
            md,
            "Runs `{}` (client whole) and `{}` (client items), same seed {}, same settings. \
             Conflicts are record writes answered 409.\n",
            self.whole.run_id, self.items.run_id, self.whole.seed
        );
        let _ = writeln!(
            md,
            "| scenario | whole: writes | whole: 409 | items: writes | items: 409 | conflicts avoided |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for row in self.rows.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                row.scenario, row.whole_writes, row.whole_conflicts, row.items_writes, row.items_conflicts, row.avoided
            );
        }
        let in_a_to_c = |pick: fn(&ComparisonRow) -> usize| -> usize {
            self.rows
                .iter()
                .filter(|r| !r.scenario.starts_with('D'))
                .map(pick)
                .sum()
        };
        let (whole_ac, items_ac) = (in_a_to_c(|r| r.whole_conflicts), in_a_to_c(|r| r.items_conflicts));
        let _ = writeln!(
            md,
            "\nIn A-C the item writes avoided {} of {whole_ac} conflicts ({items_ac} left). \
             D forces its conflicts with whole-value writes under both clients, so that the recovery from \
             Drafts is still exercised: its 409s are the same by design.",
            whole_ac as i64 - items_ac as i64
        );
        let _ = writeln!(
            md,
            "\nDecisions: whole **{}**, items **{}**; overall **{}**.",
            self.whole.decision, self.items.decision, self.decision
        );
        md
    }
}

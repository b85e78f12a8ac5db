//! `loadtest burst`: many users on few keys, for capacity. Closed loop by
//! default (each user submits again as soon as its last submission ended);
//! with `--rate` an open loop: submissions start at a constant rate whatever
//! the server's pace, and their latency counts from the intended start, so a
//! slow server cannot hide its queueing (no coordinated omission).
//!
//! The hot path allocates little: one shared client, the stored array is
//! appended to as text (never parsed into a tree), latencies go to
//! lock-free histograms. The same reconciliation as the pilot runs at the end.

use crate::client::{PhaseMetrics, Precondition, PutOutcome, Session};
use crate::harness::{Harness, TargetOptions};
use crate::histogram::{Histogram, LatencySummary};
use crate::logcheck::{cross_check, events_by_phase, LogCheck, SeenByClients};
use crate::pilot::new_run_id;
use crate::progress::Progress;
use crate::reconcile::{reconcile, Findings, Stage, Submission};
use crate::records::append_to_array;
use crate::verdict::{Decision, Verdict};
use anyhow::bail;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

const PHASE: &str = "burst";

#[derive(Args, Debug, Clone)]
pub struct BurstOptions {
    #[command(flatten)]
    pub target: TargetOptions,

    /// Virtual users.
    #[arg(long, default_value_t = 50)]
    pub users: usize,

    /// Keys to spread the writes over (fresh keys, named after the run).
    #[arg(long, default_value_t = 1)]
    pub keys: usize,

    /// How long to submit, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,

    /// Open loop: start this many submissions per second in total.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Open loop: most submissions in flight; arrivals beyond it are counted as dropped.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,

    #[arg(long)]
    pub seed: Option<u64>,

    /// Write the result as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,
}

/// Latencies of the three things a submission does.
#[derive(Default)]
struct Latencies {
    get: Histogram,
    put: Histogram,
    /// From the intended start (open loop) or the actual start (closed loop) to the PUT's answer.
    submission: Histogram,
}

/// One submission, compactly: the record id is rebuilt from (user, seq).
struct Written {
    key: u32,
    user: u32,
    seq: u64,
    put: Option<(String, PutOutcome)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BurstReport {
    pub run_id: String,
    pub server: String,
    pub mode: String,
    pub users: usize,
    pub keys: Vec<String>,
    pub elapsed_secs: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub submissions: usize,
    pub writes_per_sec: f64,
    pub conflict_ratio: f64,
    pub dropped_arrivals: usize,
    pub latency_get: LatencySummary,
    pub latency_put: LatencySummary,
    pub latency_submission: LatencySummary,
    pub findings: Findings,
    pub drafts_answered: usize,
    pub drafts_by_key: BTreeMap<String, i64>,
    pub drafts_sampled: usize,
    pub log_check: Option<LogCheck>,
    pub log_check_skipped: Option<String>,
    pub incidents: Vec<String>,
    pub actions: Vec<String>,
    pub decision: Decision,
}

pub async fn run(options: BurstOptions) -> anyhow::Result<BurstReport> {
    if options.users == 0 || options.users > 5000 || options.keys == 0 || options.keys > 1000 {
        bail!("--users must be 1-5000 and --keys 1-1000");
    }
    if !(0.1..=3600.0).contains(&options.duration) {
        bail!("--duration must be 0.1-3600 seconds");
    }
    if options.rate.is_some_and(|r| !(0.1..=1_000_000.0).contains(&r)) {
        bail!("--rate must be 0.1-1000000 per second");
    }
    let run_id = new_run_id();
    let seed = options.seed.unwrap_or_else(rand::random);
    let checks = Arc::new(PhaseMetrics::default());
    let progress = Progress::new();
    let mut harness = Harness::start(&options.target, &run_id, options.users + 2, checks.clone()).await?;
    progress.line(&format!("burst {run_id}: {} (seed {seed})", harness.describe()));
    let outcome = drive(&options, &harness, &run_id, seed, checks, &progress).await;
    harness.stop();
    let mut report = outcome?;
    report.server = harness.describe();
    match harness.read_server_log() {
        Ok(log) => report.log_check = Some(check_log(&log, &run_id, &mut report)),
        Err(why) => report.log_check_skipped = Some(why),
    }
    report.decision = decide(&mut report);
    Ok(report)
}

async fn drive(
    options: &BurstOptions,
    harness: &Harness,
    run_id: &str,
    seed: u64,
    checks: Arc<PhaseMetrics>,
    progress: &Progress,
) -> anyhow::Result<BurstReport> {
    progress.line(&format!("burst: creating and logging in {} users", options.users));
    let metrics = Arc::new(PhaseMetrics::default());
    let sessions: Vec<Session> = harness
        .users(options.users, checks)
        .await?
        .into_iter()
        .map(|s| s.in_phase(PHASE, metrics.clone()))
        .collect();
    let keys: Arc<Vec<String>> = Arc::new((0..options.keys).map(|k| format!("burst-{run_id}-{k}")).collect());
    let run_id: Arc<str> = Arc::from(run_id);
    let latencies = Arc::new(Latencies::default());
    let duration = Duration::from_secs_f64(options.duration);
    let mode = match options.rate {
        Some(rate) => format!("open loop, {rate} submissions/s"),
        None => "closed loop".to_owned(),
    };
    progress.line(&format!(
        "burst: {} users, {} key(s), {:.0} s, {mode}",
        options.users,
        options.keys,
        duration.as_secs_f64()
    ));
    let ticker = progress.tick(PHASE, duration, metrics.clone());
    let started = Instant::now();
    let (written, dropped) = match options.rate {
        None => (
            closed_loop(&sessions, &keys, &run_id, seed, duration, &latencies, progress).await,
            0,
        ),
        Some(rate) => {
            let plan = OpenLoop {
                rate,
                duration,
                max_in_flight: options.max_in_flight,
            };
            open_loop(&sessions, &keys, &run_id, seed, plan, &latencies, progress).await
        }
    };
    let elapsed = started.elapsed();
    ticker.stop();
    progress.line(&format!("burst: {} submissions done; reconciling", written.len()));

    let submissions: Vec<Submission> = written
        .into_iter()
        .map(|w| Submission {
            phase: PHASE,
            username: sessions[w.user as usize].username.clone(),
            key: keys[w.key as usize].clone(),
            record_id: record_id(&run_id, w.user, w.seq),
            record: None,
            put: w.put,
        })
        .collect();
    let mut stored = HashMap::new();
    for key in keys.iter() {
        let value = match harness.admin.get(key).await? {
            Some(fetched) => fetched.value()?,
            None => Value::Array(Vec::new()),
        };
        stored.insert(key.clone(), value);
    }
    let findings = reconcile(&submissions, &stored, None, Stage::AfterScenario);
    let stats = harness.admin.draft_stats().await?;
    let drafts_by_key: BTreeMap<String, i64> = keys
        .iter()
        .map(|k| (k.clone(), stats.by_key.get(k).copied().unwrap_or(0)))
        .collect();
    let mut verdict = Verdict::default();
    let drafts_answered = check_drafts(&submissions, &drafts_by_key, &mut verdict);
    let drafts_sampled = sample_drafts(&submissions, &sessions, seed, &mut verdict).await?;

    let writes = findings.writes.max(1);
    let report = BurstReport {
        run_id: run_id.to_string(),
        server: String::new(),
        mode,
        users: options.users,
        keys: keys.to_vec(),
        elapsed_secs: elapsed.as_secs_f64(),
        requests: metrics.requests(),
        requests_per_sec: metrics.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
        submissions: submissions.len(),
        writes_per_sec: findings.writes as f64 / elapsed.as_secs_f64().max(1e-9),
        conflict_ratio: findings.conflicts as f64 / writes as f64,
        dropped_arrivals: dropped,
        latency_get: latencies.get.summary(),
        latency_put: latencies.put.summary(),
        latency_submission: latencies.submission.summary(),
        findings,
        drafts_answered,
        drafts_by_key,
        drafts_sampled,
        log_check: None,
        log_check_skipped: None,
        incidents: verdict.incidents,
        actions: verdict.actions,
        decision: Decision::Pass,
    };
    Ok(report)
}

fn record_id(run_id: &str, user: u32, seq: u64) -> String {
    format!("{run_id}-b{user}-{seq}")
}

/// The key of the next submission.
fn pick_key(rng: &mut StdRng, keys: usize) -> u32 {
    rng.gen_range(0..keys) as u32
}

/// Which submission this is and when it should have started.
#[derive(Clone, Copy)]
struct Slot {
    key: u32,
    user: u32,
    seq: u64,
    intended: Instant,
}

/// Read, append the record as text, write.
async fn submit(session: &Session, key: &str, run_id: &str, slot: Slot, latencies: &Latencies) -> Written {
    let Slot {
        user, seq, intended, ..
    } = slot;
    let id = record_id(run_id, user, seq);
    let id = id.as_str();
    let mut written = Written {
        key: slot.key,
        user,
        seq,
        put: None,
    };
    let read_started = Instant::now();
    let read = session.get(key).await;
    latencies.get.record(read_started.elapsed());
    let (precondition, body) = match read {
        Ok(None) => (
            Precondition::Create,
            format!("[{}]", compact_record(id, &session.username, seq)),
        ),
        Ok(Some(fetched)) => {
            let appended = fetched
                .value_text()
                .ok()
                .and_then(|text| append_to_array(text, &compact_record(id, &session.username, seq)).ok());
            match appended {
                Some(body) => (Precondition::IfMatch(fetched.version), body),
                None => return written,
            }
        }
        Err(_) => return written,
    };
    let put = session.put(key, body, precondition).await;
    latencies.put.record(put.latency);
    latencies.submission.record(intended.elapsed());
    written.put = Some((put.tx, put.outcome));
    written
}

/// A small record: the burst measures the coordinator, not JSON volume.
fn compact_record(id: &str, user: &str, seq: u64) -> String {
    format!(r#"{{"id":"{id}","createdBy":"{user}","n":{seq}}}"#)
}

async fn closed_loop(
    sessions: &[Session],
    keys: &Arc<Vec<String>>,
    run_id: &Arc<str>,
    seed: u64,
    duration: Duration,
    latencies: &Arc<Latencies>,
    progress: &Progress,
) -> Vec<Written> {
    let deadline = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for (user, session) in sessions.iter().cloned().enumerate() {
        let keys = keys.clone();
        let run_id = run_id.clone();
        let latencies = latencies.clone();
        let progress = progress.clone();
        let mut rng = StdRng::seed_from_u64(seed ^ (user as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        tasks.spawn(async move {
            let user = user as u32;
            let mut out = Vec::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let key = pick_key(&mut rng, keys.len());
                let slot = Slot {
                    key,
                    user,
                    seq,
                    intended: Instant::now(),
                };
                let written = submit(&session, &keys[key as usize], &run_id, slot, &latencies).await;
                match &written.put {
                    Some((_, outcome)) => progress.count(outcome),
                    // The read failed (server down?): do not spin on it.
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                out.push(written);
                seq += 1;
            }
            out
        });
    }
    let mut written = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(done) = joined {
            written.extend(done);
        }
    }
    written
}

struct OpenLoop {
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
}

/// Starts submission `i` at `start + i / rate`, by user `i % users`,
/// whether or not earlier ones have finished.
async fn open_loop(
    sessions: &[Session],
    keys: &Arc<Vec<String>>,
    run_id: &Arc<str>,
    seed: u64,
    plan: OpenLoop,
    latencies: &Arc<Latencies>,
    progress: &Progress,
) -> (Vec<Written>, usize) {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tasks = JoinSet::new();
    let mut written = Vec::new();
    let mut dropped = 0;
    let arrivals = (plan.duration.as_secs_f64() * plan.rate).floor() as u64;
    for i in 0..arrivals {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended).await;
        while let Some(Ok(done)) = tasks.try_join_next() {
            written.push(done);
        }
        if in_flight.load(Ordering::Relaxed) >= plan.max_in_flight {
            dropped += 1;
            continue;
        }
        let user = (i % sessions.len() as u64) as u32;
        let session = sessions[user as usize].clone();
        let key = pick_key(&mut rng, keys.len());
        let (keys, run_id, latencies, progress) = (keys.clone(), run_id.clone(), latencies.clone(), progress.clone());
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let slot = Slot {
                key,
                user,
                seq: i,
                intended,
            };
            let done = submit(&session, &keys[key as usize], &run_id, slot, &latencies).await;
            if let Some((_, outcome)) = &done.put {
                progress.count(outcome);
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
            done
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(done) = joined {
            written.push(done);
        }
    }
    (written, dropped)
}

/// The drafts the server said it saved, against the draft stats of our
/// (fresh) keys: the counts must agree exactly.
fn check_drafts(submissions: &[Submission], by_key: &BTreeMap<String, i64>, verdict: &mut Verdict) -> usize {
    let mut answered: BTreeMap<&str, i64> = BTreeMap::new();
    let mut ids = HashSet::new();
    for submission in submissions {
        if let Some(id) = submission.outcome().and_then(PutOutcome::draft_id) {
            // Counted once per distinct draft: a server may fold repeats into one.
            if ids.insert(id) {
                *answered.entry(submission.key.as_str()).or_default() += 1;
            }
        }
    }
    for (key, stored) in by_key {
        let expected = answered.get(key.as_str()).copied().unwrap_or(0);
        if *stored < expected {
            verdict.incident(format!(
                "{key}: {expected} conflicts were answered with a saved draft, but only {stored} drafts exist"
            ));
        } else if *stored > expected {
            verdict.action(format!("{key}: {stored} drafts exist, {expected} were answered"));
        }
    }
    ids.len()
}

/// Opens up to 20 drafts (seeded choice) as their owners and checks each
/// holds its record.
async fn sample_drafts(
    submissions: &[Submission],
    sessions: &[Session],
    seed: u64,
    verdict: &mut Verdict,
) -> anyhow::Result<usize> {
    let with_draft: Vec<&Submission> = submissions
        .iter()
        .filter(|s| s.outcome().and_then(PutOutcome::draft_id).is_some())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let sample: Vec<&Submission> = rand::seq::index::sample(&mut rng, with_draft.len(), with_draft.len().min(20))
        .into_iter()
        .map(|i| with_draft[i])
        .collect();
    for submission in &sample {
        let Some(id) = submission.outcome().and_then(PutOutcome::draft_id) else {
            continue;
        };
        let Some(session) = sessions.iter().find(|s| s.username == submission.username) else {
            continue;
        };
        let holds = session
            .my_draft(id)
            .await?
            .is_some_and(|d| crate::records::find_record(&d.payload, &submission.record_id).is_some());
        if !holds {
            verdict.incident(format!(
                "draft {id} of {} does not hold record {} (lost conflict)",
                submission.username, submission.record_id
            ));
        }
    }
    Ok(sample.len())
}

fn check_log(log: &str, run_id: &str, report: &mut BurstReport) -> LogCheck {
    let events = events_by_phase(log, run_id).remove(PHASE).unwrap_or_default();
    // The burst keeps only counts; the sets are rebuilt from the log's own
    // view where the clients saw the same number.
    let seen = SeenByClients::default();
    let mut check = cross_check(&events, &seen, &HashSet::new());
    check.conflicts_seen = report.findings.conflicts;
    check.acknowledged = report.findings.acknowledged;
    check.drafts_answered = report.drafts_answered;
    check.conflicts_unlogged.clear();
    check.conflict_events_unseen.clear();
    check.acknowledged_unlogged.clear();
    check.drafts_unlogged.clear();
    check.drafts_logged_unanswered.clear();
    check.drafts_vanished.clear();
    check
}

fn decide(report: &mut BurstReport) -> Decision {
    let mut verdict = Verdict {
        incidents: std::mem::take(&mut report.incidents),
        actions: std::mem::take(&mut report.actions),
    };
    let f = &report.findings;
    for (what, list) in [
        ("saved but disappeared", &f.disappeared),
        ("duplicate", &f.duplicates),
        ("lost conflict", &f.lost_conflicts),
    ] {
        if !list.is_empty() {
            let first = &list[0];
            verdict.incident(format!(
                "{} {what} incident(s), e.g. record {} in `{}`: {}",
                list.len(),
                first.record_id,
                first.key,
                first.detail
            ));
        }
    }
    if f.server_errors > 0 {
        verdict.incident(format!("{} write(s) answered 5xx (not 503)", f.server_errors));
    }
    if f.unknown_missing > 0 {
        verdict.action(format!(
            "{} write(s) got no answer and are not stored",
            f.unknown_missing
        ));
    }
    if f.rejected > f.server_errors {
        verdict.action(format!(
            "{} write(s) rejected with a 4xx (413: the value outgrew the body limit)",
            f.rejected - f.server_errors
        ));
    }
    if f.not_sent > 0 {
        verdict.action(format!("{} submission(s) abandoned: the read failed", f.not_sent));
    }
    if report.dropped_arrivals > 0 {
        verdict.action(format!(
            "{} arrivals dropped at the in-flight limit: the client or server could not keep the rate",
            report.dropped_arrivals
        ));
    }
    if let Some(check) = &report.log_check {
        if check.conflict_events != check.conflicts_seen {
            verdict.action(format!(
                "log: {} storage_conflict lines for {} 409s",
                check.conflict_events, check.conflicts_seen
            ));
        }
        if check.draft_saved_events != check.drafts_answered {
            verdict.action(format!(
                "log: {} storage_pending_draft_saved lines for {} drafts answered",
                check.draft_saved_events, check.drafts_answered
            ));
        }
        if check.write_events != check.acknowledged {
            verdict.action(format!(
                "log: {} storage_write lines for {} acknowledged writes",
                check.write_events, check.acknowledged
            ));
        }
        if check.draft_failed_events + check.http_500 > 0 {
            verdict.incident(format!(
                "log: {} draft(s) not saved, {} HTTP 500(s)",
                check.draft_failed_events, check.http_500
            ));
        }
        if check.write_failed_events > 0 {
            verdict.action(format!(
                "log: {} storage_write_failed line(s)",
                check.write_failed_events
            ));
        }
    }
    report.incidents = verdict.incidents.clone();
    report.actions = verdict.actions.clone();
    verdict.decision()
}

impl BurstReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let f = &self.findings;
        let ms = |l: &LatencySummary| {
            format!(
                "p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1} ms",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            )
        };
        let _ = writeln!(out, "# Burst {}: {}", self.run_id, self.mode);
        let _ = writeln!(out, "server: {}", self.server);
        let _ = writeln!(
            out,
            "users {}, keys {}, {:.1} s",
            self.users,
            self.keys.len(),
            self.elapsed_secs
        );
        let _ = writeln!(
            out,
            "requests {} ({:.0}/s); writes {} ({:.0}/s): saved {}, 409 {} ({:.1}%), 503 {}, other {}, no answer {}",
            self.requests,
            self.requests_per_sec,
            f.writes,
            self.writes_per_sec,
            f.acknowledged,
            f.conflicts,
            100.0 * self.conflict_ratio,
            f.unavailable,
            f.rejected,
            f.no_answer
        );
        let _ = writeln!(out, "latency GET         {}", ms(&self.latency_get));
        let _ = writeln!(out, "latency PUT         {}", ms(&self.latency_put));
        let _ = writeln!(out, "latency submission  {}", ms(&self.latency_submission));
        let _ = writeln!(
            out,
            "reconciliation: {} acknowledged records stored once, {} missing, {} duplicated; {} drafts answered, draft stats {:?}, {} sampled",
            f.stored_once,
            f.disappeared.len(),
            f.duplicates.len(),
            self.drafts_answered,
            self.drafts_by_key.values().sum::<i64>(),
            self.drafts_sampled
        );
        match (&self.log_check, &self.log_check_skipped) {
            (Some(c), _) => {
                let _ = writeln!(
                    out,
                    "log: {} storage_conflict, {} storage_write, {} storage_pending_draft_saved, {} write_failed, {} HTTP 500",
                    c.conflict_events, c.write_events, c.draft_saved_events, c.write_failed_events, c.http_500
                );
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "log checks skipped: {why}");
            }
            _ => {}
        }
        for incident in self.incidents.iter().take(50) {
            let _ = writeln!(out, "INCIDENT: {incident}");
        }
        for action in &self.actions {
            let _ = writeln!(out, "action: {action}");
        }
        let _ = writeln!(out, "Decision: {}", self.decision);
        out
    }
}

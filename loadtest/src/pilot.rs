//! `loadtest pilot`: the runbook's scenarios A-D, a reconciliation after
//! each, the log cross-checks, and the post-pilot report.
//!
//! Each virtual user does what the web app does. With the default client
//! (`--client whole`): GET the key, add its new record to the array, PUT it
//! back with `If-Match`. The time between the GET and the PUT is the user
//! filling in the form (`--think-ms`): that is where others' writes make the
//! version stale. A 409 means the record is now a draft; the user does not
//! retry. With `--client items` the submission is one `POST
//! /api/storage/{key}/items` of the new record, which cannot go stale (the
//! GET before it stays, as the page load, so the pacing is the same).
//! D forces its conflicts with whole-value writes under either client, then
//! recovers every draft. `--client both` runs the whole pilot once per
//! client and compares the conflicts.

use crate::client::{DraftView, PhaseMetrics, Precondition, PutOutcome, Session};
use crate::harness::{Harness, TargetOptions};
use crate::histogram::LatencySummary;
use crate::logcheck::{cross_check, events_by_phase, LogCheck, SeenByClients};
use crate::progress::Progress;
use crate::reconcile::{reconcile, Findings, Incident, Stage, Submission};
use crate::records::{
    append_to_array, external_activity, find_record, internal_activity, Account, ACCOUNTS, ACTIVITIES,
    INTERNAL_ACTIVITIES,
};
use crate::report::{Comparison, PilotReport, RecoveryReport, ScenarioReport, StatsCheck};
use crate::verdict::Verdict;
use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Args, Debug, Clone)]
pub struct PilotOptions {
    #[command(flatten)]
    pub target: TargetOptions,

    /// Virtual users (testers).
    #[arg(long, default_value_t = 5)]
    pub users: usize,

    /// The burst window of scenarios A and B, in seconds (C splits it over its rounds).
    /// Default 30, or 3 with `--quick`.
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<f64>,

    /// Rounds of scenario C.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,

    /// Records each user submits per window (and per round of C).
    #[arg(long, default_value_t = 3)]
    pub per_user: usize,

    /// Longest time a user spends filling in the form between the GET and
    /// the PUT, in milliseconds. Default 2000, or 300 with `--quick`.
    #[arg(long, value_name = "MS")]
    pub think_ms: Option<u64>,

    /// Short windows, for CI.
    #[arg(long)]
    pub quick: bool,

    /// How virtual users submit a record: `whole` (GET, append, PUT the
    /// array with If-Match), `items` (POST the record to .../items), or
    /// `both` (the whole pilot once per client, same seed, then the two
    /// side by side). D forces conflicts with whole-value writes under either.
    #[arg(long, value_enum, default_value_t = ClientChoice::Whole)]
    pub client: ClientChoice,

    /// Seed of the random choices (types, times, notes); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,

    /// Write the report as Markdown here (it is printed either way).
    #[arg(long, value_name = "PATH")]
    pub report: Option<std::path::PathBuf>,
}

/// `--client`: one client, or both for a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientChoice {
    Whole,
    Items,
    Both,
}

/// How one pass's virtual users write their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// GET the array, append, PUT it back with `If-Match`: can go stale.
    Whole,
    /// `POST /api/storage/{key}/items` with the record: cannot go stale.
    Items,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Whole => "whole",
            Client::Items => "items",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Client::Whole => "whole: GET, append, PUT the array with If-Match",
            Client::Items => "items: POST each record to /api/storage/{key}/items",
        }
    }
}

impl PilotOptions {
    pub fn window(&self) -> Duration {
        let default = if self.quick { 3.0 } else { 30.0 };
        Duration::from_secs_f64(self.window.unwrap_or(default).clamp(0.1, 3600.0))
    }

    pub fn think(&self) -> Duration {
        let default = if self.quick { 300 } else { 2000 };
        Duration::from_millis(self.think_ms.unwrap_or(default).min(60_000))
    }
}

/// A new run id: short, unique enough to keep runs on one server apart.
pub fn new_run_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("lt{}", &hex[..8])
}

/// What `loadtest pilot` produced: one report, or one per client and their
/// comparison (`--client both`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PilotRun {
    One(Box<PilotReport>),
    Both(Comparison),
}

impl PilotRun {
    pub fn decision(&self) -> crate::verdict::Decision {
        match self {
            PilotRun::One(report) => report.decision,
            PilotRun::Both(comparison) => comparison.decision,
        }
    }

    pub fn to_markdown(&self) -> String {
        match self {
            PilotRun::One(report) => report.to_markdown(),
            PilotRun::Both(comparison) => comparison.to_markdown(),
        }
    }
}

pub async fn run(options: PilotOptions) -> anyhow::Result<PilotRun> {
    if options.users == 0 || options.users > 500 {
        bail!("--users must be 1-500");
    }
    if options.rounds == 0 || options.rounds > 20 || options.per_user == 0 || options.per_user > 100 {
        bail!("--rounds must be 1-20 and --per-user 1-100");
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    match options.client {
        ClientChoice::Whole => Ok(PilotRun::One(Box::new(run_pass(&options, Client::Whole, seed).await?))),
        ClientChoice::Items => Ok(PilotRun::One(Box::new(run_pass(&options, Client::Items, seed).await?))),
        ClientChoice::Both => {
            let whole = run_pass(&pass_options(&options, Client::Whole), Client::Whole, seed).await?;
            let items = run_pass(&pass_options(&options, Client::Items), Client::Items, seed).await?;
            Ok(PilotRun::Both(Comparison::of(whole, items)))
        }
    }
}

/// One pass of `--client both`. A spawned server is fresh per pass anyway
/// (new database, so fresh keys and users); against `--target` each pass
/// gets its own users (`<prefix>-whole-001`, ...) while the keys stay the
/// runbook's, told apart by run id. A saved server log gets the client's name.
fn pass_options(options: &PilotOptions, client: Client) -> PilotOptions {
    let mut pass = options.clone();
    if !pass.target.targets.is_empty() {
        pass.target.user_prefix = format!("{}-{}", options.target.user_prefix, client.name());
    }
    if let Some(path) = &options.target.save_server_log {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match path.extension() {
            Some(ext) => format!("{stem}.{}.{}", client.name(), ext.to_string_lossy()),
            None => format!("{stem}.{}", client.name()),
        };
        pass.target.save_server_log = Some(path.with_file_name(name));
    }
    pass
}

/// The whole pilot, A-D and the recovery, with one client.
pub async fn run_pass(options: &PilotOptions, client: Client, seed: u64) -> anyhow::Result<PilotReport> {
    let run_id = new_run_id();
    let checks = Arc::new(PhaseMetrics::default());
    let progress = Progress::new();
    let mut harness = Harness::start(&options.target, &run_id, options.users + 2, checks.clone()).await?;
    // The pilot's time window starts once the server answers (not while it builds).
    let started_at = Utc::now();
    let clock = Instant::now();
    progress.line(&format!(
        "pilot {run_id}: {} (seed {seed}, client {})",
        harness.describe(),
        client.name()
    ));
    let mut pilot = Pilot {
        options,
        client,
        run_id: run_id.clone(),
        seed,
        account: Arc::new(Account::for_run(&run_id)),
        admin: harness.admin.clone(),
        users: Vec::new(),
        ledger: Vec::new(),
        seen: BTreeMap::new(),
        accounted: HashSet::new(),
        expected_drafts: 0,
        verdict: Verdict::default(),
        progress,
        errors: Arc::new(Mutex::new(Vec::new())),
        writes: 0,
        edits: None,
        edit_draft_held: false,
        flagged: HashSet::new(),
    };
    let driven = pilot.drive(&harness, checks).await;
    harness.stop();
    let (scenarios, recovery, final_findings) = driven?;
    let log = harness.read_server_log();
    let log_checks = match &log {
        Ok(text) => Some(pilot.check_log(text)),
        Err(_) => None,
    };
    Ok(pilot.into_report(PilotParts {
        harness: &harness,
        started_at,
        elapsed: clock.elapsed(),
        scenarios,
        recovery,
        final_findings,
        log_checks,
        log_skipped: log.err(),
    }))
}

/// The state of one pilot run.
struct Pilot<'a> {
    options: &'a PilotOptions,
    client: Client,
    run_id: String,
    seed: u64,
    account: Arc<Account>,
    admin: Session,
    users: Vec<Session>,
    /// Every record every virtual user tried to add, with its answer.
    ledger: Vec<Submission>,
    /// Per phase: the 409s, acknowledgements and draft ids the clients saw.
    seen: BTreeMap<&'static str, SeenByClients>,
    /// Draft ids found pending, recovered or discarded: they did not vanish.
    accounted: HashSet<String>,
    /// What `GET /api/admin/drafts/stats` should say `total` is.
    expected_drafts: i64,
    verdict: Verdict,
    progress: Progress,
    /// Requests that failed outside a PUT (reads), for the report.
    errors: Arc<Mutex<Vec<String>>>,
    /// PUTs sent, setup and edits included.
    writes: usize,
    edits: Option<EditRace>,
    /// Whether the losing edit's draft was found pending with the edit.
    edit_draft_held: bool,
    /// Records already reported as incidents, so the final reconciliation
    /// reports only what went wrong since.
    flagged: HashSet<String>,
}

/// D's edit race on the shared account: the first edit wins; the second is
/// based on the same version, changes the same record, and so must stay a
/// draft that cannot be submitted.
struct EditRace {
    winner: Arc<str>,
    winner_notes: String,
    winner_outcome: PutOutcome,
    loser: Arc<str>,
    loser_notes: String,
    loser_draft: Option<String>,
}

struct PilotParts<'h> {
    harness: &'h Harness,
    started_at: DateTime<Utc>,
    elapsed: Duration,
    scenarios: Vec<ScenarioReport>,
    recovery: RecoveryReport,
    final_findings: Findings,
    log_checks: Option<BTreeMap<String, LogCheck>>,
    log_skipped: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    External,
    Internal,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::External => ACTIVITIES,
            Kind::Internal => INTERNAL_ACTIVITIES,
        }
    }
}

/// What one user's submission needs besides its session.
#[derive(Clone)]
struct SubmitContext {
    client: Client,
    run_id: Arc<str>,
    account: Arc<Account>,
    errors: Arc<Mutex<Vec<String>>>,
    progress: Progress,
}

impl Pilot<'_> {
    async fn drive(
        &mut self,
        harness: &Harness,
        checks: Arc<PhaseMetrics>,
    ) -> anyhow::Result<(Vec<ScenarioReport>, RecoveryReport, Findings)> {
        self.progress
            .line(&format!("logging in {} virtual users", self.options.users));
        self.users = harness.users(self.options.users, checks.clone()).await?;
        self.setup_account().await?;
        self.expected_drafts = self.admin.draft_stats().await?.total;

        let window = self.options.window();
        let mut scenarios = Vec::new();
        let everyone_external = |_: usize| Kind::External;
        scenarios.push(
            self.window_scenario("A", "External same-project burst", &[ACTIVITIES], everyone_external)
                .await?,
        );
        scenarios.push(
            self.window_scenario("B", "Internal burst", &[INTERNAL_ACTIVITIES], |_| Kind::Internal)
                .await?,
        );
        let external_users = self.users.len().min(2);
        let mixed = move |user: usize| {
            if user < external_users {
                Kind::External
            } else {
                Kind::Internal
            }
        };
        let c = self
            .rounds_scenario("C", "Mixed internal/external, same project", window, mixed)
            .await?;
        scenarios.push(c);
        let (d, recovery, final_findings) = self.scenario_d().await?;
        scenarios.push(d);
        Ok((scenarios, recovery, final_findings))
    }

    fn context(&self) -> SubmitContext {
        SubmitContext {
            client: self.client,
            run_id: Arc::from(self.run_id.as_str()),
            account: self.account.clone(),
            errors: self.errors.clone(),
            progress: self.progress.clone(),
        }
    }

    fn sessions_in(&self, phase: &'static str, metrics: &Arc<PhaseMetrics>) -> Vec<Session> {
        self.users.iter().map(|s| s.in_phase(phase, metrics.clone())).collect()
    }

    fn rng_for(&self, phase: &str, round: usize, user: usize) -> StdRng {
        let phase_code = phase
            .bytes()
            .fold(0u64, |acc, b| acc.wrapping_mul(131).wrapping_add(u64::from(b)));
        let mixed = self.seed ^ phase_code.rotate_left(40) ^ ((round as u64) << 20) ^ user as u64;
        StdRng::seed_from_u64(mixed)
    }

    /// Puts the shared account + project into `accounts` (user 1 does it, as
    /// an account manager would). A lost race here is retried: the draft it
    /// made is discarded first.
    async fn setup_account(&mut self) -> anyhow::Result<()> {
        let metrics = Arc::new(PhaseMetrics::default());
        let session = self.users[0].in_phase("setup", metrics);
        let account = serde_json::to_string(&*self.account)?;
        for _attempt in 0..5 {
            let (precondition, array) = read_for_append(&session, ACCOUNTS).await?;
            let body = append_to_array(&array, &account).map_err(|_| anyhow!("`accounts` is not an array"))?;
            let put = session.put(ACCOUNTS, body, precondition).await;
            self.writes += 1;
            self.note_put("setup", &put.tx, &put.outcome);
            match &put.outcome {
                PutOutcome::Saved { .. } => return Ok(()),
                PutOutcome::Conflict { draft_id: Some(id) } => {
                    if session.delete_draft(id).await? == 204 {
                        self.expected_drafts -= 1;
                        self.accounted.insert(id.clone());
                    }
                }
                other => bail!("setting up the shared account failed: {other:?}"),
            }
        }
        bail!("setting up the shared account lost five races in a row")
    }

    /// Remembers what the clients saw, for the log cross-checks and the stats.
    fn note_put(&mut self, phase: &'static str, tx: &str, outcome: &PutOutcome) {
        let seen = self.seen.entry(phase).or_default();
        match outcome {
            PutOutcome::Saved { .. } => {
                seen.acknowledged_txs.insert(tx.to_owned());
            }
            PutOutcome::Conflict { .. } => {
                seen.conflict_txs.insert(tx.to_owned());
            }
            _ => {}
        }
        if let Some(id) = outcome.draft_id() {
            if seen.draft_ids.insert(id.to_owned()) {
                self.expected_drafts += 1;
            }
        }
    }

    fn note_submissions(&mut self, phase: &'static str, submissions: &[Submission]) {
        for submission in submissions {
            if let Some((tx, outcome)) = &submission.put {
                self.writes += 1;
                self.note_put(phase, tx, outcome);
            }
        }
    }

    /// A and B: every user submits `--per-user` records at random times in the window.
    async fn window_scenario(
        &mut self,
        phase: &'static str,
        title: &str,
        keys: &[&'static str],
        kind_of: impl Fn(usize) -> Kind,
    ) -> anyhow::Result<ScenarioReport> {
        let metrics = Arc::new(PhaseMetrics::default());
        let started_at = Utc::now();
        let clock = Instant::now();
        let window = self.options.window();
        self.progress.line(&format!(
            "scenario {phase}: {title}: {} users, {:.1} s window",
            self.users.len(),
            window.as_secs_f64()
        ));
        let ticker = self.progress.tick(phase, window, metrics.clone());
        let submissions = self.burst_round(phase, 0, window, &metrics, &kind_of).await;
        ticker.stop();
        self.finish_scenario(phase, title, keys, started_at, clock.elapsed(), &metrics, submissions)
            .await
    }

    /// C: the mixed burst, `--rounds` times back to back.
    async fn rounds_scenario(
        &mut self,
        phase: &'static str,
        title: &str,
        window: Duration,
        kind_of: impl Fn(usize) -> Kind,
    ) -> anyhow::Result<ScenarioReport> {
        let metrics = Arc::new(PhaseMetrics::default());
        let started_at = Utc::now();
        let clock = Instant::now();
        let rounds = self.options.rounds;
        let round_window = window / rounds as u32;
        self.progress.line(&format!(
            "scenario {phase}: {title}: {} rounds of {:.1} s",
            rounds,
            round_window.as_secs_f64()
        ));
        let ticker = self.progress.tick(phase, window, metrics.clone());
        let mut submissions = Vec::new();
        for round in 0..rounds {
            submissions.extend(self.burst_round(phase, round, round_window, &metrics, &kind_of).await);
        }
        ticker.stop();
        let keys = [ACTIVITIES, INTERNAL_ACTIVITIES];
        let mut report = self
            .finish_scenario(phase, title, &keys, started_at, clock.elapsed(), &metrics, submissions)
            .await?;
        report.notes.push(format!(
            "{rounds} rounds; {} user(s) external on the shared project, the others internal",
            self.users.len().min(2)
        ));
        Ok(report)
    }

    /// One window: every user's submissions at seeded random moments in it.
    async fn burst_round(
        &self,
        phase: &'static str,
        round: usize,
        window: Duration,
        metrics: &Arc<PhaseMetrics>,
        kind_of: &impl Fn(usize) -> Kind,
    ) -> Vec<Submission> {
        let start = tokio::time::Instant::now();
        let think = self.options.think().min(window / 2);
        let mut tasks = JoinSet::new();
        for (user, session) in self.sessions_in(phase, metrics).into_iter().enumerate() {
            let mut rng = self.rng_for(phase, round, user);
            let kind = kind_of(user);
            let context = self.context();
            let per_user = self.options.per_user;
            tasks.spawn(async move {
                let span = window.saturating_sub(think);
                let mut offsets: Vec<Duration> = (0..per_user).map(|_| span.mul_f64(rng.gen::<f64>())).collect();
                offsets.sort();
                let mut out = Vec::with_capacity(per_user);
                for (n, offset) in offsets.into_iter().enumerate() {
                    tokio::time::sleep_until(start + offset).await;
                    let think = think.mul_f64(rng.gen::<f64>());
                    let seq = round * per_user + n;
                    out.push(submit_record(&session, &context, phase, user, seq, kind, think, &mut rng).await);
                }
                out
            });
        }
        let mut submissions = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => submissions.extend(done),
                Err(error) => self.note_error(format!("a virtual user's task failed: {error}")),
            }
        }
        submissions
    }

    fn note_error(&self, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
    }

    /// Reconciles a scenario, checks the draft stats, and builds its report.
    #[allow(clippy::too_many_arguments)]
    async fn finish_scenario(
        &mut self,
        phase: &'static str,
        title: &str,
        keys: &[&'static str],
        started_at: DateTime<Utc>,
        elapsed: Duration,
        metrics: &PhaseMetrics,
        submissions: Vec<Submission>,
    ) -> anyhow::Result<ScenarioReport> {
        self.note_submissions(phase, &submissions);
        let findings = self.reconcile_now(&submissions, keys, Stage::AfterScenario).await?;
        self.judge_findings(phase, &findings);
        let stats = self.check_stats(phase).await?;
        self.progress.line(&format!(
            "scenario {phase}: {} writes, {} saved, {} conflicts, {} incidents",
            findings.writes,
            findings.acknowledged,
            findings.conflicts,
            findings.incident_count()
        ));
        self.ledger.extend(submissions);
        Ok(scenario_report(
            phase,
            title,
            keys,
            started_at,
            elapsed,
            metrics,
            self.users.len(),
            findings,
            stats,
        ))
    }

    /// Reads the keys' final values and every user's pending drafts, and
    /// reconciles `submissions` against them.
    async fn reconcile_now(
        &mut self,
        submissions: &[Submission],
        keys: &[&'static str],
        stage: Stage,
    ) -> anyhow::Result<Findings> {
        let stored = self.read_values(keys).await?;
        let drafts = self.pending_drafts().await?;
        Ok(reconcile(submissions, &stored, Some(&drafts), stage))
    }

    async fn read_values(&self, keys: &[&'static str]) -> anyhow::Result<HashMap<String, Value>> {
        let mut stored = HashMap::new();
        for key in keys {
            let value = match self.admin.get(key).await? {
                Some(fetched) => fetched.value()?,
                None => Value::Array(Vec::new()),
            };
            stored.insert((*key).to_owned(), value);
        }
        Ok(stored)
    }

    /// Every virtual user's pending drafts, by id, through the admin API.
    async fn pending_drafts(&mut self) -> anyhow::Result<HashMap<String, DraftView>> {
        let mut drafts = HashMap::new();
        for user in &self.users {
            for draft in self.admin.admin_drafts(Some(&user.username), None).await? {
                self.accounted.insert(draft.id.clone());
                drafts.insert(draft.id.clone(), draft);
            }
        }
        Ok(drafts)
    }

    fn judge_findings(&mut self, phase: &str, findings: &Findings) {
        let incidents = findings
            .disappeared
            .iter()
            .map(|i| ("saved but disappeared", i))
            .chain(findings.duplicates.iter().map(|i| ("duplicate", i)))
            .chain(findings.lost_conflicts.iter().map(|i| ("lost conflict", i)))
            .chain(findings.not_restored.iter().map(|i| ("not restored from its draft", i)));
        let mut lines = Vec::new();
        for (what, incident) in incidents {
            self.flagged.insert(incident.record_id.clone());
            lines.push(incident_line(phase, what, incident));
        }
        for line in lines {
            self.verdict.incident(line);
        }
        if findings.server_errors > 0 {
            self.verdict.incident(format!(
                "{phase}: {} write(s) answered 5xx (not 503)",
                findings.server_errors
            ));
        }
        for i in &findings.refused_but_stored {
            self.verdict.action(incident_line(phase, "refused but stored", i));
        }
        if findings.unknown_missing > 0 {
            self.verdict.action(format!(
                "{phase}: {} write(s) got no answer and are not stored (unknown outcome)",
                findings.unknown_missing
            ));
        }
        if findings.unavailable > 0 {
            self.verdict.action(format!(
                "{phase}: {} write(s) answered 503 (kept as drafts): check the database",
                findings.unavailable
            ));
        }
        let other_rejections = findings.rejected - findings.server_errors;
        if other_rejections > 0 {
            self.verdict.action(format!(
                "{phase}: {other_rejections} write(s) rejected with an unexpected 4xx"
            ));
        }
        if findings.not_sent > 0 {
            self.verdict.action(format!(
                "{phase}: {} submission(s) abandoned: the read before the write failed",
                findings.not_sent
            ));
        }
    }

    async fn check_stats(&mut self, phase: &str) -> anyhow::Result<StatsCheck> {
        let stats = self.admin.draft_stats().await?;
        let check = StatsCheck {
            expected_total: self.expected_drafts,
            reported_total: stats.total,
            agrees: stats.total == self.expected_drafts,
        };
        if !check.agrees {
            self.verdict.action(format!(
                "{phase}: admin draft stats say {} pending, the run accounts for {} (someone else writing, or a miscount)",
                stats.total, self.expected_drafts
            ));
        }
        Ok(check)
    }

    /// D: force conflicts on purpose, then recover every draft.
    async fn scenario_d(&mut self) -> anyhow::Result<(ScenarioReport, RecoveryReport, Findings)> {
        let phase = "D";
        let title = "Draft recovery flow";
        let metrics = Arc::new(PhaseMetrics::default());
        let started_at = Utc::now();
        let clock = Instant::now();
        self.progress
            .line("scenario D: forced conflicts, then recovery from Drafts");
        let sessions = self.sessions_in(phase, &metrics);
        self.edit_race(&sessions).await?;
        let submissions = self.forced_conflicts(&sessions).await;
        let mut report = self
            .finish_scenario(
                phase,
                title,
                &[ACTIVITIES],
                started_at,
                clock.elapsed(),
                &metrics,
                submissions,
            )
            .await?;
        self.check_loser_draft().await?;

        let recovery = self.recover(&sessions).await?;
        let final_findings = self.final_reconciliation().await?;
        let stats = self.check_stats("after recovery").await?;
        let elapsed = clock.elapsed();
        report.elapsed_secs = elapsed.as_secs_f64();
        report.requests = metrics.requests();
        report.throughput_rps = metrics.requests() as f64 / elapsed.as_secs_f64().max(1e-9);
        report.latency = metrics.latency.summary();
        report.stats_after_recovery = Some(stats);
        report.notes.push(format!(
            "forced: all users read `activities`, then wrote the whole array at once (with either client: \
             item writes cannot conflict); plus an edit race on the shared account; \
             recovery: {} one by one, {} via submit-all",
            recovery.one_by_one, recovery.via_submit_all
        ));
        Ok((report, recovery, final_findings))
    }

    /// Two users edit the shared account from the same version: the first
    /// wins, the second becomes a draft whose submit must fail.
    async fn edit_race(&mut self, sessions: &[Session]) -> anyhow::Result<()> {
        let winner = &sessions[0];
        let loser = &sessions[1 % sessions.len()];
        let winner_notes = format!("Budget freigegeben — bestätigt von {}", winner.username);
        let loser_notes = format!("Budget still open — {} will call back", loser.username);
        let (Some(read_winner), Some(read_loser)) = (winner.get(ACCOUNTS).await?, loser.get(ACCOUNTS).await?) else {
            self.verdict
                .incident("D: `accounts` is missing although its setup write was acknowledged (saved but disappeared)");
            return Ok(());
        };
        let edited = (
            with_account_notes(read_winner.value()?, &self.account.id, &winner_notes),
            with_account_notes(read_loser.value()?, &self.account.id, &loser_notes),
        );
        let (Ok(winner_value), Ok(loser_value)) = edited else {
            self.verdict.incident(format!(
                "D: the shared account {} is missing from `accounts` although its setup write was acknowledged (saved but disappeared)",
                self.account.id
            ));
            return Ok(());
        };
        let first = winner
            .put(
                ACCOUNTS,
                winner_value.to_string(),
                Precondition::IfMatch(read_winner.version),
            )
            .await;
        let second = loser
            .put(
                ACCOUNTS,
                loser_value.to_string(),
                Precondition::IfMatch(read_loser.version),
            )
            .await;
        self.writes += 2;
        self.note_put("D", &first.tx, &first.outcome);
        self.note_put("D", &second.tx, &second.outcome);
        if !first.outcome.is_saved() {
            self.verdict.action(format!(
                "D: the first account edit was not saved ({:?}): someone else edits `accounts`",
                first.outcome
            ));
        }
        let loser_draft = match &second.outcome {
            PutOutcome::Conflict { draft_id: Some(id) } => Some(id.clone()),
            PutOutcome::Conflict { draft_id: None } => {
                self.verdict
                    .incident("D: a stale account edit answered 409 without a saved draft (lost conflict)");
                None
            }
            PutOutcome::Saved { .. } if first.outcome.is_saved() => {
                self.verdict.incident(
                    "D: two account edits based on the same version were both acknowledged: the first was silently overwritten",
                );
                None
            }
            other => {
                self.verdict
                    .action(format!("D: the stale account edit was answered {other:?}, not 409"));
                None
            }
        };
        self.edits = Some(EditRace {
            winner: winner.username.clone(),
            winner_notes,
            winner_outcome: first.outcome,
            loser: loser.username.clone(),
            loser_notes,
            loser_draft,
        });
        Ok(())
    }

    /// Every user reads `activities`, all wait for each other, then all
    /// write at once: one wins, the rest must become drafts. A lone user
    /// writes twice from the same read.
    async fn forced_conflicts(&self, sessions: &[Session]) -> Vec<Submission> {
        let barrier = Arc::new(tokio::sync::Barrier::new(sessions.len()));
        let mut tasks = JoinSet::new();
        let lone = sessions.len() == 1;
        for (user, session) in sessions.iter().cloned().enumerate() {
            let barrier = barrier.clone();
            let context = self.context();
            let mut rng = self.rng_for("D", 0, user);
            tasks.spawn(async move {
                let read = read_for_append(&session, ACTIVITIES).await;
                barrier.wait().await;
                let mut out = Vec::new();
                let Ok((precondition, array)) = read else {
                    context.note_error(format!("D: {} could not read activities", session.username));
                    return out;
                };
                let writes = if lone { 2 } else { 1 };
                for seq in 0..writes {
                    let record_id = record_id(&context.run_id, "D", user, seq);
                    let record = external_activity(&mut rng, record_id.clone(), &context.account, &session.username);
                    out.push(
                        put_record(
                            &session,
                            &context,
                            "D",
                            ACTIVITIES,
                            record_id,
                            record,
                            precondition,
                            &array,
                        )
                        .await,
                    );
                }
                out
            });
        }
        let mut submissions = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(done) = joined {
                submissions.extend(done);
            }
        }
        submissions
    }

    /// The losing edit's draft must be pending and hold the losing edit.
    async fn check_loser_draft(&mut self) -> anyhow::Result<()> {
        let Some(race) = &self.edits else {
            return Ok(());
        };
        let Some(id) = race.loser_draft.clone() else {
            return Ok(());
        };
        let drafts = self.admin.admin_drafts(Some(&race.loser), Some(ACCOUNTS)).await?;
        let held = drafts
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| find_record(&d.payload, &self.account.id));
        let holds_edit = held.and_then(|a| a.get("notes")).and_then(Value::as_str) == Some(race.loser_notes.as_str());
        if holds_edit {
            self.accounted.insert(id);
            self.edit_draft_held = true;
        } else {
            self.verdict.incident(format!(
                "D: the stale account edit's draft {id} is not pending with the edit (lost conflict)"
            ));
        }
        Ok(())
    }

    /// Every user opens Drafts: the first half of the users with drafts
    /// submit them one by one, the others use submit-all (a lone user splits
    /// its own). Then each result is verified against the drafts list.
    async fn recover(&mut self, sessions: &[Session]) -> anyhow::Result<RecoveryReport> {
        let mut with_drafts = Vec::new();
        for session in sessions {
            let mut drafts = session.my_drafts().await?;
            drafts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            if !drafts.is_empty() {
                with_drafts.push((session.clone(), drafts));
            }
        }
        let mut report = RecoveryReport {
            drafts_found: with_drafts.iter().map(|(_, d)| d.len()).sum(),
            ..RecoveryReport::default()
        };
        let groups = with_drafts.len();
        let mut tasks = JoinSet::new();
        for (index, (session, drafts)) in with_drafts.into_iter().enumerate() {
            let one_by_one = match groups {
                1 => drafts.len().div_ceil(2),
                _ if index < groups.div_ceil(2) => drafts.len(),
                _ => 0,
            };
            tasks.spawn(async move { recover_user(session, drafts, one_by_one).await });
        }
        let mut attempts = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            attempts.extend(joined.map_err(|e| anyhow!("a recovery task failed: {e}"))??);
        }
        attempts.sort_by(|a, b| a.draft_id.cmp(&b.draft_id));
        for attempt in &attempts {
            self.verify_attempt(attempt, sessions, &mut report).await?;
        }
        self.discard_loser_draft(sessions, &mut report).await?;
        self.progress.line(&format!(
            "recovery: {} drafts, {} saved, {} kept with their error, {} discarded",
            report.drafts_found, report.saved, report.kept_with_error, report.discarded
        ));
        Ok(report)
    }

    async fn verify_attempt(
        &mut self,
        attempt: &Attempt,
        sessions: &[Session],
        report: &mut RecoveryReport,
    ) -> anyhow::Result<()> {
        let session = session_of(sessions, &attempt.username)?;
        match attempt.via {
            Via::OneByOne => report.one_by_one += 1,
            Via::SubmitAll => report.via_submit_all += 1,
        }
        let ours = self.seen.values().any(|s| s.draft_ids.contains(&attempt.draft_id));
        let expected_to_fail = self
            .edits
            .as_ref()
            .is_some_and(|race| race.loser_draft.as_deref() == Some(attempt.draft_id.as_str()));
        let after = session.my_draft(&attempt.draft_id).await?;
        let id = &attempt.draft_id;
        match attempt.status.as_str() {
            "saved" => {
                report.saved += 1;
                self.expected_drafts -= 1;
                self.accounted.insert(id.clone());
                if after.is_some() {
                    self.verdict
                        .incident(format!("D: draft {id} was submitted (saved) but is still listed"));
                }
                if expected_to_fail {
                    self.verdict.incident(format!(
                        "D: draft {id} edits a record changed on both sides, yet its submit saved: the other edit was overwritten"
                    ));
                }
            }
            "conflict" => {
                report.kept_with_error += 1;
                match &after {
                    Some(draft)
                        if draft.last_error.as_deref().is_some_and(|e| !e.is_empty()) && draft.attempts >= 1 =>
                    {
                        report.kept_examples.push(format!(
                            "{id}: attempts {}, lastError {:?}",
                            draft.attempts,
                            draft.last_error.as_deref().unwrap_or_default()
                        ));
                    }
                    Some(_) => self
                        .verdict
                        .incident(format!("D: draft {id} failed to submit but carries no error detail")),
                    None => self
                        .verdict
                        .incident(format!("D: draft {id} failed to submit and then vanished")),
                }
                if !expected_to_fail && ours {
                    self.verdict.incident(format!(
                        "D: draft {id} (new records only) could not be submitted: {}",
                        attempt.error.as_deref().unwrap_or("no error given")
                    ));
                }
            }
            other => {
                report.other += 1;
                let message = format!(
                    "D: submitting draft {id} answered {other} ({})",
                    attempt.error.as_deref().unwrap_or("no error given")
                );
                if ours {
                    self.verdict.incident(message);
                } else {
                    self.verdict.action(message);
                }
            }
        }
        Ok(())
    }

    /// The failing draft has proven its point; its owner discards it, as a
    /// user would after redoing the edit by hand.
    async fn discard_loser_draft(&mut self, sessions: &[Session], report: &mut RecoveryReport) -> anyhow::Result<()> {
        let Some(race) = &self.edits else {
            return Ok(());
        };
        let Some(id) = race.loser_draft.clone() else {
            self.verdict
                .action("D: the path of a draft that still fails was not exercised (no stale edit draft)");
            return Ok(());
        };
        let session = session_of(sessions, &race.loser)?;
        if session.my_draft(&id).await?.is_none() {
            return Ok(());
        }
        let status = session.delete_draft(&id).await?;
        if status == 204 {
            report.discarded += 1;
            self.expected_drafts -= 1;
            self.accounted.insert(id.clone());
        }
        if session.my_draft(&id).await?.is_some() {
            self.verdict.action(format!(
                "D: discarding draft {id} answered {status} but it is still listed"
            ));
        }
        Ok(())
    }

    /// After recovery every record of every scenario is stored exactly
    /// once, and the winning account edit is what `accounts` holds.
    async fn final_reconciliation(&mut self) -> anyhow::Result<Findings> {
        let unflagged: Vec<Submission> = self
            .ledger
            .iter()
            .filter(|s| !self.flagged.contains(&s.record_id))
            .cloned()
            .collect();
        let keys = [ACTIVITIES, INTERNAL_ACTIVITIES, ACCOUNTS];
        let mut findings = self.reconcile_now(&unflagged, &keys, Stage::AfterRecovery).await?;
        if let Some(race) = &self.edits {
            if race.winner_outcome.is_saved() {
                let accounts = self.read_values(&[ACCOUNTS]).await?;
                let notes = accounts
                    .get(ACCOUNTS)
                    .and_then(|v| find_record(v, &self.account.id))
                    .and_then(|a| a.get("notes"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if notes != race.winner_notes {
                    findings.disappeared.push(Incident {
                        phase: "D".into(),
                        key: ACCOUNTS.into(),
                        record_id: self.account.id.clone(),
                        username: race.winner.to_string(),
                        transaction_id: None,
                        detail: format!(
                            "the acknowledged account edit was overwritten; the account now says {notes:?}"
                        ),
                    });
                }
            }
        }
        self.judge_findings("after recovery", &findings);
        Ok(findings)
    }

    /// Holds the server's log against what each phase's clients saw.
    fn check_log(&mut self, log: &str) -> BTreeMap<String, LogCheck> {
        let events = events_by_phase(log, &self.run_id);
        let mut checks = BTreeMap::new();
        let phases: Vec<&'static str> = self.seen.keys().copied().collect();
        for phase in phases {
            let phase_events = events.get(phase).cloned().unwrap_or_default();
            let check = cross_check(&phase_events, &self.seen[phase], &self.accounted);
            if check.incidents() > 0 {
                self.verdict.incident(format!(
                    "log, {phase}: {} vanished draft(s), {} draft(s) that could not be saved, {} HTTP 500(s)",
                    check.drafts_vanished.len(),
                    check.draft_failed_events,
                    check.http_500
                ));
            }
            if check.mismatches() > 0 {
                self.verdict.action(format!(
                    "log, {phase}: {} 409(s) without a storage_conflict line, {} storage_conflict line(s) without a 409, \
                     {} acknowledged write(s) without a storage_write line, {} draft id(s) not logged as saved, \
                     {} logged draft(s) never answered",
                    check.conflicts_unlogged.len(),
                    check.conflict_events_unseen.len(),
                    check.acknowledged_unlogged.len(),
                    check.drafts_unlogged.len(),
                    check.drafts_logged_unanswered.len()
                ));
            }
            if check.write_failed_events > 0 {
                self.verdict.action(format!(
                    "log, {phase}: {} storage_write_failed line(s): the database failed writes",
                    check.write_failed_events
                ));
            }
            checks.insert(phase.to_owned(), check);
        }
        checks
    }

    fn into_report(mut self, parts: PilotParts<'_>) -> PilotReport {
        if let Ok(errors) = self.errors.lock() {
            for error in errors.iter() {
                self.verdict.action(format!("client error: {error}"));
            }
        }
        let conflicts = self.seen.values().map(|s| s.conflict_txs.len()).sum();
        let drafts_answered = self.seen.values().map(|s| s.draft_ids.len()).sum();
        PilotReport::build(crate::report::PilotFacts {
            run_id: self.run_id,
            client: self.client,
            seed: self.seed,
            started_at: parts.started_at,
            elapsed: parts.elapsed,
            server: parts.harness.describe(),
            spawned: parts.harness.spawned(),
            testers: self.users.iter().map(|s| s.username.to_string()).collect(),
            window_secs: self.options.window().as_secs_f64(),
            think_ms: self.options.think().as_millis() as u64,
            rounds: self.options.rounds,
            per_user: self.options.per_user,
            quick: self.options.quick,
            writes: self.writes,
            conflicts,
            drafts_answered,
            edit_draft_held: self.edit_draft_held,
            scenarios: parts.scenarios,
            recovery: parts.recovery,
            final_findings: parts.final_findings,
            log_checks: parts.log_checks,
            log_skipped: parts.log_skipped,
            verdict: self.verdict,
        })
    }
}

impl SubmitContext {
    fn note_error(&self, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
    }
}

fn record_id(run_id: &str, phase: &str, user: usize, seq: usize) -> String {
    format!("{run_id}-{phase}-u{:02}-{seq:02}", user + 1)
}

fn incident_line(phase: &str, what: &str, incident: &Incident) -> String {
    format!(
        "{phase}: {what}: record {} in `{}` by {} (tx {}): {}",
        incident.record_id,
        incident.key,
        incident.username,
        incident.transaction_id.as_deref().unwrap_or("-"),
        incident.detail
    )
}

fn session_of<'s>(sessions: &'s [Session], username: &str) -> anyhow::Result<&'s Session> {
    sessions
        .iter()
        .find(|s| &*s.username == username)
        .ok_or_else(|| anyhow!("no session for {username}"))
}

/// GET the key for an append: its precondition and its array text (`[]`
/// and create-only when the key was never written).
async fn read_for_append(session: &Session, key: &str) -> anyhow::Result<(Precondition, String)> {
    Ok(match session.get(key).await? {
        None => (Precondition::Create, "[]".to_owned()),
        Some(fetched) => (Precondition::IfMatch(fetched.version), fetched.value_text()?.to_owned()),
    })
}

/// One submission as the web app makes it: read, fill in the form, write.
#[allow(clippy::too_many_arguments)]
async fn submit_record(
    session: &Session,
    context: &SubmitContext,
    phase: &'static str,
    user: usize,
    seq: usize,
    kind: Kind,
    think: Duration,
    rng: &mut StdRng,
) -> Submission {
    let key = kind.key();
    let id = record_id(&context.run_id, phase, user, seq);
    let record = match kind {
        Kind::External => external_activity(rng, id.clone(), &context.account, &session.username),
        Kind::Internal => internal_activity(rng, id.clone(), &session.username),
    };
    if context.client == Client::Items {
        // The page load: the POST needs nothing from it, so a failed read
        // is noted and the record is sent all the same.
        if let Err(error) = session.get(key).await {
            context.note_error(format!("{phase}: {} could not read {key}: {error:#}", session.username));
        }
        tokio::time::sleep(think).await;
        return append_record(session, context, phase, key, id, record).await;
    }
    let read = read_for_append(session, key).await;
    tokio::time::sleep(think).await;
    match read {
        Ok((precondition, array)) => put_record(session, context, phase, key, id, record, precondition, &array).await,
        Err(error) => {
            context.note_error(format!("{phase}: {} could not read {key}: {error:#}", session.username));
            Submission {
                phase,
                username: session.username.clone(),
                key: key.to_owned(),
                record_id: id,
                record: Some(record),
                put: None,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn put_record(
    session: &Session,
    context: &SubmitContext,
    phase: &'static str,
    key: &'static str,
    record_id: String,
    record: Value,
    precondition: Precondition,
    array: &str,
) -> Submission {
    let mut submission = Submission {
        phase,
        username: session.username.clone(),
        key: key.to_owned(),
        record_id,
        record: None,
        put: None,
    };
    match append_to_array(array, &record.to_string()) {
        Ok(body) => {
            let put = session.put(key, body, precondition).await;
            context.progress.count(&put.outcome);
            submission.put = Some((put.tx, put.outcome));
        }
        Err(_) => context.note_error(format!("{phase}: `{key}` is not an array; nothing written")),
    }
    submission.record = Some(record);
    submission
}

/// `--client items`: one `POST .../items` of the record.
async fn append_record(
    session: &Session,
    context: &SubmitContext,
    phase: &'static str,
    key: &'static str,
    record_id: String,
    record: Value,
) -> Submission {
    let put = session.append_item(key, record.to_string()).await;
    context.progress.count(&put.outcome);
    Submission {
        phase,
        username: session.username.clone(),
        key: key.to_owned(),
        record_id,
        record: Some(record),
        put: Some((put.tx, put.outcome)),
    }
}

/// The `accounts` value with our account's notes replaced.
fn with_account_notes(mut accounts: Value, account_id: &str, notes: &str) -> anyhow::Result<Value> {
    let account = accounts
        .as_array_mut()
        .and_then(|all| {
            all.iter_mut()
                .find(|a| a.get("id").and_then(Value::as_str) == Some(account_id))
        })
        .ok_or_else(|| anyhow!("the shared account {account_id} is missing from `accounts`"))?;
    account["notes"] = Value::String(notes.to_owned());
    Ok(accounts)
}

#[derive(Debug, Clone, Copy)]
enum Via {
    OneByOne,
    SubmitAll,
}

#[derive(Debug, Clone)]
struct Attempt {
    username: String,
    draft_id: String,
    via: Via,
    status: String,
    error: Option<String>,
}

/// One user's recovery: the first `one_by_one` drafts singly, the rest
/// with submit-all.
async fn recover_user(session: Session, drafts: Vec<DraftView>, one_by_one: usize) -> anyhow::Result<Vec<Attempt>> {
    let mut attempts = Vec::new();
    let username = session.username.to_string();
    for draft in drafts.iter().take(one_by_one) {
        let (_, result) = session.submit_draft(&draft.id).await?;
        attempts.push(Attempt {
            username: username.clone(),
            draft_id: draft.id.clone(),
            via: Via::OneByOne,
            status: result.status,
            error: result.error,
        });
    }
    if drafts.len() > one_by_one {
        // submit-all retries the drafts that just failed one by one too:
        // each draft is reported once, with its latest answer.
        for result in session.submit_all().await? {
            match attempts.iter_mut().find(|a| a.draft_id == result.draft_id) {
                Some(earlier) => {
                    earlier.status = result.status;
                    earlier.error = result.error;
                }
                None => attempts.push(Attempt {
                    username: username.clone(),
                    draft_id: result.draft_id,
                    via: Via::SubmitAll,
                    status: result.status,
                    error: result.error,
                }),
            }
        }
    }
    Ok(attempts)
}

#[allow(clippy::too_many_arguments)]
fn scenario_report(
    phase: &'static str,
    title: &str,
    keys: &[&'static str],
    started_at: DateTime<Utc>,
    elapsed: Duration,
    metrics: &PhaseMetrics,
    users: usize,
    findings: Findings,
    stats: StatsCheck,
) -> ScenarioReport {
    let latency: LatencySummary = metrics.latency.summary();
    ScenarioReport {
        name: phase.to_owned(),
        title: title.to_owned(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        elapsed_secs: elapsed.as_secs_f64(),
        users,
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        requests: metrics.requests(),
        throughput_rps: metrics.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
        latency,
        findings,
        stats,
        stats_after_recovery: None,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_account_edit_changes_only_that_accounts_notes() {
        let accounts = json!([{"id": "other", "notes": "x"}, {"id": "mine", "notes": "old", "name": "Müller"}]);
        let edited = with_account_notes(accounts, "mine", "neu").unwrap();
        assert_eq!(
            edited,
            json!([{"id": "other", "notes": "x"}, {"id": "mine", "notes": "neu", "name": "Müller"}])
        );
    }

    #[test]
    fn a_missing_account_cannot_be_edited() {
        assert!(with_account_notes(json!([{"id": "other"}]), "mine", "neu").is_err());
        assert!(with_account_notes(json!({"id": "mine"}), "mine", "neu").is_err());
    }

    #[test]
    fn each_pass_of_both_gets_its_own_users_on_targets_and_its_own_saved_log() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            options: PilotOptions,
        }
        let spawned = Wrapper::parse_from(["x", "--client", "both", "--save-server-log", "out/server.log"]).options;
        let pass = pass_options(&spawned, Client::Items);
        assert_eq!(
            pass.target.user_prefix, "loadtest",
            "a spawned server is fresh per pass"
        );
        assert_eq!(
            pass.target.save_server_log.as_deref(),
            Some(std::path::Path::new("out/server.items.log"))
        );
        let targeted = Wrapper::parse_from(["x", "--client", "both", "--target", "http://127.0.0.1:1"]).options;
        assert_eq!(
            pass_options(&targeted, Client::Whole).target.user_prefix,
            "loadtest-whole"
        );
        assert_eq!(
            pass_options(&targeted, Client::Items).target.user_prefix,
            "loadtest-items"
        );
    }

    #[test]
    fn record_ids_name_the_run_the_phase_the_user_and_the_sequence() {
        assert_eq!(record_id("lt1", "A", 0, 3), "lt1-A-u01-03");
    }

    #[test]
    fn quick_mode_shortens_the_defaults_but_not_explicit_values() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            options: PilotOptions,
        }
        let quick = Wrapper::parse_from(["x", "--quick"]).options;
        assert_eq!(quick.window(), Duration::from_secs(3));
        assert_eq!(quick.think(), Duration::from_millis(300));
        let explicit = Wrapper::parse_from(["x", "--quick", "--window", "10"]).options;
        assert_eq!(explicit.window(), Duration::from_secs(10));
        let default = Wrapper::parse_from(["x"]).options;
        assert_eq!(default.client, ClientChoice::Whole);
        assert_eq!(default.window(), Duration::from_secs(30));
        assert_eq!(default.users, 5);
        assert_eq!(default.rounds, 2);
    }
}

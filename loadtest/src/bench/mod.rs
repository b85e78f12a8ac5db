//! `loadtest bench`: the coordinator against the alternatives, side by side
//! in one run. Every design is started once and kept running; each
//! measurement cell (key set x connections) runs the designs in turn,
//! round after round (S S1 B0 E, S1 B0 E S, ...), so a change in the
//! machine's speed hits all of them alike. Throughput counts every durable
//! answer (for the coordinator, a 409 stored a draft before it was sent).
//!
//! After the matrix: p99 of S in an open loop at half its best rate, the
//! fsync probe again, and the memory run over many distinct keys.

mod designs;
mod etcd;
mod probes;
mod report;

pub use designs::Design;
pub use report::BenchReport;

use crate::histogram::Histogram;
use anyhow::{bail, Context};
use clap::Args;
use designs::{Answer, SeenVersions, Target};
use probes::{FsyncProbe, MemoryRun};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use report::{Cell, HalfRate};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Flushes per probe: enough to catch this disk's occasional long stalls.
const FLUSHES_PER_PROBE: usize = 500;

#[derive(Args, Debug, Clone)]
pub struct BenchOptions {
    /// Designs to compare (E needs --with-etcd).
    #[arg(long, value_delimiter = ',', default_values = ["s", "s1", "b0"])]
    pub designs: Vec<Design>,

    /// Also run design E: start a single etcd node (installing the Debian
    /// package etcd-server when etcd is missing) and stop it after.
    #[arg(long)]
    pub with_etcd: bool,

    /// Concurrent connections, one measurement cell each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64])]
    pub connections: Vec<usize>,

    /// Key sets: writes go to one hot key, or spread uniformly over N keys.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 1000])]
    pub keys: Vec<usize>,

    /// Seconds each design runs in each round of a cell.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,

    /// Rounds per cell; the designs alternate within each round.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,

    /// Records in each written array (about 200 bytes each).
    #[arg(long, default_value_t = 5)]
    pub records: usize,

    /// Distinct keys per pass of the memory run; 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    pub memory_keys: usize,

    /// The actor idle timeout during the memory run, in seconds: longer
    /// than a pass takes, so that every key of the pass is live at its end.
    #[arg(long, default_value_t = 40.0)]
    pub memory_idle_secs: f64,

    /// Passes of the memory run: RSS after eviction levels off once the
    /// database's page caches are full, which takes more than one pass.
    #[arg(long, default_value_t = 3)]
    pub memory_passes: usize,

    /// One more flag for the coordinators of S and S1 (repeatable), such as
    /// `--server-arg=--log-level=coordinator=debug` to log every batch.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,

    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench.json")]
    pub json: PathBuf,
}

/// Fixed-size arrays of activity records; the first record's id is unique
/// per write, so no two payloads are the same (the coordinator stores two
/// identical drafts once, which would flatter it).
struct Payloads {
    tail: String,
}

impl Payloads {
    fn new(records: usize) -> Self {
        let tail = (1..records.max(1))
            .map(|n| record(&format!("bench-fixed-{n}")))
            .collect::<Vec<_>>()
            .join(",");
        Self { tail }
    }

    fn make(&self, worker: usize, seq: u64) -> String {
        let first = record(&format!("bench-{worker}-{seq}"));
        if self.tail.is_empty() {
            format!("[{first}]")
        } else {
            format!("[{first},{}]", self.tail)
        }
    }
}

fn record(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"customer_call","account":"Northwind Traders","owner":"bench","date":"2026-12-03","notes":"Discussed the renewal and the pilot scope; follow-up call booked.","durationMinutes":45}}"#
    )
}

/// The keys of one key set, and the version each was last seen at.
struct KeySet {
    names: Vec<String>,
    seen: SeenVersions,
}

impl KeySet {
    fn new(count: usize) -> Self {
        let names = if count == 1 {
            vec!["bench-hot".to_owned()]
        } else {
            (0..count).map(|n| format!("bench-{count}-{n}")).collect()
        };
        Self {
            seen: SeenVersions::new(names.len()),
            names,
        }
    }

    fn pick(&self, rng: &mut StdRng) -> usize {
        if self.names.len() == 1 {
            0
        } else {
            rng.gen_range(0..self.names.len())
        }
    }
}

/// What one design did in one round of a cell.
#[derive(Default)]
struct Tally {
    latency: Histogram,
    saved: AtomicU64,
    conflicts: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn record(&self, answer: Answer, elapsed: Duration) {
        self.latency.record(elapsed);
        let counter = match answer {
            Answer::Saved => &self.saved,
            Answer::Conflict => &self.conflicts,
            Answer::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let mut designs = options.designs.clone();
    if options.with_etcd && !designs.contains(&Design::E) {
        designs.push(Design::E);
    }
    if designs.contains(&Design::E) && !options.with_etcd {
        bail!("design E runs etcd: add --with-etcd (it installs etcd-server when etcd is missing)");
    }
    designs.sort();
    designs.dedup();
    let mut options = options;
    for list in [&mut options.connections, &mut options.keys] {
        list.sort_unstable();
        list.dedup();
    }
    if designs.is_empty() || options.connections.is_empty() || options.keys.is_empty() {
        bail!("nothing to measure: name at least one design, connection count and key set");
    }
    if options.keys.contains(&0) || options.connections.contains(&0) || options.rounds == 0 {
        bail!("key sets, connection counts and rounds must be at least 1");
    }
    let etcd_binary = if designs.contains(&Design::E) {
        Some(tokio::task::spawn_blocking(etcd::Etcd::find_or_install).await??)
    } else {
        None
    };
    let most_connections = options.connections.iter().copied().max().unwrap_or(1);
    let mut targets = Vec::new();
    for &design in &designs {
        let target = Target::start(
            design,
            etcd_binary.as_deref(),
            most_connections,
            options.server_args.clone(),
        )
        .await
        .with_context(|| format!("starting design {design}"))?;
        eprintln!("loadtest bench: {design} listens at {}", target.base_url());
        targets.push(Arc::new(target));
    }
    let probe_dir = targets
        .iter()
        .find_map(|t| t.coordinator().map(|server| server.dir().to_owned()))
        .unwrap_or_else(std::env::temp_dir);
    let mut report = BenchReport::new(&options, &designs);
    report
        .fsync
        .push(FsyncProbe::run(&probe_dir, "before", FLUSHES_PER_PROBE)?);
    eprintln!("loadtest bench: {}", report.fsync[0].line());

    let payloads = Arc::new(Payloads::new(options.records));
    let duration = Duration::from_secs_f64(options.duration);
    for &key_count in &options.keys {
        let key_sets: Vec<Arc<KeySet>> = targets.iter().map(|_| Arc::new(KeySet::new(key_count))).collect();
        for (target, keys) in targets.iter().zip(&key_sets) {
            target
                .create_keys(&keys.names, &keys.seen, &payloads.make(0, 0))
                .await?;
            // Warm-up, not measured: connections, caches, the keys' actors.
            closed_loop(target, keys, &payloads, most_connections.min(8), Duration::from_secs(1)).await;
        }
        for &connections in &options.connections {
            let mut cells: BTreeMap<Design, Cell> = BTreeMap::new();
            for round in 0..options.rounds {
                for turn in 0..targets.len() {
                    let index = (round + turn) % targets.len();
                    let (target, keys) = (&targets[index], &key_sets[index]);
                    let before = batch_counts(target).await;
                    let (tally, seconds) = closed_loop(target, keys, &payloads, connections, duration).await;
                    let batches = batch_counts(target)
                        .await
                        .map(|after| subtract(after, before.unwrap_or_default()));
                    eprintln!(
                        "loadtest bench: {key_count} key(s), {connections} connection(s), round {}: {} {:.0} answers/s",
                        round + 1,
                        target.design,
                        answers(&tally) as f64 / seconds
                    );
                    cells
                        .entry(target.design)
                        .or_insert_with(|| Cell::new(target.design, key_count, connections))
                        .add_round(&tally, seconds, batches);
                }
            }
            report.cells.extend(cells.into_values());
        }
        if let Some(index) = designs.iter().position(|&d| d == Design::S) {
            let best = report.best_rate(Design::S, key_count);
            if best > 0.0 {
                let rate = best / 2.0;
                let tally = open_loop(&targets[index], &key_sets[index], &payloads, rate, duration * 2).await;
                report
                    .half_rate
                    .push(HalfRate::new(key_count, rate, &tally, duration * 2));
            }
        }
    }
    report
        .fsync
        .push(FsyncProbe::run(&probe_dir, "after the matrix", FLUSHES_PER_PROBE)?);
    drop(targets);

    if options.memory_keys > 0 {
        eprintln!("loadtest bench: memory run over {} keys per pass", options.memory_keys);
        // A failure here must not throw away the matrix measured above.
        match MemoryRun::run(
            options.memory_keys,
            options.memory_passes,
            most_connections,
            options.memory_idle_secs,
        )
        .await
        {
            Ok(memory) => report.memory = Some(memory),
            Err(error) => report.memory_error = Some(format!("{error:#}")),
        }
    }
    report.finish();
    Ok(report)
}

fn answers(tally: &Tally) -> u64 {
    tally.saved.load(Ordering::Relaxed) + tally.conflicts.load(Ordering::Relaxed)
}

/// `connections` writers, each starting its next write when the last one
/// is answered, for `duration`. Returns the tally and the seconds it took
/// (until the last answer).
async fn closed_loop(
    target: &Arc<Target>,
    keys: &Arc<KeySet>,
    payloads: &Arc<Payloads>,
    connections: usize,
    duration: Duration,
) -> (Tally, f64) {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + duration;
    let mut writers = JoinSet::new();
    for worker in 0..connections {
        let (target, keys, payloads, tally) = (target.clone(), keys.clone(), payloads.clone(), tally.clone());
        writers.spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            let mut seq = 0_u64;
            while Instant::now() < deadline {
                seq += 1;
                let index = keys.pick(&mut rng);
                let payload = payloads.make(worker, seq);
                let sent = Instant::now();
                let answer = target.write(&keys.names[index], index, &keys.seen, payload).await;
                tally.record(answer, sent.elapsed());
            }
        });
    }
    while writers.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let tally = Arc::try_unwrap(tally).unwrap_or_else(|_| unreachable!("every writer has finished"));
    (tally, seconds)
}

/// Writes started at a constant `rate` whatever the answers' pace, each
/// timed from when it was due (so queueing shows in the latency). At most
/// 1024 in flight; a due write beyond that is counted as failed.
async fn open_loop(
    target: &Arc<Target>,
    keys: &Arc<KeySet>,
    payloads: &Arc<Payloads>,
    rate: f64,
    duration: Duration,
) -> Tally {
    const MAX_IN_FLIGHT: usize = 1024;
    let tally = Arc::new(Tally::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut writes = JoinSet::new();
    for seq in 0.. {
        let due = started + Duration::from_secs_f64(seq as f64 / rate);
        if due >= started + duration {
            break;
        }
        tokio::time::sleep_until(due).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let index = keys.pick(&mut rng);
        let (target, keys, tally, in_flight) = (target.clone(), keys.clone(), tally.clone(), in_flight.clone());
        let payload = payloads.make(usize::MAX, seq);
        writes.spawn(async move {
            let answer = target.write(&keys.names[index], index, &keys.seen, payload).await;
            tally.record(answer, due.elapsed());
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        while writes.try_join_next().is_some() {}
    }
    while writes.join_next().await.is_some() {}
    Arc::try_unwrap(tally).unwrap_or_else(|_| unreachable!("every write has finished"))
}

/// The coordinator's batch counters (`coordinator_write_batches_total` by
/// smallest size in the bucket); `None` for designs without them.
async fn batch_counts(target: &Target) -> Option<BTreeMap<usize, u64>> {
    target.coordinator()?;
    let text = target
        .http()
        .get(format!("{}/metrics", target.base_url()))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_batch_counts(&text))
}

fn parse_batch_counts(metrics: &str) -> BTreeMap<usize, u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("coordinator_write_batches_total{min_size=\""))
        .filter_map(|rest| {
            let (size, rest) = rest.split_once("\"}")?;
            Some((size.parse().ok()?, rest.trim().parse().ok()?))
        })
        .collect()
}

fn subtract(after: BTreeMap<usize, u64>, before: BTreeMap<usize, u64>) -> BTreeMap<usize, u64> {
    after
        .into_iter()
        .map(|(size, count)| (size, count - before.get(&size).copied().unwrap_or(0)))
        .filter(|&(_, count)| count > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counts_are_read_from_the_metrics_text() {
        let text = "# HELP x\ncoordinator_write_batches_total{min_size=\"1\"} 5\n\
                    coordinator_write_batches_total{min_size=\"16\"} 2\ncoordinator_live_key_actors 3\n";
        let counts = parse_batch_counts(text);
        assert_eq!(counts, BTreeMap::from([(1, 5), (16, 2)]));
        let later = BTreeMap::from([(1, 7), (16, 2), (32, 1)]);
        assert_eq!(subtract(later, counts), BTreeMap::from([(1, 2), (32, 1)]));
    }

    #[test]
    fn payloads_are_unique_valid_arrays_of_the_asked_size() {
        let payloads = Payloads::new(5);
        let a: serde_json::Value = serde_json::from_str(&payloads.make(1, 1)).unwrap();
        let b = payloads.make(1, 2);
        assert_eq!(a.as_array().map(Vec::len), Some(5));
        assert_ne!(a.to_string(), b);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&Payloads::new(1).make(0, 0))
                .unwrap()
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}

//! The benchmark's results: a table people read and the same as JSON.

use super::designs::Design;
use super::probes::{FsyncProbe, MemoryRun};
use super::{BenchOptions, Tally};
use crate::histogram::{Histogram, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    pub started_at: String,
    pub command: String,
    pub cores: usize,
    pub designs: Vec<Design>,
    pub seconds_per_round: f64,
    pub rounds: usize,
    pub records_per_write: usize,
    pub fsync: Vec<FsyncProbe>,
    pub cells: Vec<Cell>,
    pub ratios: Vec<Ratios>,
    pub half_rate: Vec<HalfRate>,
    pub memory: Option<MemoryRun>,
    pub memory_error: Option<String>,
    pub targets: Vec<TargetCheck>,
}

/// One design at one key set and connection count, over all rounds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub design: Design,
    pub keys: usize,
    pub connections: usize,
    pub answers_per_sec: f64,
    /// Each round's rate, to show the spread.
    pub rounds_per_sec: Vec<f64>,
    pub saved: u64,
    pub conflicts: u64,
    pub failed: u64,
    pub seconds: f64,
    pub latency: LatencySummary,
    /// Coordinator only: transactions by size (smallest size in the power-of-two bucket).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub batches: BTreeMap<usize, u64>,
    /// Coordinator only: answers per transaction (each answer is one commit or one draft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers_per_flush: Option<f64>,
    #[serde(skip)]
    histogram: Histogram,
}

impl Cell {
    pub(super) fn new(design: Design, keys: usize, connections: usize) -> Self {
        Self {
            design,
            keys,
            connections,
            answers_per_sec: 0.0,
            rounds_per_sec: Vec::new(),
            saved: 0,
            conflicts: 0,
            failed: 0,
            seconds: 0.0,
            latency: LatencySummary::default(),
            batches: BTreeMap::new(),
            answers_per_flush: None,
            histogram: Histogram::new(),
        }
    }

    pub(super) fn add_round(&mut self, tally: &Tally, seconds: f64, batches: Option<BTreeMap<usize, u64>>) {
        let saved = tally.saved.load(Ordering::Relaxed);
        let conflicts = tally.conflicts.load(Ordering::Relaxed);
        self.saved += saved;
        self.conflicts += conflicts;
        self.failed += tally.failed.load(Ordering::Relaxed);
        self.seconds += seconds;
        self.rounds_per_sec.push((saved + conflicts) as f64 / seconds);
        self.answers_per_sec = (self.saved + self.conflicts) as f64 / self.seconds;
        self.histogram.merge(&tally.latency);
        self.latency = self.histogram.summary();
        for (size, count) in batches.unwrap_or_default() {
            *self.batches.entry(size).or_default() += count;
        }
        let flushes: u64 = self.batches.values().sum();
        if flushes > 0 {
            self.answers_per_flush = Some((self.saved + self.conflicts) as f64 / flushes as f64);
        }
    }
}

/// S against the others in one cell: S's rate divided by theirs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ratios {
    pub keys: usize,
    pub connections: usize,
    pub s_over_s1: Option<f64>,
    pub s_over_e: Option<f64>,
    pub s_over_b0: Option<f64>,
}

/// S in an open loop at half the best rate it reached on a key set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HalfRate {
    pub keys: usize,
    pub offered_per_sec: f64,
    pub answered_per_sec: f64,
    pub failed: u64,
    pub latency: LatencySummary,
}

impl HalfRate {
    pub(super) fn new(keys: usize, rate: f64, tally: &Tally, duration: Duration) -> Self {
        let answered = tally.saved.load(Ordering::Relaxed) + tally.conflicts.load(Ordering::Relaxed);
        Self {
            keys,
            offered_per_sec: rate,
            answered_per_sec: answered as f64 / duration.as_secs_f64(),
            failed: tally.failed.load(Ordering::Relaxed),
            latency: tally.latency.summary(),
        }
    }
}

/// One of the targets, and whether this run met it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCheck {
    pub target: String,
    /// `None` when a design it needs was not run.
    pub holds: Option<bool>,
    pub figure: String,
}

impl BenchReport {
    pub(super) fn new(options: &BenchOptions, designs: &[Design]) -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            designs: designs.to_vec(),
            seconds_per_round: options.duration,
            rounds: options.rounds,
            records_per_write: options.records,
            fsync: Vec::new(),
            cells: Vec::new(),
            ratios: Vec::new(),
            half_rate: Vec::new(),
            memory: None,
            memory_error: None,
            targets: Vec::new(),
        }
    }

    fn cell(&self, design: Design, keys: usize, connections: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.design == design && c.keys == keys && c.connections == connections)
    }

    /// A design's rate in a cell; `None` when it was not run or answered
    /// nothing, or when more than 1% of its writes failed (its rate would
    /// not be comparable).
    fn rate(&self, design: Design, keys: usize, connections: usize) -> Option<f64> {
        let cell = self.cell(design, keys, connections)?;
        let answered = cell.saved + cell.conflicts;
        (answered > 0 && cell.failed * 100 <= answered).then_some(cell.answers_per_sec)
    }

    /// S's (or another design's) best rate on a key set, over connection counts.
    pub(super) fn best_rate(&self, design: Design, keys: usize) -> f64 {
        self.cells
            .iter()
            .filter(|c| c.design == design && c.keys == keys)
            .map(|c| c.answers_per_sec)
            .fold(0.0, f64::max)
    }

    /// Ratios and target checks, once every cell is in.
    pub(super) fn finish(&mut self) {
        let mut cells: Vec<(usize, usize)> = self.cells.iter().map(|c| (c.keys, c.connections)).collect();
        cells.dedup();
        self.ratios = cells
            .into_iter()
            .map(|(keys, connections)| {
                let s = self.rate(Design::S, keys, connections);
                let over = |other: Design| Some(s? / self.rate(other, keys, connections)?);
                Ratios {
                    keys,
                    connections,
                    s_over_s1: over(Design::S1),
                    s_over_e: over(Design::E),
                    s_over_b0: over(Design::B0),
                }
            })
            .collect();
        let most = self.ratios.iter().map(|r| r.connections).max().unwrap_or(0);
        let hot = self.ratios.iter().map(|r| r.keys).min().unwrap_or(0);
        let many_keys = self.ratios.iter().map(|r| r.keys).max().unwrap_or(0);
        let ratio = |keys: usize, pick: fn(&Ratios) -> Option<f64>| {
            self.ratios
                .iter()
                .find(|r| r.keys == keys && r.connections == most)
                .and_then(pick)
        };
        let mut checks = vec![
            ratio_check(
                format!("S >= 10x S1, {hot} key(s), {most} connections"),
                ratio(hot, |r| r.s_over_s1),
                10.0,
            ),
            ratio_check(
                format!("S >= 2x E, {hot} key(s), {most} connections"),
                ratio(hot, |r| r.s_over_e),
                2.0,
            ),
        ];
        if many_keys > hot {
            checks.push(ratio_check(
                format!("S >= 2x E, {many_keys} keys, {most} connections"),
                ratio(many_keys, |r| r.s_over_e),
                2.0,
            ));
            checks.push(ratio_check(
                format!("S >= B0/3, {many_keys} keys, {most} connections"),
                ratio(many_keys, |r| r.s_over_b0),
                1.0 / 3.0,
            ));
        }
        for run in &self.half_rate {
            checks.push(TargetCheck {
                target: format!("p99 < 10 ms at half of S's best rate, {} key(s)", run.keys),
                holds: Some(run.latency.p99_ms < 10.0 && run.failed == 0),
                figure: format!(
                    "p99 {:.2} ms at {:.0}/s offered ({} failed)",
                    run.latency.p99_ms, run.offered_per_sec, run.failed
                ),
            });
        }
        self.targets = checks;
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "loadtest bench, {} ({} cores): {} round(s) of {} s per design and cell, {} records per write",
            self.started_at, self.cores, self.rounds, self.seconds_per_round, self.records_per_write
        )?;
        writeln!(out, "command: {}", self.command)?;
        for probe in &self.fsync {
            writeln!(out, "{}", probe.line())?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:>5} {:>5} {:>6} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>9}  answers/s per round",
            "keys",
            "conns",
            "design",
            "answers/s",
            "saved/s",
            "p50 ms",
            "p99 ms",
            "saved",
            "409",
            "failed",
            "per flush"
        )?;
        for cell in &self.cells {
            let per_flush = cell
                .answers_per_flush
                .map_or_else(|| "-".to_owned(), |n| format!("{n:.1}"));
            let rounds: Vec<String> = cell.rounds_per_sec.iter().map(|r| format!("{r:.0}")).collect();
            writeln!(
                out,
                "{:>5} {:>5} {:>6} {:>10.0} {:>8.0} {:>8.2} {:>8.2} {:>9} {:>9} {:>6} {:>9}  {}",
                cell.keys,
                cell.connections,
                cell.design,
                cell.answers_per_sec,
                cell.saved as f64 / cell.seconds,
                cell.latency.p50_ms,
                cell.latency.p99_ms,
                cell.saved,
                cell.conflicts,
                cell.failed,
                per_flush,
                rounds.join(" ")
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:>5} {:>5} {:>8} {:>8} {:>8}",
            "keys", "conns", "S/S1", "S/E", "S/B0"
        )?;
        let show = |ratio: Option<f64>| ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        for ratio in &self.ratios {
            writeln!(
                out,
                "{:>5} {:>5} {:>8} {:>8} {:>8}",
                ratio.keys,
                ratio.connections,
                show(ratio.s_over_s1),
                show(ratio.s_over_e),
                show(ratio.s_over_b0)
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "transactions of S by size (smallest size of each power-of-two bucket: count):"
        )?;
        for cell in self.cells.iter().filter(|c| c.design == Design::S) {
            let sizes: Vec<String> = cell.batches.iter().map(|(size, n)| format!("{size}:{n}")).collect();
            writeln!(
                out,
                "  {} key(s), {} conns: {}",
                cell.keys,
                cell.connections,
                sizes.join(" ")
            )?;
        }
        for run in &self.half_rate {
            writeln!(
                out,
                "S open loop at half its best rate, {} key(s): offered {:.0}/s, answered {:.0}/s, \
                 p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed",
                run.keys,
                run.offered_per_sec,
                run.answered_per_sec,
                run.latency.p50_ms,
                run.latency.p99_ms,
                run.latency.max_ms,
                run.failed
            )?;
        }
        if let Some(memory) = &self.memory {
            writeln!(out)?;
            for line in memory.lines() {
                writeln!(out, "{line}")?;
            }
        }
        if let Some(error) = &self.memory_error {
            writeln!(out, "memory run failed: {error}")?;
        }
        writeln!(out)?;
        writeln!(out, "targets:")?;
        for check in &self.targets {
            let verdict = match check.holds {
                Some(true) => "holds",
                Some(false) => "MISSED",
                None => "not run",
            };
            writeln!(out, "  {:<7} {}: {}", verdict, check.target, check.figure)?;
        }
        Ok(())
    }
}

fn ratio_check(target: String, ratio: Option<f64>, at_least: f64) -> TargetCheck {
    TargetCheck {
        target,
        holds: ratio.map(|r| r >= at_least),
        figure: ratio.map_or_else(
            || "a design it needs was not run, answered nothing or failed more than 1% of writes".to_owned(),
            |r| format!("{r:.2}x"),
        ),
    }
}

//! What the benchmark measures besides throughput: how long one disk flush
//! takes right now, and how much memory the coordinator keeps for keys it
//! has touched once.

use super::designs::{Design, SeenVersions, Target};
use anyhow::Context;
use serde::Serialize;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long one disk flush takes right now, measured two ways in the
/// directory of the coordinator's database: after appending 4 KiB to a
/// growing file (the file system must also journal the new size), and after
/// overwriting 4 KiB in place in a file already that long (what SQLite's
/// write-ahead log mostly does once it has wrapped).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsyncProbe {
    pub when: String,
    pub flushes: usize,
    pub append: FlushTimes,
    pub overwrite: FlushTimes,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlushTimes {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

const BLOCK: usize = 4096;

impl FsyncProbe {
    pub fn run(dir: &Path, when: &str, count: usize) -> anyhow::Result<Self> {
        let path = dir.join("fsync-probe");
        let mut file = std::fs::File::create(&path).context("creating the fsync probe file")?;
        let block = [0x5a_u8; BLOCK];
        let append = time_flushes(&mut file, &block, count)?;
        file.seek(SeekFrom::Start(0))?;
        let overwrite = time_flushes(&mut file, &block, count)?;
        drop(file);
        std::fs::remove_file(&path)?;
        Ok(Self {
            when: when.to_owned(),
            flushes: count,
            append,
            overwrite,
        })
    }

    pub fn line(&self) -> String {
        format!(
            "fsync probe ({}), {} flushes each: append 4 KiB median {:.2} ms (p99 {:.2}, max {:.2}); \
             overwrite 4 KiB in place median {:.2} ms (p99 {:.2}, max {:.2})",
            self.when,
            self.flushes,
            self.append.median_ms,
            self.append.p99_ms,
            self.append.max_ms,
            self.overwrite.median_ms,
            self.overwrite.p99_ms,
            self.overwrite.max_ms,
        )
    }
}

/// `count` times: write `block` at the file's position, then time one
/// `fdatasync`.
fn time_flushes(file: &mut std::fs::File, block: &[u8], count: usize) -> anyhow::Result<FlushTimes> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        file.write_all(block)?;
        let started = Instant::now();
        file.sync_data()?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(FlushTimes {
        median_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

/// Resident memory of a coordinator that touched many distinct keys once.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRun {
    pub keys_per_pass: usize,
    pub actor_idle_secs: f64,
    pub rss_at_start_mib: f64,
    pub passes: Vec<MemoryPass>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPass {
    pub seconds: f64,
    pub failed_writes: usize,
    /// Right after the last write of the pass.
    pub live_actors: usize,
    pub rss_mib: f64,
    /// (RSS now - RSS at start) / live actors: an upper bound on what one
    /// actor costs, since it also counts SQLite's page cache, connection
    /// buffers and what the allocator keeps.
    pub rss_growth_per_live_actor_bytes: f64,
    /// Once every actor of the pass has stopped.
    pub live_actors_after_eviction: usize,
    pub rss_after_eviction_mib: f64,
    pub seconds_to_evict: f64,
}

impl MemoryRun {
    /// `passes` passes of `keys` fresh keys each, `connections` at a time,
    /// with `idle_secs` of actor idle timeout: the later ones show whether
    /// memory freed by eviction is reused or the process keeps growing.
    pub async fn run(keys: usize, pass_count: usize, connections: usize, idle_secs: f64) -> anyhow::Result<Self> {
        let idle = vec!["--actor-idle-secs".to_owned(), idle_secs.to_string()];
        let target = Arc::new(Target::start(Design::S, None, connections, idle).await?);
        let pid = target
            .coordinator()
            .context("the memory run needs the coordinator")?
            .pid();
        let rss_at_start_mib = rss_mib(pid)?;
        let mut passes = Vec::new();
        for pass in 1..=pass_count {
            let started = Instant::now();
            let failed = touch_keys(&target, &format!("mem{pass}-"), keys, connections).await;
            let seconds = started.elapsed().as_secs_f64();
            let live_actors = live_actors_now(&target).await?;
            let rss = rss_mib(pid)?;
            let evicting = Instant::now();
            let deadline = evicting + Duration::from_secs_f64(idle_secs * 3.0 + 30.0);
            let mut live_after = live_actors;
            while live_after > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                live_after = live_actors_now(&target).await?;
            }
            passes.push(MemoryPass {
                seconds,
                failed_writes: failed,
                live_actors,
                rss_mib: rss,
                rss_growth_per_live_actor_bytes: (rss - rss_at_start_mib) * 1024.0 * 1024.0 / live_actors.max(1) as f64,
                live_actors_after_eviction: live_after,
                rss_after_eviction_mib: rss_mib(pid)?,
                seconds_to_evict: evicting.elapsed().as_secs_f64(),
            });
        }
        Ok(Self {
            keys_per_pass: keys,
            actor_idle_secs: idle_secs,
            rss_at_start_mib,
            passes,
        })
    }

    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "memory: {} fresh keys per pass, each written once, actor idle timeout {} s; RSS at start {:.1} MiB",
            self.keys_per_pass, self.actor_idle_secs, self.rss_at_start_mib
        )];
        for (number, pass) in self.passes.iter().enumerate() {
            lines.push(format!(
                "  pass {}: {:.1} s ({} failed); {} live actors, RSS {:.1} MiB (growth per live actor {:.0} bytes, \
                 an upper bound); after eviction ({:.0} s): {} live, RSS {:.1} MiB",
                number + 1,
                pass.seconds,
                pass.failed_writes,
                pass.live_actors,
                pass.rss_mib,
                pass.rss_growth_per_live_actor_bytes,
                pass.seconds_to_evict,
                pass.live_actors_after_eviction,
                pass.rss_after_eviction_mib,
            ));
        }
        lines
    }
}

/// Creates `count` keys named `<prefix><n>`; returns how many writes failed.
async fn touch_keys(target: &Arc<Target>, prefix: &str, count: usize, connections: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let (target, next, prefix) = (target.clone(), next.clone(), prefix.to_owned());
        workers.spawn(async move {
            let seen = SeenVersions::new(1);
            let mut failed = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return failed;
                }
                if target
                    .create_keys(&[format!("{prefix}{n}")], &seen, "[]")
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
        });
    }
    let mut failed = 0;
    while let Some(result) = workers.join_next().await {
        failed += result.unwrap_or(count);
    }
    failed
}

/// `coordinator_live_key_actors` from `/metrics`.
async fn live_actors_now(target: &Target) -> anyhow::Result<usize> {
    let text = target
        .http()
        .get(format!("{}/metrics", target.base_url()))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix("coordinator_live_key_actors "))
        .context("no coordinator_live_key_actors in /metrics")?
        .trim()
        .parse()
        .context("reading coordinator_live_key_actors")
}

/// `VmRSS` of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS in /proc/<pid>/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

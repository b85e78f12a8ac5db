use clap::{Parser, Subcommand};
use loadtest::bench::{self, BenchOptions};
use loadtest::burst::{self, BurstOptions};
use loadtest::pilot::{self, PilotOptions};
use std::path::Path;
use std::process::ExitCode;

/// Runs the pilot runbook's scenarios against the coordinator and proves
/// nothing was lost. Exit status: 0 PASS or PASS WITH ACTIONS, 1 FAIL,
/// 2 the run itself could not be made.
#[derive(Parser)]
#[command(name = "loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scenarios A-D of the pilot runbook, reconciliation and the post-pilot report.
    Pilot(PilotOptions),
    /// Many users on few keys, for capacity: requests/s, 409 ratio, latency, no loss.
    Burst(BurstOptions),
    /// The coordinator against the alternatives, side by side: throughput,
    /// latency, ratios, fsync probe, memory over many keys.
    Bench(BenchOptions),
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pilot(options) => {
            let json_path = options.json.clone();
            let markdown_path = options.report.clone();
            let report = pilot::run(options).await?;
            let markdown = report.to_markdown();
            println!("{markdown}");
            write_if_asked(markdown_path.as_deref(), &markdown)?;
            write_if_asked(json_path.as_deref(), &serde_json::to_string_pretty(&report)?)?;
            Ok(exit_code(report.decision().exit_code()))
        }
        Command::Burst(options) => {
            let json_path = options.json.clone();
            let report = burst::run(options).await?;
            println!("{}", report.to_text());
            write_if_asked(json_path.as_deref(), &serde_json::to_string_pretty(&report)?)?;
            Ok(exit_code(report.decision.exit_code()))
        }
        Command::Bench(options) => {
            let json_path = options.json.clone();
            let report = bench::run(options).await?;
            println!("{}", report.to_text());
            write_if_asked(Some(&json_path), &serde_json::to_string_pretty(&report)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_if_asked(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

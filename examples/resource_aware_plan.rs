//! The resource-aware plan: a migration planned against a time window, memory and bandwidth
//! before starting:
//!
//! ```text
//! cargo run --release --example resource_aware_plan -- \
//!     --manifest migration/manifest.json --window 2m --memory 2GiB --bandwidth 50MB/s \
//!     --priority customers=critical --priority audit_logs=deferrable [--json]
//! ```
//!
//! Prints the Markdown plan, or with `--json` the JSON plan whose top level has `feasible`,
//! `order` and `deferred` (objects with `table` and `reason`). Exits 1 when the plan is not
//! feasible, 2 on bad input.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use migrate_core::config_serde::{parse_bytes, parse_duration};
use migrate_core::plan::{plan, Constraints, Manifest, Priority};

/// Plan a migration against its constraints.
#[derive(Parser)]
struct Args {
    /// The planning manifest JSON (tables with rows, size_mb, optional priority; dependencies).
    #[arg(long)]
    manifest: std::path::PathBuf,
    /// Time window, e.g. 4h, 90m, 2m.
    #[arg(long, default_value = "4h")]
    window: String,
    /// Memory budget, e.g. 2GiB, 512MiB.
    #[arg(long, default_value = "2GiB")]
    memory: String,
    /// Bandwidth target, e.g. 50MB/s.
    #[arg(long, default_value = "50MB/s")]
    bandwidth: String,
    /// Hard bandwidth cap, e.g. 100MB/s.
    #[arg(long)]
    cap: Option<String>,
    /// Chunks in flight.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// TABLE=critical|important|deferrable (repeatable; overrides the manifest).
    #[arg(long = "priority", value_name = "TABLE=LEVEL")]
    priorities: Vec<String>,
    /// Print the JSON plan instead of Markdown.
    #[arg(long)]
    json: bool,
}

fn rate(s: &str) -> Result<u64, migrate_core::Error> {
    parse_bytes(s.trim_end_matches("/s"))
}

fn run(args: &Args) -> Result<migrate_core::plan::Plan, migrate_core::Error> {
    let origin = args.manifest.display().to_string();
    let text = std::fs::read_to_string(&args.manifest).map_err(|e| {
        migrate_core::Error::with_source(
            migrate_core::ErrorKind::Config,
            format!("cannot read manifest {origin}"),
            e,
        )
    })?;
    let manifest = Manifest::parse(&text, &origin)?;
    let mut priorities = BTreeMap::new();
    for p in &args.priorities {
        let (table, level) = p.split_once('=').ok_or_else(|| {
            migrate_core::Error::config(format!("--priority {p:?}: expected TABLE=LEVEL"))
        })?;
        priorities.insert(table.to_string(), level.parse::<Priority>()?);
    }
    let constraints = Constraints {
        window: parse_duration(&args.window)?,
        memory_budget: parse_bytes(&args.memory)?,
        bandwidth_target: rate(&args.bandwidth)?,
        bandwidth_cap: args.cap.as_deref().map(rate).transpose()?,
        parallelism: args.parallelism,
    };
    plan(&manifest.tables(&priorities), &constraints)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(p) => {
            println!(
                "{}",
                if args.json {
                    p.to_json()
                } else {
                    p.to_markdown()
                }
            );
            if p.feasible {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

//! Postgres → Postgres, side by side in one run: psql's binary COPY pipe (the practical
//! ceiling), pgcopydb, and migrate (library API) at parallelism 1 and 2, with SQLite and
//! in-memory checkpoints. Each figure is the median of `--runs` runs, taken round-robin (one run
//! of every tool per round, so the machine's drift is shared); ratios are to the psql pipe
//! measured in the same run.
//!
//! ```text
//! cargo run --release -p migrate-benches --bin pg_to_pg -- --scale 0.2 --runs 3
//! ```
//!
//! Needs `psql`, `pg_dump` and GNU `time` (and `pgcopydb` for its rows; `benches/run.sh`
//! installs them). Server: `MIGRATE_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`.

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use clap::Parser;
use migrate_benches::{
    db_url, generate, have_pgcopydb, measure_interleaved, pgcopydb_command, pipe_command,
    pipe_script, primary_keys_sql, print_table, recreate, target_tables_only, MigrateRun, Tool,
    TABLES,
};

/// Postgres to Postgres benchmark.
#[derive(Parser)]
struct Args {
    /// Fraction of the sample dataset's 13.6 M rows (0.19 ≈ 2.6 M rows, the size of the Postgres →
    /// Postgres comparison in benches/README.md).
    #[arg(long, default_value_t = 0.05)]
    scale: f64,
    /// Runs per tool; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Internal: run one migrate configuration in this process (see `MigrateRun`).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.worker {
        MigrateRun::decode(spec).run();
        return;
    }
    eprintln!("generating the sample dataset at scale {} …", args.scale);
    let (rows, bytes) = generate("bench_src", args.scale);
    eprintln!("{rows} rows, {:.0} MB in the source", bytes as f64 / 1e6);
    let exe = std::env::current_exe().expect("exe");
    let state = std::env::temp_dir().join("bench-state.db");
    let bare = || target_tables_only("bench_src", "bench_dst");
    let keys = primary_keys_sql("bench_src");
    let mut tools = vec![
        Tool {
            name: "psql binary COPY pipe (p=1)".into(),
            prepare: Box::new(bare),
            command: Box::new(|| pipe_command("bench_src", "bench_dst", &TABLES)),
        },
        Tool {
            name: "psql binary COPY pipe, then primary keys (p=1)".into(),
            prepare: Box::new(bare),
            command: Box::new(|| {
                let mut c = Command::new("bash");
                c.args([
                    "-o",
                    "pipefail",
                    "-c",
                    &format!(
                        "{} && psql '{}' -qX -v ON_ERROR_STOP=1 -c \"$KEYS\"",
                        pipe_script("bench_src", "bench_dst", &TABLES),
                        db_url("bench_dst")
                    ),
                ])
                .env("KEYS", &keys);
                c
            }),
        },
    ];
    let have_pgcopydb = have_pgcopydb();
    for jobs in [1, 2] {
        if have_pgcopydb {
            tools.push(Tool {
                name: format!("pgcopydb copy table-data (jobs={jobs})"),
                prepare: Box::new(bare),
                command: Box::new(move || pgcopydb_command("bench_src", "bench_dst", jobs)),
            });
        }
        for store in ["sqlite", "memory", "bare"] {
            if jobs == 2 && store == "memory" {
                continue;
            }
            // `bare`: SQLite checkpoints, loading into the same keyless tables as the pipe and
            // pgcopydb (equal work: migrate then builds no keys).
            let bare_target = store == "bare";
            let store = if bare_target { "sqlite" } else { store };
            let run = MigrateRun {
                parallelism: jobs,
                store: store.into(),
                src: "bench_src".into(),
                dst: "bench_dst".into(),
                state: state.display().to_string(),
                memory_budget: 0,
            };
            let state = state.clone();
            let exe = exe.clone();
            tools.push(Tool {
                name: match bare_target {
                    true => format!("migrate (p={jobs}, {store}, into the bare tables: data only)"),
                    false => format!("migrate (p={jobs}, {store} checkpoints)"),
                },
                prepare: Box::new(move || {
                    match bare_target {
                        true => bare(),
                        false => recreate("bench_dst"),
                    }
                    let _ = std::fs::remove_file(&state);
                    let _ = std::fs::remove_file(state.with_extension("db-wal"));
                }),
                command: Box::new(move || run.command(&exe)),
            });
        }
    }
    let medians = measure_interleaved(args.runs, &tools);
    let results: Vec<(String, Option<(f64, f64)>)> =
        tools.iter().map(|t| t.name.clone()).zip(medians).collect();
    print_table(args.runs, rows, bytes, &results);
    if !have_pgcopydb {
        println!("\npgcopydb not installed (benches/run.sh installs Debian's package)");
    }
}

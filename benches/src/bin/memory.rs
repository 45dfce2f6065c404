//! Bounded memory: migrating one wide table of at least 10× the memory budget must keep
//! migrate's peak RSS within the budget plus 64 MiB. Printed next to the psql pipe and pgcopydb
//! copying the same table, measured in the same run.
//!
//! ```text
//! cargo run --release -p migrate-benches --bin memory -- --budget-mib 32 --rows 1000000
//! ```

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use clap::Parser;
use migrate_benches::{
    generate_wide, have_pgcopydb, measure, pgcopydb_command, pipe_command, print_table, recreate,
    target_tables_only, MigrateRun,
};

/// Memory benchmark.
#[derive(Parser)]
struct Args {
    /// migrate's memory budget, MiB.
    #[arg(long, default_value_t = 32)]
    budget_mib: u64,
    /// Rows in the wide table (the table must come out at ≥ 10× the budget).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Runs per tool; the median is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Internal: run one migrate configuration in this process.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.worker {
        MigrateRun::decode(spec).run();
        return;
    }
    let budget = args.budget_mib << 20;
    eprintln!("generating a 30-column table of {} rows …", args.rows);
    let bytes = generate_wide("bench_mem_src", args.rows);
    eprintln!("{:.0} MiB in the source", bytes as f64 / 1048576.0);
    let exe = std::env::current_exe().expect("exe");
    let state = std::env::temp_dir().join("bench-mem-state.db");
    let bare = || target_tables_only("bench_mem_src", "bench_mem_dst");
    let mut results = vec![(
        "psql binary COPY pipe".to_string(),
        measure("pipe", args.runs, &bare, &|| {
            pipe_command("bench_mem_src", "bench_mem_dst", &["wide"])
        }),
    )];
    if have_pgcopydb() {
        let r = measure("pgcopydb", args.runs, &bare, &|| {
            pgcopydb_command("bench_mem_src", "bench_mem_dst", 2)
        });
        results.push(("pgcopydb copy table-data (jobs=2)".into(), r));
    }
    // Verification on too: the in-flight checksums and the table read back must stay in budget.
    let mut peaks = Vec::new();
    for verify in [false, true] {
        let run = MigrateRun {
            memory_budget: budget,
            verify,
            ..MigrateRun::lean(
                2,
                "bench_mem_src",
                "bench_mem_dst",
                &state.display().to_string(),
            )
        };
        let migrate = measure(
            "migrate",
            args.runs,
            &|| {
                recreate("bench_mem_dst");
                let _ = std::fs::remove_file(&state);
            },
            &|| run.command(&exe),
        );
        let name = format!(
            "migrate (p=2, budget {} MiB, verification {})",
            args.budget_mib,
            if verify { "on" } else { "off" }
        );
        peaks.push((name.clone(), migrate));
        results.push((name, migrate));
    }
    print_table(args.runs, args.rows, bytes, &results);
    let limit = args.budget_mib + 64;
    println!(
        "\ntable: {:.0} MiB = {:.1}x the budget (needs >= 10x)",
        bytes as f64 / 1048576.0,
        bytes as f64 / budget as f64
    );
    for (name, migrate) in peaks {
        match migrate {
            Some((_, rss)) => println!(
                "{name}: peak RSS {rss:.0} MiB vs budget {} MiB + 64 MiB = {limit} MiB: {}",
                args.budget_mib,
                if rss <= limit as f64 { "MET" } else { "MISSED" }
            ),
            None => println!("{name} failed"),
        }
    }
}

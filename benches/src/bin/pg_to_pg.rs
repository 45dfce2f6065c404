//! Postgres → Postgres on **equal work**, side by side in one run: every tool starts from an
//! empty target database and ends with the source's whole schema — tables, primary keys,
//! unique constraints, secondary indexes and foreign keys — and its data.
//!
//! - the reference: `pg_dump --section=pre-data | psql`, psql's binary COPY pipe table by table,
//!   then `pg_dump --section=post-data | psql` and `ANALYZE` (p=1; and p=2: two tables piped at a time);
//! - `pgcopydb clone --table-jobs N --index-jobs N` for N = 1, 2;
//! - migrate through the library (SQLite checkpoints, the sink's default options: it creates
//!   the tables, builds keys, uniques and indexes after the data, creates the foreign keys and
//!   ANALYZEs) at parallelism 1 and 2, with the library's default verification and with
//!   verification off.
//!
//! Each figure is the median of `--runs` runs taken round-robin (one run of every tool per
//! round, so the machine's drift is shared); ratios are to the pipe + post-data at p=1 measured
//! in the same run, per round as well as of the medians. After each tool's first run its
//! target's schema is compared with the source's. A table of where migrate's time goes by phase
//! (from its report) follows, and a second, data-only table: the pipe and migrate (verification
//! off) into bare tables, no keys, with `--data-only` (not equal work either way: migrate's
//! sink still builds the source's uniques and secondary indexes there).
//!
//! ```text
//! cargo run --release -p migrate-benches --bin pg_to_pg -- --scale 0.19 --runs 5
//! ```
//!
//! Needs `psql`, `pg_dump` and GNU `time` (and `pgcopydb` for its rows; `benches/run.sh`
//! installs them). Server: `MIGRATE_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`.

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use migrate_benches::{
    generate_indexed, have_pgcopydb, index_and_constraint_counts, measure_rounds, median,
    median_f64, pgcopydb_clone_command, pipe_command, pipe_post_data_command, print_table,
    recreate, schema_difference, tables_by_size, target_tables_only, MigrateRun, Tool, TABLES,
};
use serde_json::Value;

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
    /// Add a second, data-only table (bare tables, no keys). Not equal work: migrate's sink
    /// still builds the source's unique constraints and secondary indexes on those tables.
    #[arg(long)]
    data_only: bool,
    /// Internal: run one migrate configuration in this process (see `MigrateRun`).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

const SRC: &str = "bench_src";
const DST: &str = "bench_dst";

/// What a row of the comparison is, besides its [`Tool`].
struct Row {
    /// What the tool did, for the table.
    did: String,
    /// In the main (whole schema) table, or the data-only one.
    whole_schema: bool,
    /// Where a migrate run's report lands.
    report: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.worker {
        MigrateRun::decode(spec).run();
        return;
    }
    eprintln!(
        "generating the sample dataset (keys, uniques, indexes, foreign keys) at scale {} …",
        args.scale
    );
    let (rows, bytes) = generate_indexed(SRC, args.scale);
    eprintln!(
        "{rows} rows, {:.0} MB of table data in the source",
        bytes as f64 / 1e6
    );
    let exe = std::env::current_exe().expect("exe");
    let tmp = std::env::temp_dir();
    let state = tmp.join("bench-state.db");
    let by_size = tables_by_size(SRC);
    let have_pgcopydb = have_pgcopydb();

    let mut tools: Vec<Tool> = Vec::new();
    let mut meta: Vec<Row> = Vec::new();
    let empty = || recreate(DST);
    for jobs in [1, 2] {
        let by_size = by_size.clone();
        tools.push(Tool {
            name: format!("psql pipe + post-data (p={jobs})"),
            prepare: Box::new(empty),
            command: Box::new(move || {
                let order: Vec<&str> = match jobs {
                    1 => TABLES.to_vec(),
                    _ => by_size.iter().map(String::as_str).collect(),
                };
                pipe_post_data_command(SRC, DST, &order, jobs)
            }),
        });
        meta.push(Row {
            did: format!(
                "schema+data+indexes+FKs (pre-data, binary COPY {}, post-data), ANALYZE, verification off (none)",
                if jobs == 1 {
                    "table by table".to_string()
                } else {
                    format!("{jobs} tables at a time")
                }
            ),
            whole_schema: true,
            report: None,
        });
    }
    if have_pgcopydb {
        for jobs in [1, 2] {
            tools.push(Tool {
                name: format!("pgcopydb clone (jobs={jobs})"),
                prepare: Box::new(empty),
                command: Box::new(move || pgcopydb_clone_command(SRC, DST, jobs)),
            });
            meta.push(Row {
                did: format!(
                    "schema+data+indexes+FKs (--table-jobs {jobs} --index-jobs {jobs}), VACUUM ANALYZE, verification off (none)"
                ),
                whole_schema: true,
                report: None,
            });
        }
    }
    for jobs in [1, 2] {
        for verify in [true, false] {
            let run = MigrateRun {
                verify,
                foreign_keys: true,
                analyze: true,
                report: tmp
                    .join(format!("bench-report-p{jobs}-{verify}.json"))
                    .display()
                    .to_string(),
                ..MigrateRun::lean(jobs, SRC, DST, &state.display().to_string())
            };
            push_migrate(
                (&mut tools, &mut meta),
                (&state, &exe),
                format!(
                    "migrate (p={jobs}, verification {})",
                    if verify { "default" } else { "off" }
                ),
                format!(
                    "schema+data+indexes+FKs, ANALYZE, verification {}",
                    if verify {
                        "on (library defaults: checksums + 100-key sample)"
                    } else {
                        "off"
                    }
                ),
                run,
                false,
            );
        }
    }
    if args.data_only {
        tools.push(Tool {
            name: "psql binary COPY pipe, data only (p=1)".into(),
            prepare: Box::new(|| target_tables_only(SRC, DST)),
            command: Box::new(|| pipe_command(SRC, DST, &TABLES)),
        });
        meta.push(Row {
            did: "data into bare tables (pre-data only), no keys".into(),
            whole_schema: false,
            report: None,
        });
        let run = MigrateRun {
            report: tmp
                .join("bench-report-data-only.json")
                .display()
                .to_string(),
            ..MigrateRun::lean(1, SRC, DST, &state.display().to_string())
        };
        push_migrate(
            (&mut tools, &mut meta),
            (&state, &exe),
            "migrate, data only (p=1, verification off)".into(),
            "data into the same bare tables, no primary keys, no FKs, no ANALYZE, but the source's uniques and secondary indexes built (the sink always builds them)".into(),
            run,
            true,
        );
    }

    // Untimed, after each run: the report of a migrate run; after each tool's first run, its
    // target's schema against the source's.
    let reports: RefCell<Vec<Vec<Option<Value>>>> = RefCell::new(vec![Vec::new(); tools.len()]);
    let schemas: RefCell<BTreeMap<usize, Option<String>>> = RefCell::new(BTreeMap::new());
    let rounds = measure_rounds(args.runs, &tools, &|tool, round, _| {
        if let Some(path) = &meta[tool].report {
            let report = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            reports.borrow_mut()[tool].push(report);
        }
        if round == 0 {
            schemas
                .borrow_mut()
                .insert(tool, schema_difference(SRC, DST));
        }
    });
    let medians: Vec<Option<(f64, f64)>> = rounds
        .iter()
        .map(|r| median(r.iter().flatten().copied().collect()))
        .collect();
    let name_of = |i: usize| tools[i].name.as_str();

    // The main table: whole schema.
    let reference = medians[0].map(|m| m.0);
    println!(
        "\n## Whole schema: every tool from an empty database to tables, keys, uniques, indexes and foreign keys ({rows} rows, {:.0} MB of table data)",
        bytes as f64 / 1e6
    );
    println!(
        "\n| tool | what it did | wall s (median of {}) | rows/s | peak RSS MiB | vs pipe + post-data (p=1) |",
        args.runs
    );
    println!("|------|------|------|------|------|------|");
    for (i, row) in meta.iter().enumerate().filter(|(_, m)| m.whole_schema) {
        match medians[i] {
            Some((wall, rss)) => println!(
                "| {} | {} | {wall:.2} | {:.0} | {rss:.0} | {} |",
                name_of(i),
                row.did,
                rows as f64 / wall,
                reference.map_or("-".into(), |p| format!("{:.2}x", wall / p))
            ),
            None => println!("| {} | {} | failed | | | |", name_of(i), row.did),
        }
    }

    // Per-round ratios and the targets.
    let find = |name: &str| tools.iter().position(|t| t.name == name);
    let pipe = find("psql pipe + post-data (p=1)");
    let checks = [
        ("migrate (p=1, verification default)", pipe, 1.30, "<= 1.30"),
        ("migrate (p=1, verification off)", pipe, 1.00, "<= 1.00"),
        (
            "migrate (p=1, verification off)",
            find("pgcopydb clone (jobs=1)"),
            1.00,
            "< 1.00",
        ),
        (
            "migrate (p=2, verification off)",
            find("pgcopydb clone (jobs=2)"),
            1.00,
            "< 1.00",
        ),
    ];
    println!("\nPer round (runs of the same round), ratios and targets:\n");
    for (a, b, limit, target) in checks {
        let (Some(a), Some(b)) = (find(a), b) else {
            continue;
        };
        let per_round: Vec<Option<f64>> = rounds[a]
            .iter()
            .zip(&rounds[b])
            .map(|(x, y)| Some(x.as_ref()?.0 / y.as_ref()?.0))
            .collect();
        let shown: Vec<String> = per_round
            .iter()
            .map(|r| r.map_or("failed".into(), |r| format!("{r:.2}")))
            .collect();
        let mid = median_f64(per_round.iter().flatten().copied().collect());
        let of_medians = match (medians[a], medians[b]) {
            (Some(x), Some(y)) => Some(x.0 / y.0),
            _ => None,
        };
        let met = |r: f64| {
            if (target.starts_with("<=") && r <= limit) || (target.starts_with("< ") && r < limit) {
                "MET"
            } else {
                "MISSED"
            }
        };
        println!(
            "- {} / {}: {} (median {}); of the medians {}; target {target}: {}",
            name_of(a),
            name_of(b),
            shown.join(", "),
            mid.map_or("-".into(), |m| format!("{m:.2}")),
            of_medians.map_or("-".into(), |m| format!("{m:.2}")),
            match (mid, of_medians) {
                (Some(m), Some(o)) => format!("{} per round, {} of the medians", met(m), met(o)),
                _ => "not measured".into(),
            }
        );
    }

    // Same schema at the end?
    let (si, sc) = index_and_constraint_counts(SRC);
    println!(
        "\nSchema after each tool's first run against the source's (`pg_dump --schema-only`, statements compared as sets; comments, SETs and the tools' bookkeeping schemas `_migrate`/`pgcopydb` left out; the source has {si} indexes and {sc} constraints in public):\n"
    );
    for (i, diff) in schemas
        .borrow()
        .iter()
        .filter(|(i, _)| meta[**i].whole_schema)
    {
        match diff {
            None => println!("- {}: schema equal: yes", name_of(*i)),
            Some(d) => println!(
                "- {}: schema equal: NO — first difference: {d}",
                name_of(*i)
            ),
        }
    }

    // Where migrate's time goes.
    phase_table(&tools, &meta, &reports.borrow(), &medians);

    // Data only.
    if args.data_only {
        println!("\n## Data only (NOT equal to the tables above): bare tables from `pg_dump --section=pre-data`, no keys, no indexes, no foreign keys, no verification\n");
        let results: Vec<(String, Option<(f64, f64)>)> = meta
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.whole_schema)
            .map(|(i, _)| (name_of(i).to_string(), medians[i]))
            .collect();
        for (i, row) in meta.iter().enumerate().filter(|(_, m)| !m.whole_schema) {
            println!("- {}: {}", name_of(i), row.did);
        }
        print_table(args.runs, rows, bytes, &results);
        println!(
            "\nThe same schema check, as a check of the check (these targets lack the keys):\n"
        );
        for (i, diff) in schemas
            .borrow()
            .iter()
            .filter(|(i, _)| !meta[**i].whole_schema)
        {
            match diff {
                None => println!(
                    "- {}: schema equal: yes (UNEXPECTED for bare tables)",
                    name_of(*i)
                ),
                Some(d) => println!(
                    "- {}: schema equal: no, as expected — first difference: {d}",
                    name_of(*i)
                ),
            }
        }
    }
    if !have_pgcopydb {
        println!("\npgcopydb not installed (benches/run.sh installs Debian's package)");
    }
}

/// Adds a migrate run to the comparison: into an empty database, or into the bare tables when
/// `bare`; its state file and report are removed before each run.
fn push_migrate(
    (tools, meta): (&mut Vec<Tool<'_>>, &mut Vec<Row>),
    (state, exe): (&Path, &Path),
    name: String,
    did: String,
    run: MigrateRun,
    bare: bool,
) {
    let report = PathBuf::from(&run.report);
    let (state, exe, report_file) = (state.to_path_buf(), exe.to_path_buf(), report.clone());
    tools.push(Tool {
        name,
        prepare: Box::new(move || {
            match bare {
                true => target_tables_only(SRC, DST),
                false => recreate(DST),
            }
            for f in [
                state.clone(),
                state.with_extension("db-wal"),
                state.with_extension("db-shm"),
                report_file.clone(),
            ] {
                let _ = std::fs::remove_file(f);
            }
        }),
        command: Box::new(move || run.command(&exe)),
    });
    meta.push(Row {
        did,
        whole_schema: !bare,
        report: Some(report),
    });
}

/// Per migrate run: the seconds of each phase summed over tables (`results[].phase_seconds`),
/// median over rounds, next to the report's `timing.duration_seconds` and GNU time's wall.
fn phase_table(
    tools: &[Tool],
    meta: &[Row],
    reports: &[Vec<Option<Value>>],
    medians: &[Option<(f64, f64)>],
) {
    let migrate: Vec<usize> = (0..tools.len())
        .filter(|&i| meta[i].report.is_some())
        .collect();
    // Per tool, per round: phase → seconds summed over tables.
    let sums = |i: usize| -> Vec<BTreeMap<String, f64>> {
        reports[i]
            .iter()
            .flatten()
            .filter_map(|r| {
                let mut by_phase = BTreeMap::new();
                let mut any = false;
                for t in r.get("results")?.as_array()? {
                    if let Some(p) = t.get("phase_seconds").and_then(Value::as_object) {
                        any = true;
                        for (k, v) in p {
                            *by_phase.entry(k.clone()).or_insert(0.0) += v.as_f64().unwrap_or(0.0);
                        }
                    }
                }
                any.then_some(by_phase)
            })
            .collect()
    };
    let duration = |i: usize| {
        median_f64(
            reports[i]
                .iter()
                .flatten()
                .filter_map(|r| r.pointer("/timing/duration_seconds")?.as_f64())
                .collect(),
        )
    };
    let known = ["prepare", "copy", "finalize", "verify"];
    let mut phases: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    let all: Vec<Vec<BTreeMap<String, f64>>> = (0..tools.len())
        .map(|i| {
            if migrate.contains(&i) {
                sums(i)
            } else {
                Vec::new()
            }
        })
        .collect();
    let have_phases = all.iter().any(|v| !v.is_empty());
    for k in all.iter().flatten().flat_map(|m| m.keys()) {
        if !phases.contains(k) {
            phases.push(k.clone());
        }
    }
    println!("\n## Where migrate's time goes (its report; medians over the rounds)\n");
    if !have_phases {
        println!("phase timings not in the report\n");
        println!("| migrate run | report timing.duration_seconds | wall s (GNU time) |");
        println!("|------|------|------|");
        for &i in &migrate {
            println!(
                "| {} | {} | {} |",
                tools[i].name,
                duration(i).map_or("-".into(), |d| format!("{d:.2}")),
                medians[i].map_or("-".into(), |m| format!("{:.2}", m.0))
            );
        }
        return;
    }
    println!(
        "| migrate run | {} | sum of phases | report timing.duration_seconds | wall s (GNU time) |",
        phases
            .iter()
            .map(|p| format!("{p} s"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "|------|{}------|------|------|",
        "------|".repeat(phases.len())
    );
    for &i in &migrate {
        let cells: Vec<Option<f64>> = phases
            .iter()
            .map(|p| median_f64(all[i].iter().filter_map(|m| m.get(p).copied()).collect()))
            .collect();
        let total = median_f64(all[i].iter().map(|m| m.values().sum()).collect());
        println!(
            "| {} | {} | {} | {} | {} |",
            tools[i].name,
            cells
                .iter()
                .map(|c| c.map_or("-".into(), |c| format!("{c:.2}")))
                .collect::<Vec<_>>()
                .join(" | "),
            total.map_or("-".into(), |t| format!("{t:.2}")),
            duration(i).map_or("-".into(), |d| format!("{d:.2}")),
            medians[i].map_or("-".into(), |m| format!("{:.2}", m.0))
        );
    }
    println!(
        "\nPhases are summed over tables; phases of different tables can overlap (at p=2 above all), so the sum can exceed the wall time."
    );
}

//! Postgres → BigQuery (the emulator), side by side in one run: the path a user would script
//! by hand — `COPY` the table out of Postgres to a CSV file, then one load job from a
//! multipart upload — against migrate (library, verification off and on). Both end with the
//! same rows in a BigQuery table of the same columns; only migrate checkpoints every chunk,
//! writes each exactly once (staging table + `MERGE`) and, when on, verifies. Rounds are taken
//! round-robin; medians and ratios to the scripted path are printed.
//!
//! ```text
//! MIGRATE_BENCH_BIGQUERY_URL=http://127.0.0.1:9050 \
//!   cargo run --release -p migrate-benches --bin pg_to_bigquery -- --rows 200000 --runs 3
//! ```
//!
//! Needs `psql`, `curl`, GNU `time` and a running bqemulator (`scripts/services.sh`'s
//! `start_bqemulator` starts one). Postgres: `MIGRATE_BENCH_PG_URL`. dlt runs too when a
//! Python with dlt is found (`MIGRATE_BENCH_DLT_PYTHON`, default
//! `~/.cache/migrate-ci/venv/dlt/bin/python`; `benches/dlt_pg_to_bigquery.py` says how to
//! install it).

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use clap::Parser;
use migrate_backend_bigquery::client::{BqClient, BqEndpoint};
use migrate_backend_bigquery::BqSink;
use migrate_backend_postgres::PgSource;
use migrate_benches::{db_url, measure_interleaved, print_table, psql, recreate, Tool};
use migrate_core::testing::MemoryCheckpointStore;
use migrate_core::{ExecutorConfig, Migration, TableFilter};

/// Postgres to BigQuery benchmark.
#[derive(Parser)]
struct Args {
    /// Rows of the orders-like table.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Runs per tool; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// migrate's rows per chunk (each chunk is one load job and one MERGE).
    #[arg(long, default_value_t = 50_000)]
    chunk_rows: u64,
    /// migrate's parallelism (chunks in flight).
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Internal: run migrate in this process, verification on (`on`) or off (`off`).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

const SRC: &str = "bench_bq_src";
const PROJECT: &str = "test-project";
const FIELDS: &str = r#"[{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"customer_id","type":"INT64","mode":"REQUIRED"},{"name":"total","type":"NUMERIC","mode":"REQUIRED","precision":"10","scale":"2"},{"name":"placed","type":"TIMESTAMP","mode":"REQUIRED"},{"name":"status","type":"STRING","mode":"REQUIRED"}]"#;

fn endpoint() -> BqEndpoint {
    BqEndpoint::unauthenticated(
        std::env::var("MIGRATE_BENCH_BIGQUERY_URL")
            .expect("MIGRATE_BENCH_BIGQUERY_URL: the emulator's REST URL"),
        PROJECT,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Empties `dataset` (creating it when missing).
fn fresh_dataset(dataset: &str) {
    runtime().block_on(async {
        let c = BqClient::new(endpoint()).unwrap();
        c.create_dataset(dataset).await.unwrap();
        for t in c.list_tables(dataset).await.unwrap() {
            c.delete_table(dataset, &t).await.unwrap();
        }
    });
}

/// The Python that has dlt installed (`benches/dlt_pg_to_bigquery.py` says how), if any.
fn dlt_python() -> Option<String> {
    let python = std::env::var("MIGRATE_BENCH_DLT_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/migrate-ci/venv/dlt/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = Command::new(&python)
        .args(["-c", "import dlt"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// The migrate side, in this process.
fn worker(verify: bool, chunk_rows: u64, parallelism: usize) {
    runtime().block_on(async {
        let mut config = ExecutorConfig {
            migration: "bench_bq".into(),
            tables: TableFilter {
                include: vec!["public.orders".into()],
                ..Default::default()
            },
            parallelism,
            chunk_rows,
            ..Default::default()
        };
        if !verify {
            config.verify.checksums = false;
            config.verify.sample_size = 0;
        }
        let dataset = if verify {
            "bench_migrate_on"
        } else {
            "bench_migrate_off"
        };
        let report = Migration::new(
            Arc::new(PgSource::new(&db_url(SRC)).unwrap()),
            Arc::new(BqSink::new(endpoint(), dataset).unwrap()),
            Arc::new(MemoryCheckpointStore::new()),
        )
        .with_config(config)
        .run()
        .await
        .unwrap();
        assert!(report.succeeded(), "{}", report.to_markdown());
    });
}

/// The scripted path: `\copy` to CSV, then one load job from a multipart upload (curl).
fn scripted(csv: &str) -> Command {
    let job = format!(
        r#"{{"configuration":{{"load":{{"destinationTable":{{"projectId":"{PROJECT}","datasetId":"bench_scripted","tableId":"orders"}},"sourceFormat":"CSV","skipLeadingRows":1,"schema":{{"fields":{FIELDS}}},"createDisposition":"CREATE_IF_NEEDED","writeDisposition":"WRITE_TRUNCATE"}}}}}}"#
    );
    let rest = endpoint().rest;
    let script = format!(
        "set -e; psql '{src}' -qX -c \"\\copy (SELECT id, customer_id, total, to_char(placed AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', status FROM orders) TO '{csv}' CSV HEADER\"; \
         printf '%s' '{job}' > {csv}.job; \
         curl -sf -o /dev/null -X POST '{rest}/upload/bigquery/v2/projects/{PROJECT}/jobs?uploadType=multipart' \
           -F 'metadata=<{csv}.job;type=application/json' -F 'file=@{csv};type=application/octet-stream' \
           -H 'Content-Type: multipart/related'",
        src = db_url(SRC)
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script]);
    c
}

fn main() {
    let args = Args::parse();
    if let Some(w) = &args.worker {
        worker(w == "on", args.chunk_rows, args.parallelism);
        return;
    }
    eprintln!("generating {} orders …", args.rows);
    recreate(SRC);
    psql(
        &db_url(SRC),
        &format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total numeric(10,2) NOT NULL,
                                  placed timestamptz NOT NULL, status text NOT NULL);
             INSERT INTO orders SELECT g, 1 + g % 5000, (g % 100000) / 100.0,
                    TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * interval '1 second',
                    (ARRAY['new', 'paid', 'shipped'])[1 + g % 3]
               FROM generate_series(1, {}) g;
             ANALYZE orders;",
            args.rows
        ),
    );
    let bytes: u64 = {
        let out = Command::new("psql")
            .args([&db_url(SRC), "-AtX", "-c", "SELECT pg_table_size('orders')"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let exe = std::env::current_exe().unwrap();
    let csv = std::env::temp_dir()
        .join("bench-bq-orders.csv")
        .display()
        .to_string();
    let mut tools = vec![
        Tool {
            name: "psql \\copy to CSV, then one load job (scripted)".into(),
            prepare: Box::new(|| fresh_dataset("bench_scripted")),
            command: Box::new(|| scripted(&csv)),
        },
        Tool {
            name: format!(
                "migrate (p={}, {} rows a chunk, verification off)",
                args.parallelism, args.chunk_rows
            ),
            prepare: Box::new(|| fresh_dataset("bench_migrate_off")),
            command: Box::new(|| {
                let mut c = Command::new(&exe);
                c.args([
                    "--worker",
                    "off",
                    "--chunk-rows",
                    &args.chunk_rows.to_string(),
                    "--parallelism",
                    &args.parallelism.to_string(),
                ]);
                c
            }),
        },
        Tool {
            name: format!(
                "migrate (p={}, {} rows a chunk, verification on)",
                args.parallelism, args.chunk_rows
            ),
            prepare: Box::new(|| fresh_dataset("bench_migrate_on")),
            command: Box::new(|| {
                let mut c = Command::new(&exe);
                c.args([
                    "--worker",
                    "on",
                    "--chunk-rows",
                    &args.chunk_rows.to_string(),
                    "--parallelism",
                    &args.parallelism.to_string(),
                ]);
                c
            }),
        },
    ];
    match dlt_python() {
        Some(python) => tools.push(Tool {
            name: "dlt 1.31 (sql_table, pyarrow, parquet load job)".into(),
            prepare: Box::new(|| fresh_dataset("bench_dlt")),
            command: Box::new(move || {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dlt_pg_to_bigquery.py");
                let mut c = Command::new(&python);
                c.args([script, "--pg-url", &db_url(SRC), "--endpoint", &endpoint().rest])
                    .args(["--project", PROJECT, "--dataset", "bench_dlt"]);
                c
            }),
        }),
        None => eprintln!(
            "dlt not measured: no Python with dlt (set MIGRATE_BENCH_DLT_PYTHON; benches/dlt_pg_to_bigquery.py says how to install it)"
        ),
    }
    let with_dlt = tools.len() == 4;
    let medians = measure_interleaved(args.runs, &tools);
    // Each side must have landed every row.
    runtime().block_on(async {
        let c = BqClient::new(endpoint()).unwrap();
        let mut datasets = vec!["bench_scripted", "bench_migrate_off", "bench_migrate_on"];
        if with_dlt {
            datasets.push("bench_dlt");
        }
        for d in datasets {
            let r = c
                .query(&format!("SELECT COUNT(*) FROM `{PROJECT}`.`{d}`.`orders`"))
                .await
                .unwrap();
            let n: u64 = r.rows[0][0].as_str().unwrap().parse().unwrap();
            println!("{d}: {n} rows (of {})", args.rows);
            assert_eq!(n, args.rows, "{d} holds every row");
        }
    });
    let results: Vec<(String, Option<(f64, f64)>)> =
        tools.iter().map(|t| t.name.clone()).zip(medians).collect();
    print_table(args.runs, args.rows, bytes, &results);
    println!(
        "\nEvery side ends with the {} rows in a table of the same five columns. The scripted path: \
         one CSV export and one load job, nothing declared, nothing checked. migrate: each chunk \
         loaded into a staging table and MERGEd into the target (exactly once), a checkpoint per \
         chunk, the primary key declared (NOT ENFORCED); \"verification on\" also compares every \
         chunk's checksum computed inside BigQuery and a 100-row sample. dlt: one Arrow extract, \
         one Parquet file, one load job, its own _dlt_* state tables, no verification.",
        args.rows
    );
}

//! Postgres → Snowflake (fakesnow), side by side in one run: the path a user would script by
//! hand — `\copy` the table out of Postgres to a gzipped CSV file, `PUT` it to the table's
//! stage, `COPY INTO` the table (`benches/scripted_pg_to_snowflake.py`, with Snowflake's own
//! Python connector) — against migrate (library, verification off and on) and dlt. Every side
//! ends with the same rows in a table of the same five columns; only migrate checkpoints every
//! chunk, writes each exactly once (one `MERGE` per chunk) and, when on, verifies. Rounds are
//! taken round-robin; medians and ratios to the scripted path are printed.
//!
//! ```text
//! MIGRATE_BENCH_SNOWFLAKE_URL=http://127.0.0.1:8085 \
//!   cargo run --release -p migrate-benches --bin pg_to_snowflake -- --rows 200000 --runs 3
//! ```
//!
//! Needs `psql`, GNU `time` and a running fakesnow (`scripts/services.sh`'s `start_fakesnow`
//! starts one; its venv's Python, with `snowflake-connector-python`, runs the scripted side:
//! `MIGRATE_BENCH_SF_PYTHON`, default `~/.cache/migrate-ci/venv/fakesnow/bin/python`).
//! Postgres: `MIGRATE_BENCH_PG_URL`. dlt runs too when a Python with dlt is found
//! (`MIGRATE_BENCH_DLT_SF_PYTHON`, default `~/.cache/migrate-ci/venv/dlt-snowflake/bin/python`;
//! `benches/dlt_pg_to_snowflake.py` says how to install it).

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use clap::Parser;
use migrate_backend_postgres::PgSource;
use migrate_backend_snowflake::{Load, SfClient, SfEndpoint, SfSink};
use migrate_benches::{db_url, measure_interleaved, print_table, psql, recreate, Tool};
use migrate_core::testing::MemoryCheckpointStore;
use migrate_core::{ExecutorConfig, Migration, TableFilter, Value};

/// Postgres to Snowflake benchmark.
#[derive(Parser)]
struct Args {
    /// Rows of the orders-like table.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Runs per tool; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// migrate's rows per chunk (each chunk: one bound JSON text staged, one MERGE).
    #[arg(long, default_value_t = 50_000)]
    chunk_rows: u64,
    /// migrate's parallelism (chunks in flight).
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Internal: run migrate in this process, verification on (`on`) or off (`off`), or off
    /// and every chunk through the stage (`stage`).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

const SRC: &str = "bench_sf_src";
const DATABASE: &str = "BENCH_SF";

/// `host`, `port` of the emulator.
fn emulator() -> (String, String) {
    let url = std::env::var("MIGRATE_BENCH_SNOWFLAKE_URL")
        .expect("MIGRATE_BENCH_SNOWFLAKE_URL: the emulator's URL (http://HOST:PORT)");
    let (host, port) = url
        .trim_start_matches("http://")
        .split_once(':')
        .expect("http://HOST:PORT");
    (host.to_string(), port.trim_end_matches('/').to_string())
}

fn endpoint(schema: &str) -> SfEndpoint {
    let (host, port) = emulator();
    SfEndpoint::from_url(&format!(
        "snowflake://bench:bench@test/{DATABASE}/{schema}?host={host}&port={port}&protocol=http"
    ))
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Empties `schema` (creating it when missing).
fn fresh_schema(schema: &str) {
    runtime().block_on(async {
        let s = SfClient::new(endpoint(schema))
            .unwrap()
            .session()
            .await
            .unwrap();
        s.query(
            &format!("DROP SCHEMA IF EXISTS \"{DATABASE}\".\"{schema}\" CASCADE"),
            &[],
        )
        .await
        .unwrap();
        s.query(&format!("CREATE SCHEMA \"{DATABASE}\".\"{schema}\""), &[])
            .await
            .unwrap();
        s.close().await;
    });
}

/// The Python in `var` (or at `default` under the home directory) if it can import `module`.
fn python_with(var: &str, default: &str, module: &str) -> Option<String> {
    let python = std::env::var(var)
        .unwrap_or_else(|_| format!("{}/{default}", std::env::var("HOME").unwrap_or_default()));
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// The migrate side, in this process.
fn worker(mode: &str, chunk_rows: u64, parallelism: usize) {
    let verify = mode == "on";
    runtime().block_on(async {
        let mut config = ExecutorConfig {
            migration: "bench_sf".into(),
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
        let (schema, load) = match mode {
            "on" => ("MIGRATE_ON", Load::Bind),
            "stage" => ("MIGRATE_STAGE", Load::Stage),
            _ => ("MIGRATE_OFF", Load::Bind),
        };
        let report = Migration::new(
            Arc::new(PgSource::new(&db_url(SRC)).unwrap()),
            Arc::new(SfSink::new(endpoint(schema)).unwrap().with_load(load)),
            Arc::new(MemoryCheckpointStore::new()),
        )
        .with_config(config)
        .run()
        .await
        .unwrap();
        assert!(report.succeeded(), "{}", report.to_markdown());
    });
}

/// A Python script of `benches/` against the emulator, writing into `schema`.
fn python_script(python: &str, script: &str, schema: &str) -> Command {
    let (host, port) = emulator();
    let path = format!("{}/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new(python);
    c.args([
        &path,
        "--pg-url",
        &db_url(SRC),
        "--host",
        &host,
        "--port",
        &port,
    ])
    .args(["--database", DATABASE, "--schema", schema]);
    c
}

/// Rows in `table` of `schema` (its name as the tool spelled it, any case).
fn count(schema: &str, table: &str) -> u64 {
    runtime().block_on(async {
        let s = SfClient::new(endpoint(schema))
            .unwrap()
            .session()
            .await
            .unwrap();
        let r = s
            .query(
                &format!("SELECT COUNT(*) FROM \"{DATABASE}\".\"{schema}\".{table}"),
                &[],
            )
            .await
            .unwrap();
        match &r.rows[0][0] {
            Value::Decimal(d) => d.to_string().parse().unwrap(),
            Value::Int64(n) => *n as u64,
            other => panic!("a count as {other:?}"),
        }
    })
}

fn main() {
    let args = Args::parse();
    if let Some(w) = &args.worker {
        worker(w, args.chunk_rows, args.parallelism);
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
    let scripted_python = python_with(
        "MIGRATE_BENCH_SF_PYTHON",
        ".cache/migrate-ci/venv/fakesnow/bin/python",
        "snowflake.connector",
    )
    .expect("a Python with snowflake-connector-python (MIGRATE_BENCH_SF_PYTHON)");
    let dlt = python_with(
        "MIGRATE_BENCH_DLT_SF_PYTHON",
        ".cache/migrate-ci/venv/dlt-snowflake/bin/python",
        "dlt",
    );
    let exe = std::env::current_exe().unwrap();
    let migrate = |verify: &'static str| {
        let exe = exe.clone();
        let (chunk_rows, parallelism) = (args.chunk_rows.to_string(), args.parallelism.to_string());
        move || {
            let mut c = Command::new(&exe);
            c.args(["--worker", verify, "--chunk-rows", &chunk_rows])
                .args(["--parallelism", &parallelism]);
            c
        }
    };
    let mut tools = vec![
        Tool {
            name: "psql \\copy to CSV.gz, PUT, COPY INTO (scripted)".into(),
            prepare: Box::new(|| fresh_schema("SCRIPTED")),
            command: Box::new(|| {
                python_script(&scripted_python, "scripted_pg_to_snowflake.py", "SCRIPTED")
            }),
        },
        Tool {
            name: format!(
                "migrate (p={}, {} rows a chunk, verification off)",
                args.parallelism, args.chunk_rows
            ),
            prepare: Box::new(|| fresh_schema("MIGRATE_OFF")),
            command: Box::new(migrate("off")),
        },
        Tool {
            name: format!(
                "migrate (p={}, {} rows a chunk, verification on)",
                args.parallelism, args.chunk_rows
            ),
            prepare: Box::new(|| fresh_schema("MIGRATE_ON")),
            command: Box::new(migrate("on")),
        },
        Tool {
            name: format!(
                "migrate (p={}, {} rows a chunk, through the stage, verification off)",
                args.parallelism, args.chunk_rows
            ),
            prepare: Box::new(|| fresh_schema("MIGRATE_STAGE")),
            command: Box::new(migrate("stage")),
        },
    ];
    match &dlt {
        Some(python) => tools.push(Tool {
            name: "dlt 1.31 (sql_table, pyarrow, through a stage)".into(),
            prepare: Box::new(|| fresh_schema("DLT")),
            command: Box::new(move || python_script(python, "dlt_pg_to_snowflake.py", "DLT")),
        }),
        None => eprintln!(
            "dlt not measured: no Python with dlt (set MIGRATE_BENCH_DLT_SF_PYTHON; benches/dlt_pg_to_snowflake.py says how to install it)"
        ),
    }
    let medians = measure_interleaved(args.runs, &tools);
    // Each side must have landed every row.
    let mut sides = vec![
        ("SCRIPTED", "\"ORDERS\""),
        ("MIGRATE_OFF", "\"ORDERS\""),
        ("MIGRATE_ON", "\"ORDERS\""),
        ("MIGRATE_STAGE", "\"ORDERS\""),
    ];
    if dlt.is_some() {
        sides.push(("DLT", "orders"));
    }
    for (schema, table) in sides {
        let n = count(schema, table);
        println!("{schema}: {n} rows (of {})", args.rows);
        assert_eq!(n, args.rows, "{schema} holds every row");
    }
    let results: Vec<(String, Option<(f64, f64)>)> =
        tools.iter().map(|t| t.name.clone()).zip(medians).collect();
    print_table(args.runs, args.rows, bytes, &results);
    println!(
        "\nEvery side ends with the {} rows in a table of the same five columns (NUMBER(19,0), \
         NUMBER(19,0), NUMBER(10,2), TIMESTAMP_LTZ, VARCHAR). The scripted path: one CSV export, \
         one PUT, one COPY, the COPY's per-file counts checked, the primary key declared. migrate: \
         each chunk staged from one bound JSON text and moved by one MERGE (exactly once), a \
         checkpoint per chunk, the primary key declared (\"through the stage\": the chunk's JSON \
         gzipped, PUT, COPY INTO a VARIANT table, converted, the same MERGE); \"verification on\" also compares every \
         chunk's checksum (streamed on the emulator, which lacks MD5_NUMBER_*) and a 100-row \
         sample. dlt: one Arrow extract, Parquet through the table stage, its own _DLT_* state \
         tables, TIMESTAMP_LTZ(9), no primary key, a row count compared at the end.",
        args.rows
    );
}

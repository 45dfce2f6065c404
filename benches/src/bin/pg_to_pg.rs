//! Postgres → Postgres, side by side in one run: psql's binary COPY pipe (the practical
//! ceiling), pgcopydb, and migrate (library API) at parallelism 1 and 2, with SQLite and
//! in-memory checkpoints. Each figure is the median of `--runs` runs; ratios are to the psql
//! pipe measured in the same run.
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
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use migrate_backend_postgres::{PgConfig, PgSink, PgSinkOptions, PgSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::MemoryCheckpointStore;
use migrate_core::{CheckpointStore, ExecutorConfig, Migration, TableFilter};

/// Postgres to Postgres benchmark.
#[derive(Parser)]
struct Args {
    /// Fraction of seed 003's 13.6 M rows (0.19 ≈ the 2.6 M rows of the issue's reference).
    #[arg(long, default_value_t = 0.05)]
    scale: f64,
    /// Runs per tool; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Internal: run one migrate configuration in this process (`P|STORE|SRC|DST|STATE`).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

const TABLES: [&str; 8] = [
    "customers",
    "products",
    "orders",
    "inventory",
    "transactions",
    "preferences",
    "audit_logs",
    "user_sessions",
];

fn server() -> String {
    std::env::var("MIGRATE_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn db_url(db: &str) -> String {
    let s = server();
    let base = s.split('?').next().unwrap_or(&s).to_string();
    match base.rfind('/') {
        Some(i) => format!("{}/{db}", &base[..i]),
        None => base,
    }
}

fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([url, "-qX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "psql failed: {sql}");
}

fn recreate(db: &str) {
    psql(
        &server(),
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    psql(&server(), &format!("CREATE DATABASE {db}"));
}

/// Seed 003's eight tables with keys and foreign keys, generated inside Postgres.
fn generate(scale: f64) -> (u64, u64) {
    recreate("bench_src");
    let n = |base: f64| ((base * scale).round() as i64).max(1);
    let (c, p, o) = (n(50_000.0), n(5_000.0), n(500_000.0));
    let sql = format!(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL);
         INSERT INTO customers SELECT g, 'Customer ' || g, 'customer' || g || '@example.com', '2024-01-01'::timestamptz + g * interval '37 s' FROM generate_series(1, {c}) g;
         CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text, price numeric(10,2) NOT NULL);
         INSERT INTO products SELECT g, 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g, 1.99 + (g * 37 % 50000) / 100.0 FROM generate_series(1, {p}) g;
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, product_id bigint NOT NULL REFERENCES products,
                              quantity int NOT NULL, total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL);
         INSERT INTO orders SELECT g, 1 + g * 7 % {c}, 1 + g * 13 % {p}, 1 + g % 5, (g * 1013 % 900000) / 100.0, '2024-01-01'::timestamptz + g * interval '11 s' FROM generate_series(1, {o}) g;
         CREATE TABLE inventory (product_id bigint NOT NULL REFERENCES products, warehouse int NOT NULL, on_hand int NOT NULL, PRIMARY KEY (product_id, warehouse));
         INSERT INTO inventory SELECT 1 + (g / 5) % {p}, g % 5 + 10 * (g / (5 * {p})), g * 31 % 1000 FROM generate_series(0, {inv} - 1) g;
         CREATE TABLE transactions (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, customer_id bigint NOT NULL REFERENCES customers,
                                    amount numeric(12,2) NOT NULL, at timestamptz NOT NULL, method text);
         INSERT INTO transactions SELECT g, 1 + g % {o}, 1 + g * 3 % {c}, (g * 977 % 500000 - 2000) / 100.0, '2024-01-01'::timestamptz + g * interval '3 s',
                                         (ARRAY['card', 'wire', 'cash'])[1 + g % 3] FROM generate_series(1, {t}) g;
         CREATE TABLE preferences (customer_id bigint PRIMARY KEY REFERENCES customers, settings jsonb);
         INSERT INTO preferences SELECT g, jsonb_build_object('theme', CASE WHEN g % 2 = 0 THEN 'dark' ELSE 'light' END, 'newsletter', g % 3 = 0) FROM generate_series(1, {c}) g;
         CREATE TABLE audit_logs (id bigint PRIMARY KEY, at timestamptz NOT NULL, actor text, action text NOT NULL, detail text);
         INSERT INTO audit_logs SELECT g, '2024-01-01'::timestamptz + g * interval '1 s', 'user' || g % 97, (ARRAY['login', 'update', 'delete', 'export'])[1 + g % 4],
                                       'entity ' || g % 1000 || ' changed' FROM generate_series(1, {a}) g;
         CREATE TABLE user_sessions (id uuid PRIMARY KEY, customer_id bigint NOT NULL, started_at timestamptz NOT NULL, ip text);
         INSERT INTO user_sessions SELECT md5(g::text)::uuid, 1 + g % {c}, '2024-01-01'::timestamptz + g * interval '5 s', '10.' || g % 256 || '.' || g / 256 % 256 || '.' || g % 7
                                   FROM generate_series(1, {s}) g;",
        inv = n(25_000.0),
        t = n(2_000_000.0),
        a = n(10_000_000.0),
        s = n(1_000_000.0),
    );
    let ok = Command::new("psql")
        .args([&db_url("bench_src"), "-qX", "-v", "ON_ERROR_STOP=1"])
        .arg("-c")
        .arg(&sql)
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "generating the dataset failed");
    psql(&db_url("bench_src"), "VACUUM ANALYZE");
    let out = Command::new("psql")
        .args([
            &db_url("bench_src"),
            "-AtX",
            "-c",
            "SELECT sum(n_live_tup), sum(pg_table_size(relid)) FROM pg_stat_user_tables",
        ])
        .output()
        .expect("psql");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .split('|')
        .map(|x| x.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The target with the source's tables but no keys, indexes or constraints (what a COPY pipe
/// and pgcopydb's table-data step load into).
fn target_tables_only() {
    recreate("bench_dst");
    let dump = Command::new("pg_dump")
        .args(["--schema-only", "--section=pre-data", &db_url("bench_src")])
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    let mut child = Command::new("psql")
        .args([&db_url("bench_dst"), "-qX"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&dump.stdout)
        .expect("schema");
    assert!(child.wait().expect("psql").success());
}

/// Runs `cmd` under GNU time: (wall seconds, peak RSS in MiB).
fn timed(cmd: &mut Command) -> Option<(f64, f64)> {
    let out = std::env::temp_dir().join(format!("bench-time-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&out)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    let status = wrapped.stdout(std::process::Stdio::null()).status().ok()?;
    let text = std::fs::read_to_string(&out).ok()?;
    if !status.success() {
        eprintln!("  failed: {}", text.lines().next().unwrap_or(""));
        return None;
    }
    let mut f = text.lines().last()?.split_whitespace();
    let wall: f64 = f.next()?.parse().ok()?;
    let kib: f64 = f.next()?.parse().ok()?;
    Some((wall, kib / 1024.0))
}

fn median(mut v: Vec<(f64, f64)>) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(v[v.len() / 2])
}

fn pipe_script() -> String {
    TABLES
        .iter()
        .map(|t| {
            format!(
                "psql '{src}' -qX -c '\\copy {t} TO STDOUT (FORMAT binary)' | psql '{dst}' -qX -c '\\copy {t} FROM STDIN (FORMAT binary)'",
                src = db_url("bench_src"),
                dst = db_url("bench_dst")
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

async fn worker(spec: &str) {
    let p: Vec<&str> = spec.split('|').collect();
    let (parallelism, store_kind, src, dst, state) =
        (p[0].parse().unwrap_or(1), p[1], p[2], p[3], p[4]);
    let store: Arc<dyn CheckpointStore> = if store_kind == "sqlite" {
        Arc::new(SqliteCheckpointStore::open(state).await.expect("store"))
    } else {
        Arc::new(MemoryCheckpointStore::new())
    };
    let mut config = ExecutorConfig {
        migration: "bench".into(),
        tables: TableFilter {
            include: vec!["public.*".into()],
            exclude: vec![],
        },
        parallelism,
        chunk_rows: 250_000,
        control_poll: Duration::from_secs(1),
        ..Default::default()
    };
    // Like the pipe: no verification pass, no ANALYZE, no foreign keys built afterwards.
    config.verify.checksums = false;
    config.verify.sample_size = 0;
    let sink = PgSink::with_config(
        PgConfig::from_url(dst).expect("url"),
        PgSinkOptions {
            create_foreign_keys: false,
            analyze: false,
        },
    )
    .expect("sink");
    let report = Migration::new(
        Arc::new(PgSource::new(src).expect("source")),
        Arc::new(sink),
        store,
    )
    .with_config(config)
    .run()
    .await
    .expect("migration");
    assert!(report.succeeded(), "{}", report.to_markdown());
}

fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.worker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(worker(spec));
        return;
    }
    eprintln!("generating seed 003 at scale {} …", args.scale);
    let (rows, bytes) = generate(args.scale);
    eprintln!("{rows} rows, {:.0} MB in the source", bytes as f64 / 1e6);
    let exe = std::env::current_exe().expect("exe");
    let state = std::env::temp_dir().join("bench-state.db");
    let mut results: Vec<(String, Option<(f64, f64)>)> = Vec::new();
    let mut run = |name: &str, prepare: &dyn Fn(), cmd: &dyn Fn() -> Command| {
        let mut v = Vec::new();
        for i in 0..args.runs {
            prepare();
            let _ = std::fs::remove_file(&state);
            let _ = std::fs::remove_file(state.with_extension("db-wal"));
            if let Some(r) = timed(&mut cmd()) {
                eprintln!("  {name} run {}: {:.2} s, {:.0} MiB", i + 1, r.0, r.1);
                v.push(r);
            }
        }
        results.push((name.to_string(), median(v)));
    };
    run("psql binary COPY pipe (p=1)", &target_tables_only, &|| {
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", &pipe_script()]);
        c
    });
    let have_pgcopydb = Command::new("pgcopydb").arg("--version").output().is_ok();
    for jobs in [1, 2] {
        if have_pgcopydb {
            run(
                &format!("pgcopydb copy table-data (jobs={jobs})"),
                &target_tables_only,
                &|| {
                    let dir = std::env::temp_dir().join("bench-pgcopydb");
                    let _ = std::fs::remove_dir_all(&dir);
                    let mut c = Command::new("pgcopydb");
                    c.args([
                        "copy",
                        "table-data",
                        "--source",
                        &db_url("bench_src"),
                        "--target",
                        &db_url("bench_dst"),
                        "--table-jobs",
                        &jobs.to_string(),
                        "--dir",
                    ])
                    .arg(&dir);
                    c
                },
            );
        }
        for store in ["sqlite", "memory"] {
            if jobs == 2 && store == "memory" {
                continue;
            }
            run(
                &format!("migrate (p={jobs}, {store} checkpoints)"),
                &|| recreate("bench_dst"),
                &|| {
                    let mut c = Command::new(&exe);
                    c.arg("--worker").arg(format!(
                        "{jobs}|{store}|{}|{}|{}",
                        db_url("bench_src"),
                        db_url("bench_dst"),
                        state.display()
                    ));
                    c
                },
            );
        }
    }
    let pipe = results.first().and_then(|r| r.1).map(|r| r.0);
    println!(
        "\n| tool | wall s (median of {}) | rows/s | MB/s | peak RSS MiB | vs psql pipe |",
        args.runs
    );
    println!("|------|------|--------|------|------|------|");
    for (name, r) in &results {
        match r {
            Some((wall, rss)) => println!(
                "| {name} | {wall:.2} | {:.0} | {:.1} | {rss:.0} | {} |",
                rows as f64 / wall,
                bytes as f64 / 1e6 / wall,
                pipe.map_or("-".into(), |p| format!("{:.2}x", wall / p))
            ),
            None => println!("| {name} | failed | | | | |"),
        }
    }
    if !have_pgcopydb {
        println!("\npgcopydb not installed (benches/run.sh installs Debian's package)");
    }
}

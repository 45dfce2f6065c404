//! Shared parts of the benchmarks: the server, databases, dataset generators and timing under
//! GNU `time` (wall seconds and peak RSS of a whole process tree's largest member).

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

/// The sample e-commerce dataset's tables, parents first.
pub const TABLES: [&str; 8] = [
    "customers",
    "products",
    "orders",
    "inventory",
    "transactions",
    "preferences",
    "audit_logs",
    "user_sessions",
];

/// The server the benchmarks use: `MIGRATE_BENCH_PG_URL` or the local one.
pub fn server() -> String {
    std::env::var("MIGRATE_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The server's URL with database `db`.
pub fn db_url(db: &str) -> String {
    let s = server();
    let base = s.split('?').next().unwrap_or(&s).to_string();
    match base.rfind('/') {
        Some(i) => format!("{}/{db}", &base[..i]),
        None => base,
    }
}

/// Runs `sql` through psql, panicking when it fails.
pub fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([url, "-qX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "psql failed: {sql}");
}

/// Drops and creates database `db`.
pub fn recreate(db: &str) {
    psql(
        &server(),
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    psql(&server(), &format!("CREATE DATABASE {db}"));
}

/// The sample e-commerce dataset's eight tables with primary keys and foreign keys, generated
/// inside Postgres in database `db`; returns (rows, bytes). See [`generate_indexed`] for the
/// same data with unique constraints and secondary indexes as well.
pub fn generate(db: &str, scale: f64) -> (u64, u64) {
    generate_dataset(db, scale, false)
}

/// The unique constraints and secondary indexes [`generate_indexed`] adds to the sample
/// dataset, so that a whole-schema copy has realistic post-data work (the generated emails and
/// SKUs are unique).
pub const SECONDARY_SQL: &str =
    "ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE (email);
     ALTER TABLE products ADD CONSTRAINT products_sku_key UNIQUE (sku);
     CREATE INDEX orders_customer_id_idx ON orders (customer_id);
     CREATE INDEX orders_product_id_idx ON orders (product_id);
     CREATE INDEX transactions_order_id_idx ON transactions (order_id);
     CREATE INDEX transactions_customer_id_idx ON transactions (customer_id);
     CREATE INDEX audit_logs_at_idx ON audit_logs (at);
     CREATE INDEX user_sessions_customer_id_idx ON user_sessions (customer_id);";

/// The sample dataset of [`generate`] (same rows) with, besides every table's primary key and
/// foreign keys, the unique constraints and secondary indexes of [`SECONDARY_SQL`]; returns
/// (rows, bytes of table data, indexes not counted).
pub fn generate_indexed(db: &str, scale: f64) -> (u64, u64) {
    generate_dataset(db, scale, true)
}

fn generate_dataset(db: &str, scale: f64, indexed: bool) -> (u64, u64) {
    recreate(db);
    let n = |base: f64| ((base * scale).round() as i64).max(1);
    let (c, p, o) = (n(50_000.0), n(5_000.0), n(500_000.0));
    let sql = format!(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL);
         INSERT INTO customers SELECT g, 'Customer ' || g, 'customer' || g || '@example.com', '2024-01-01'::timestamptz + g * interval '37 s' FROM generate_series(1, {c}) g;
         CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text, price numeric(10,2) NOT NULL);
         INSERT INTO products SELECT g, 'SKU-' || lpad(g::text, greatest(6, length(g::text)), '0'), 'Product ' || g, 1.99 + (g * 37 % 50000) / 100.0 FROM generate_series(1, {p}) g;
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
                                   FROM generate_series(1, {s}) g;
         {secondary}",
        inv = n(25_000.0),
        t = n(2_000_000.0),
        a = n(10_000_000.0),
        s = n(1_000_000.0),
        secondary = if indexed { SECONDARY_SQL } else { "" },
    );
    let ok = Command::new("psql")
        .args([&db_url(db), "-qX", "-v", "ON_ERROR_STOP=1"])
        .arg("-c")
        .arg(&sql)
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "generating the dataset failed");
    psql(&db_url(db), "VACUUM ANALYZE");
    let out = Command::new("psql")
        .args([
            &db_url(db),
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
pub fn target_tables_only(src: &str, dst: &str) {
    recreate(dst);
    let dump = Command::new("pg_dump")
        .args(["--schema-only", "--section=pre-data", &db_url(src)])
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    let mut child = Command::new("psql")
        .args([&db_url(dst), "-qX"])
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
pub fn timed(cmd: &mut Command) -> Option<(f64, f64)> {
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

/// The run with the median wall time.
pub fn median(mut v: Vec<(f64, f64)>) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(v[v.len() / 2])
}

/// psql's binary COPY pipe for `tables`, from database `src` into `dst`, as one shell command.
pub fn pipe_script(src: &str, dst: &str, tables: &[&str]) -> String {
    tables
        .iter()
        .map(|t| {
            format!(
                "psql '{src}' -qX -c '\\copy {t} TO STDOUT (FORMAT binary)' | psql '{dst}' -qX -c '\\copy {t} FROM STDIN (FORMAT binary)'",
                src = db_url(src),
                dst = db_url(dst)
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// One migrate run as the benchmarks start it, in a child process of its own (so GNU `time`
/// measures its peak RSS alone): encoded as the `--worker` argument of the bench binaries.
#[derive(Debug, Clone)]
pub struct MigrateRun {
    /// Chunks in flight.
    pub parallelism: usize,
    /// `sqlite` or `memory` checkpoints.
    pub store: String,
    /// Source database name.
    pub src: String,
    /// Target database name.
    pub dst: String,
    /// SQLite state file.
    pub state: String,
    /// Memory budget in bytes (0: the default).
    pub memory_budget: u64,
    /// Verification as the library's defaults have it (`ExecutorConfig::verify` untouched);
    /// false turns it off (no checksums, no sample).
    pub verify: bool,
    /// The sink creates the source's foreign keys (`PgSinkOptions::create_foreign_keys`).
    pub foreign_keys: bool,
    /// The sink ANALYZEs each table once loaded (`PgSinkOptions::analyze`).
    pub analyze: bool,
    /// Where the worker writes its `MigrationReport` as JSON (empty: nowhere).
    pub report: String,
}

impl MigrateRun {
    /// A run as `memory` and `scaling` take it: like the psql pipe, without the verification
    /// pass, ANALYZE and foreign keys, and no report written.
    pub fn lean(parallelism: usize, src: &str, dst: &str, state: &str) -> Self {
        MigrateRun {
            parallelism,
            store: "sqlite".into(),
            src: src.into(),
            dst: dst.into(),
            state: state.into(),
            memory_budget: 0,
            verify: false,
            foreign_keys: false,
            analyze: false,
            report: String::new(),
        }
    }

    /// The `--worker` argument.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.parallelism,
            self.store,
            self.src,
            self.dst,
            self.state,
            self.memory_budget,
            self.verify,
            self.foreign_keys,
            self.analyze,
            self.report
        )
    }

    /// Parses [`Self::encode`]'s output.
    pub fn decode(spec: &str) -> Self {
        let p: Vec<&str> = spec.split('|').collect();
        assert_eq!(p.len(), 10, "bad worker spec {spec}");
        MigrateRun {
            parallelism: p[0].parse().expect("parallelism"),
            store: p[1].into(),
            src: p[2].into(),
            dst: p[3].into(),
            state: p[4].into(),
            memory_budget: p[5].parse().expect("budget"),
            verify: p[6].parse().expect("verify"),
            foreign_keys: p[7].parse().expect("foreign keys"),
            analyze: p[8].parse().expect("analyze"),
            report: p[9].into(),
        }
    }

    /// `exe --worker <spec>`, for [`timed`].
    pub fn command(&self, exe: &std::path::Path) -> Command {
        let mut c = Command::new(exe);
        c.arg("--worker").arg(self.encode());
        c
    }

    /// Runs the migration in this process (the `--worker` side): verification, foreign keys
    /// and ANALYZE as the fields say, the rest of the sink's options at their defaults (keys,
    /// unique constraints and indexes of the tables it creates built after the data), and the
    /// report written as JSON when asked — before a failed run panics, so it can be read.
    pub fn run(&self) {
        use migrate_backend_postgres::{PgConfig, PgSink, PgSinkOptions, PgSource};
        use migrate_checkpoint_sqlite::SqliteCheckpointStore;
        use migrate_core::testing::MemoryCheckpointStore;
        use migrate_core::{CheckpointStore, ExecutorConfig, Migration, TableFilter};
        use std::sync::Arc;

        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store: Arc<dyn CheckpointStore> = if self.store == "sqlite" {
                Arc::new(
                    SqliteCheckpointStore::open(&self.state)
                        .await
                        .expect("store"),
                )
            } else {
                Arc::new(MemoryCheckpointStore::new())
            };
            let mut config = ExecutorConfig {
                migration: "bench".into(),
                tables: TableFilter {
                    include: vec!["public.*".into()],
                    exclude: vec![],
                    ..Default::default()
                },
                parallelism: self.parallelism,
                chunk_rows: 250_000,
                control_poll: std::time::Duration::from_secs(1),
                ..Default::default()
            };
            if self.memory_budget > 0 {
                config.memory_budget = self.memory_budget;
            }
            if !self.verify {
                config.verify.checksums = false;
                config.verify.sample_size = 0;
            }
            let sink = PgSink::with_config(
                PgConfig::from_url(&db_url(&self.dst)).expect("url"),
                PgSinkOptions {
                    create_foreign_keys: self.foreign_keys,
                    analyze: self.analyze,
                    // As the CLI does by default: as many index builds at once as chunks.
                    index_jobs: self.parallelism,
                    ..Default::default()
                },
            )
            .expect("sink");
            let source = PgSource::new(&db_url(&self.src)).expect("source");
            let report = Migration::new(Arc::new(source), Arc::new(sink), store)
                .with_config(config)
                .run()
                .await
                .expect("migration");
            if !self.report.is_empty() {
                let json = serde_json::to_string(&report).expect("report as JSON");
                std::fs::write(&self.report, json).expect("writing the report");
            }
            assert!(report.succeeded(), "{}", report.to_markdown());
        });
    }
}

/// Prints the side-by-side table: each tool's median wall time, rows/s, MB/s, peak RSS and
/// ratio to the reference (the first row).
pub fn print_table(runs: usize, rows: u64, bytes: u64, results: &[(String, Option<(f64, f64)>)]) {
    let reference = results.first().and_then(|r| r.1).map(|r| r.0);
    let ref_name = results.first().map_or("", |r| r.0.as_str());
    println!(
        "\n| tool | wall s (median of {runs}) | rows/s | MB/s | peak RSS MiB | vs {ref_name} |"
    );
    println!("|------|------|--------|------|------|------|");
    for (name, r) in results {
        match r {
            Some((wall, rss)) => println!(
                "| {name} | {wall:.2} | {:.0} | {:.1} | {rss:.0} | {} |",
                rows as f64 / wall,
                bytes as f64 / 1e6 / wall,
                reference.map_or("-".into(), |p| format!("{:.2}x", wall / p))
            ),
            None => println!("| {name} | failed | | | | |"),
        }
    }
}

/// Runs `cmd()` `runs` times (after `prepare()` each time) and returns the median.
pub fn measure(
    name: &str,
    runs: usize,
    prepare: &dyn Fn(),
    cmd: &dyn Fn() -> Command,
) -> Option<(f64, f64)> {
    let tool = Tool {
        name: name.into(),
        prepare: Box::new(prepare),
        command: Box::new(cmd),
    };
    measure_interleaved(runs, &[tool]).pop().flatten()
}

/// One tool of a side-by-side comparison: its row name, what resets the target before each run,
/// and the command to time.
pub struct Tool<'a> {
    /// Row name in the printed table.
    pub name: String,
    /// Runs before each timed run (untimed).
    pub prepare: Box<dyn Fn() + 'a>,
    /// The timed command.
    pub command: Box<dyn Fn() -> Command + 'a>,
}

/// Runs every tool `runs` times, **round-robin** (one run of each tool per round), and returns
/// each tool's median in `tools`' order. These machines drift by tens of percent over minutes;
/// running each tool's repetitions back to back let that drift land on one tool and not
/// another, while interleaving spreads it over all of them, so the ratios hold.
pub fn measure_interleaved(runs: usize, tools: &[Tool<'_>]) -> Vec<Option<(f64, f64)>> {
    measure_rounds(runs, tools, &|_, _, _| {})
        .into_iter()
        .map(|rounds| median(rounds.into_iter().flatten().collect()))
        .collect()
}

/// [`measure_interleaved`]'s rounds as they were: per tool, per round, (wall s, peak RSS MiB)
/// or `None` for a failed run. `after(tool, round, result)` runs (untimed) right after each
/// timed run, before the next tool's `prepare`: the place to look at what the run left behind.
pub fn measure_rounds(
    runs: usize,
    tools: &[Tool<'_>],
    after: &dyn Fn(usize, usize, Option<(f64, f64)>),
) -> Vec<Vec<Option<(f64, f64)>>> {
    let mut all: Vec<Vec<Option<(f64, f64)>>> = tools.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, (tool, got)) in tools.iter().zip(all.iter_mut()).enumerate() {
            (tool.prepare)();
            let r = timed(&mut (tool.command)());
            if let Some(r) = r {
                eprintln!(
                    "  {} run {}: {:.2} s, {:.0} MiB",
                    tool.name,
                    round + 1,
                    r.0,
                    r.1
                );
            }
            after(i, round, r);
            got.push(r);
        }
    }
    all
}

/// The median of `v` (of an even count, the mean of the two middle values; use an odd number
/// of runs to compare against a run that happened).
pub fn median_f64(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(match v.len() % 2 {
        1 => v[m],
        _ => (v[m - 1] + v[m]) / 2.0,
    })
}

/// The `ALTER TABLE … ADD CONSTRAINT … PRIMARY KEY` statements of database `src` (from
/// `pg_dump --section=post-data`), to build keys after a bare load.
pub fn primary_keys_sql(src: &str) -> String {
    let dump = Command::new("pg_dump")
        .args(["--schema-only", "--section=post-data", &db_url(src)])
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    String::from_utf8_lossy(&dump.stdout)
        .split(";\n")
        .filter(|s| s.contains("PRIMARY KEY"))
        .map(|s| format!("{};", s.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One wide table (`wide`: a key and 29 columns cycling through text, bigint, numeric,
/// timestamptz, boolean and double) of `rows` rows in database `db`; returns its size in bytes.
pub fn generate_wide(db: &str, rows: u64) -> u64 {
    recreate(db);
    let kinds = [
        ("text", "'customer ' || g || ' <c' || g || '@example.com>'"),
        ("bigint", "g * 7919"),
        ("numeric(12,2)", "(g % 100000) + (g % 100) / 100.0"),
        (
            "timestamptz",
            "'2024-01-01'::timestamptz + g * interval '1 s'",
        ),
        ("boolean", "g % 3 = 0"),
        ("double precision", "g / 7.0"),
    ];
    let (mut cols, mut exprs) = (
        vec!["id bigint PRIMARY KEY".to_string()],
        vec!["g".to_string()],
    );
    for i in 1..30 {
        let (ty, e) = kinds[(i - 1) % kinds.len()];
        cols.push(format!("c{i} {ty}"));
        exprs.push(e.to_string());
    }
    psql(
        &db_url(db),
        &format!(
            "CREATE TABLE wide ({}); INSERT INTO wide SELECT {} FROM generate_series(1::bigint, {rows}) g",
            cols.join(", "),
            exprs.join(", ")
        ),
    );
    psql(&db_url(db), "VACUUM ANALYZE wide");
    let out = Command::new("psql")
        .args([&db_url(db), "-AtX", "-c", "SELECT pg_table_size('wide')"])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `bash -o pipefail -c <pipe_script>`.
pub fn pipe_command(src: &str, dst: &str, tables: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", &pipe_script(src, dst, tables)]);
    c
}

/// psql's binary COPY pipe for `tables` with `jobs` tables piped at a time (`xargs -P`), in
/// the order given (largest first balances best), as one shell command.
pub fn pipe_script_parallel(src: &str, dst: &str, tables: &[&str], jobs: usize) -> String {
    format!(
        "printf '%s\\n' {tables} | xargs -P {jobs} -I '{{}}' bash -o pipefail -c \"psql '{src}' -qX -c '\\copy {{}} TO STDOUT (FORMAT binary)' | psql '{dst}' -qX -c '\\copy {{}} FROM STDIN (FORMAT binary)'\"",
        tables = tables.join(" "),
        src = db_url(src),
        dst = db_url(dst)
    )
}

/// `pg_dump --schema-only --section=<section> src | psql dst`, stopping at the first error, as
/// one shell command (for `bash -o pipefail`).
pub fn dump_section_script(src: &str, dst: &str, section: &str) -> String {
    format!(
        "pg_dump --schema-only --section={section} '{src}' | psql '{dst}' -qX -v ON_ERROR_STOP=1",
        src = db_url(src),
        dst = db_url(dst)
    )
}

/// The whole schema and data the way a user would without a tool, into an empty database
/// `dst`: `pg_dump --section=pre-data` (tables), psql's binary COPY pipe of `tables` (`jobs`
/// at a time), then `pg_dump --section=post-data` (primary keys, unique constraints, indexes,
/// foreign keys), then `ANALYZE` (what migrate's sink does by default: equal work). One
/// `bash -o pipefail` command.
pub fn pipe_post_data_command(src: &str, dst: &str, tables: &[&str], jobs: usize) -> Command {
    let pipe = if jobs <= 1 {
        pipe_script(src, dst, tables)
    } else {
        pipe_script_parallel(src, dst, tables, jobs)
    };
    let script = format!(
        "{} && {pipe} && {} && psql '{}' -qX -v ON_ERROR_STOP=1 -c ANALYZE",
        dump_section_script(src, dst, "pre-data"),
        dump_section_script(src, dst, "post-data"),
        db_url(dst)
    );
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", &script]);
    c
}

/// The public tables of database `db`, largest first (by `pg_table_size`).
pub fn tables_by_size(db: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([
            &db_url(db),
            "-AtX",
            "-c",
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY pg_table_size(relid) DESC, relname",
        ])
        .output()
        .expect("psql");
    assert!(out.status.success(), "listing the tables of {db} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `pgcopydb copy table-data` from `src` into `dst` with `jobs` table jobs (its work
/// directory cleared first).
pub fn pgcopydb_command(src: &str, dst: &str, jobs: usize) -> Command {
    let dir = std::env::temp_dir().join(format!("bench-pgcopydb-{dst}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Command::new("pgcopydb");
    c.args([
        "copy",
        "table-data",
        "--source",
        &db_url(src),
        "--target",
        &db_url(dst),
        "--table-jobs",
        &jobs.to_string(),
        "--dir",
    ])
    .arg(&dir);
    c
}

/// Whether pgcopydb is installed (`benches/run.sh` installs it).
pub fn have_pgcopydb() -> bool {
    Command::new("pgcopydb").arg("--version").output().is_ok()
}

/// `pgcopydb clone` from `src` into the empty database `dst`: the whole schema (pre-data,
/// data, then indexes and constraints, and its VACUUM ANALYZE), `jobs` table jobs and `jobs`
/// index jobs, its work directory cleared first. `--no-owner --no-acl --no-comments
/// --skip-extensions` leave out what the other tools do not copy either (the dataset has none
/// of them; `--skip-extensions` keeps it from touching the target server's extensions);
/// `--quiet` keeps its per-statement log off the bench's output. It takes its own snapshot of
/// the source and needs none of `--not-consistent`, `--restart` or `--resume` on a fresh
/// work directory.
pub fn pgcopydb_clone_command(src: &str, dst: &str, jobs: usize) -> Command {
    let dir = std::env::temp_dir().join(format!("bench-pgcopydb-clone-{dst}"));
    let _ = std::fs::remove_dir_all(&dir);
    let jobs = jobs.to_string();
    let mut c = Command::new("pgcopydb");
    c.args([
        "clone",
        "--source",
        &db_url(src),
        "--target",
        &db_url(dst),
        "--table-jobs",
        &jobs,
        "--index-jobs",
        &jobs,
        "--no-owner",
        "--no-acl",
        "--no-comments",
        "--skip-extensions",
        "--quiet",
        "--dir",
    ])
    .arg(&dir);
    c
}

/// Schemas a tool leaves in its target for its own bookkeeping, left out of the schema
/// comparison (`_migrate`: the sink's deferred-key state).
pub const BOOKKEEPING_SCHEMAS: [&str; 2] = ["_migrate", "pgcopydb"];

/// `pg_dump --schema-only` of database `db` (without [`BOOKKEEPING_SCHEMAS`]) as a sorted list
/// of statements: comment lines, blank lines and session `SET`s dropped, so two databases
/// holding the same objects compare equal whatever order their objects were created in (psql
/// meta-commands such as `\restrict`, whose key is random per dump, dropped too).
pub fn schema_statements(db: &str) -> Vec<String> {
    let mut cmd = Command::new("pg_dump");
    cmd.args(["--schema-only", &db_url(db)]);
    for s in BOOKKEEPING_SCHEMAS {
        cmd.arg(format!("--exclude-schema={s}"));
    }
    let out = cmd.output().expect("pg_dump");
    assert!(out.status.success(), "pg_dump --schema-only {db} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with('\\') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let mut statements: Vec<String> = kept
        .split(";\n")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| {
            !s.is_empty()
                && !s.starts_with("SET ")
                && !s.starts_with("SELECT pg_catalog.set_config")
        })
        .collect();
    statements.sort();
    statements
}

/// The first difference between the schemas of `src` and `dst` (see [`schema_statements`]),
/// `None` when they are equal.
pub fn schema_difference(src: &str, dst: &str) -> Option<String> {
    let (a, b) = (schema_statements(src), schema_statements(dst));
    let missing = a.iter().find(|s| !b.contains(s));
    let extra = b.iter().find(|s| !a.contains(s));
    match (missing, extra) {
        (None, None) if a.len() == b.len() => None,
        (None, None) => Some(format!(
            "{} statements in the source's dump, {} in the target's",
            a.len(),
            b.len()
        )),
        (Some(m), Some(e)) => Some(format!("missing in the target: `{m}`; extra: `{e}`")),
        (Some(m), None) => Some(format!("missing in the target: `{m}`")),
        (None, Some(e)) => Some(format!("extra in the target: `{e}`")),
    }
}

/// (indexes, constraints) in schema `public` of database `db`, from `pg_indexes` and
/// `pg_constraint`.
pub fn index_and_constraint_counts(db: &str) -> (u64, u64) {
    let out = Command::new("psql")
        .args([
            &db_url(db),
            "-AtX",
            "-c",
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'),
                    (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace)",
        ])
        .output()
        .expect("psql");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().split('|').map(|x| x.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

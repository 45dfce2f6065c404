//! Transforms from the configuration, end to end on Postgres: a table with 1 % bad rows
//! completes with exactly those rows rejected and reported by key (never by value — a marker
//! value in them is found in no store byte, report or output); a `max_ratio` below 1 % fails
//! the table; after the data is fixed, `migrate rejected replay` brings the target to every
//! row, and a second replay changes nothing. Mistakes in the configuration are refused with
//! file, key and line before anything is written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::path::{Path, PathBuf};

use common::{client, code, fresh_db, migrate, text};
use migrate_core::testing::service_env;

const MARKER: &str = "MARKER-7f3a9c";
const ROWS: i64 = 1000;

async fn source(admin: &str, db: &str) -> String {
    source_of(admin, db, ROWS).await
}

/// The people table with `rows` rows, every hundredth (id ≡ 7 mod 100) with an age that is
/// not a number (the marker).
async fn source_of(admin: &str, db: &str, rows: i64) -> String {
    let url = fresh_db(admin, db).await;
    client(&url)
        .await
        .batch_execute(&format!(
            "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, age text, email text);
             INSERT INTO people
               SELECT i, 'person ' || i,
                      CASE WHEN i % 100 = 7 THEN '{MARKER}' ELSE (20 + i % 50)::text END,
                      CASE WHEN i % 3 = 0 THEN NULL ELSE 'P' || i || '@Example.com' END
               FROM generate_series(1, {rows}) i;"
        ))
        .await
        .unwrap();
    url
}

/// A source (the people table), an empty target and a folder for the configuration.
async fn databases(admin: &str, src: &str, dst: &str) -> (String, String, tempfile::TempDir) {
    (
        source(admin, src).await,
        fresh_db(admin, dst).await,
        tempfile::tempdir().unwrap(),
    )
}

const STEPS: &str = r#"
[[mapping."public.people"]]
source = "id"
target = "id"
[[mapping."public.people"]]
source = "name"
target = "full_name"
required = true
[[mapping."public.people"]]
source = "age"
target = "age"
type = "integer"
[[mapping."public.people"]]
expr = "lower(email)"
target = "email"
default = "unknown"

[[transform."public.people"]]
kind = "compute"
column = "adult"
expr = "age >= 18"
"#;

fn config(dir: &Path, name: &str, src: &str, dst: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = format!(
        "[migration]\nname = \"{name}\"\n[source]\nurl = \"{src}\"\n[target]\nurl = \"{dst}\"\n[checkpoint]\nurl = \"sqlite://{}\"\n[execution]\nchunk_rows = 300\n{STEPS}{extra}",
        dir.join(format!("{name}.db")).display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// Whether any file of the SQLite store `db` in `dir` (the file, its WAL, its shared memory)
/// holds `marker`.
fn store_holds(dir: &Path, db: &str, marker: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(db))
        .any(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
        })
}

async fn count(url: &str, sql: &str) -> i64 {
    client(url).await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_rejected_by_key_limited_and_replayed() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let (src, dst, work) = databases(&admin, "migrate_t_tr_src", "migrate_t_tr_dst").await;
    let cfg = config(work.path(), "people", &src, &dst, "");

    let run = migrate(&cfg, &["run"]);
    assert_eq!(code(&run), 0, "{}", text(&run));
    assert!(!text(&run).contains(MARKER), "{}", text(&run));
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people").await,
        ROWS - 10
    );
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people WHERE email = 'unknown' OR email LIKE 'p%@example.com'").await,
        ROWS - 10,
        "the mapping's expression and default applied"
    );
    assert_eq!(
        count(
            &dst,
            "SELECT count(*) FROM public.people WHERE adult AND age >= 18"
        )
        .await,
        ROWS - 10
    );

    let report = migrate(&cfg, &["report", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(r["progress"]["failed_records"], 10, "{r}");
    assert_eq!(r["errors"]["by_type"]["validation"], 10, "{r}");
    let ids: Vec<&str> = r["errors"]["sample_errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["record_id"].as_str())
        .collect();
    assert!(ids.contains(&"(7)") && ids.contains(&"(907)"), "{ids:?}");
    assert!(!String::from_utf8_lossy(&report.stdout).contains(MARKER));

    let list = migrate(&cfg, &["rejected", "list", "--json"]);
    assert_eq!(code(&list), 0, "{}", text(&list));
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 10);
    assert!(listed
        .iter()
        .all(|e| e["rule"] == "mapping age" && e["values"].is_null()));
    assert!(!text(&list).contains(MARKER));
    assert!(
        !store_holds(work.path(), "people.db", MARKER),
        "no rejected value in the store's bytes"
    );

    // Fixed at the source: the replay writes exactly those rows, and a second one nothing.
    client(&src)
        .await
        .batch_execute(&format!(
            "UPDATE people SET age = '40' WHERE age = '{MARKER}'"
        ))
        .await
        .unwrap();
    let replay = migrate(&cfg, &["rejected", "replay", "--json"]);
    assert_eq!(code(&replay), 0, "{}", text(&replay));
    let line: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(
        (line["read"].as_u64(), line["written"].as_u64()),
        (Some(10), Some(10)),
        "{line}"
    );
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people").await,
        ROWS
    );
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people WHERE age = 40").await,
        10 + 20
    );
    let again = migrate(&cfg, &["rejected", "replay"]);
    assert_eq!(code(&again), 0, "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).trim().is_empty(),
        "{}",
        text(&again)
    );
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people").await,
        ROWS
    );
    let list = migrate(&cfg, &["rejected", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).trim().is_empty(),
        "{}",
        text(&list)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ratio_below_the_bad_rows_fails_the_table_and_values_are_kept_only_when_asked() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let (src, dst, work) = databases(&admin, "migrate_t_tr_src2", "migrate_t_tr_dst2").await;
    let cfg = config(
        work.path(),
        "strict",
        &src,
        &dst,
        "[rejects]\nmax_ratio = 0.005\nkeep_values = true\n",
    );
    let run = migrate(&cfg, &["run"]);
    assert_eq!(code(&run), 1, "{}", text(&run));
    let report = migrate(&cfg, &["report", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let reason = r["results"][0]["reason"].as_str().unwrap_or_default();
    assert_eq!(r["results"][0]["status"], "failed", "{r}");
    assert!(reason.contains("max_rejected_ratio"), "{reason}");
    // Opted in: the rejected rows' values are kept (the same search finds them), and listed.
    assert!(store_holds(work.path(), "strict.db", MARKER));
    let list = migrate(&cfg, &["rejected", "list"]);
    assert!(text(&list).contains(MARKER), "{}", text(&list));
}

#[test]
fn mistakes_in_transforms_are_named_by_file_key_and_line() {
    let work = tempfile::tempdir().unwrap();
    let cases = [
        ("[[transform.\"public.t\"]]\nkind = \"agregate\"\n", "transform.\"public.t\"[0].kind", "bad.toml: line "),
        ("[[transform.\"public.t\"]]\nkind = \"aggregate\"\n", "not a row transform", "bad.toml: line "),
        ("[[transform.\"public.t\"]]\nkind = \"convert\"\ncolumn = \"a\"\nto = \"integr\"\n", "transform.\"public.t\"[0].to", "is not a type"),
        ("[[transform.\"public.t\"]]\nkind = \"filter\"\ncondition = \"a > 1\"\ncolumn = \"b\"\n", "[0].column", "not a key of this kind of step"),
        ("[[transform.\"public.t\"]]\nkind = \"mask\"\ncolumn = \"a\"\nhow = \"hash\"\nkey_env = \"MIGRATE_T_NO_SUCH\"\n", "MIGRATE_T_NO_SUCH", "not set"),
        ("[[mapping.\"public.t\"]]\ntarget = \"x\"\n", "mapping.\"public.t\"[0].source", "either source or expr"),
        ("[rejects]\nmax_ratio = 2.0\n", "rejects", "not between 0 and 1"),
    ];
    for (extra, key, why) in cases {
        let cfg = write(work.path(), extra);
        let o = migrate(&cfg, &["plan"]);
        assert_eq!(code(&o), 2, "{extra}: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("bad.toml") && t.contains(key) && t.contains(why),
            "{extra}: {t}"
        );
    }
}

fn write(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        format!(
            "[source]\nurl = \"postgres://u@127.0.0.1:9/a\"\n[target]\nurl = \"postgres://u@127.0.0.1:9/b\"\n[checkpoint]\nurl = \"sqlite://{}\"\n\n\n{extra}",
            dir.join("bad.db").display()
        ),
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_naming_no_column_is_refused_before_anything_is_written() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let (src, dst, work) = databases(&admin, "migrate_t_tr_src3", "migrate_t_tr_dst3").await;
    let cfg = config(
        work.path(),
        "typo",
        &src,
        &dst,
        "[[transform.\"public.people\"]]\nkind = \"filter\"\ncondition = \"agee > 1\"\n",
    );
    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("typo.toml: line")
            && t.contains("transform.\"public.people\"[1]")
            && t.contains("unknown column `agee`"),
        "{t}"
    );
    assert_eq!(
        count(
            &dst,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        .await,
        0,
        "nothing written"
    );
}

/// What a target holds of `people`, as one line of figures (the same SQL in each engine).
/// (Sums cast: fakesnow renders a SUM as a float.)
const DIGEST: &str = "SELECT count(*), CAST(sum(id) AS BIGINT), CAST(sum(age) AS BIGINT), \
     count(DISTINCT email), CAST(sum(CASE WHEN adult THEN 1 ELSE 0 END) AS BIGINT), \
     max(full_name), min(email) FROM {t}";

fn digest_of(cells: Vec<String>) -> String {
    cells.join("|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_configured_chain_gives_the_same_rows_in_bigquery_and_snowflake() {
    let (Some(admin), Some(bq_rest), Some(sf_url)) = (
        service_env("MIGRATE_TEST_PG_URL"),
        service_env("MIGRATE_TEST_BIGQUERY_URL"),
        service_env("MIGRATE_TEST_SNOWFLAKE_URL"),
    ) else {
        return;
    };
    let src = source(&admin, "migrate_t_tr_src4").await;
    let work = tempfile::tempdir().unwrap();

    // Postgres, the reference.
    let pg = fresh_db(&admin, "migrate_t_tr_dst4").await;
    let pg_cfg = config(work.path(), "to_pg", &src, &pg, RULES);

    // BigQuery.
    let project =
        std::env::var("MIGRATE_TEST_BIGQUERY_PROJECT").unwrap_or_else(|_| "test-project".into());
    let dataset = format!("tr_{:08x}", fastrand::u32(..));
    let bq = migrate_backend_bigquery::client::BqClient::new(
        migrate_backend_bigquery::client::BqEndpoint::unauthenticated(
            bq_rest.clone(),
            project.clone(),
        ),
    )
    .unwrap();
    bq.create_dataset(&dataset).await.unwrap();
    let bq_target = format!("bigquery://{project}/{dataset}?endpoint={bq_rest}");
    let bq_cfg = config(work.path(), "to_bq", &src, &bq_target, RULES);

    // Snowflake.
    let (host, port) = sf_url
        .trim_start_matches("http://")
        .split_once(':')
        .unwrap();
    let database = format!("TR_{:08X}", fastrand::u32(..));
    let sf_target = format!(
        "snowflake://migrate:secret@test/{database}/PUBLIC?host={host}&port={port}&protocol=http"
    );
    let sf = migrate_backend_snowflake::SfClient::new(
        migrate_backend_snowflake::SfEndpoint::from_url(&sf_target).unwrap(),
    )
    .unwrap()
    .session()
    .await
    .unwrap();
    for sql in [
        format!("CREATE DATABASE IF NOT EXISTS \"{database}\""),
        format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"PUBLIC\""),
    ] {
        sf.query(&sql, &[]).await.unwrap();
    }
    let sf_cfg = config(work.path(), "to_sf", &src, &sf_target, RULES);

    let digests = || async {
        let row = client(&pg)
            .await
            .query_one(
                "SELECT count(*)::text, sum(id)::text, sum(age)::text, count(DISTINCT email)::text, \
                 sum(CASE WHEN adult THEN 1 ELSE 0 END)::text, max(full_name), min(email) FROM public.people",
                &[],
            )
            .await
            .unwrap();
        let pg_digest = digest_of((0..7).map(|i| row.get::<_, String>(i)).collect());
        let got = bq
            .query(&DIGEST.replace("{t}", &format!("`{dataset}.people`")))
            .await
            .unwrap();
        let bq_digest = digest_of(
            got.rows[0]
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect(),
        );
        let got = sf
            .query(
                &DIGEST.replace("{t}", &format!("\"{database}\".\"PUBLIC\".\"PEOPLE\"")),
                &[],
            )
            .await
            .unwrap();
        let sf_digest = digest_of(
            got.texts()[0]
                .iter()
                .map(|c| c.clone().unwrap_or_default())
                .collect(),
        );
        (pg_digest, bq_digest, sf_digest)
    };

    for (what, cfg) in [
        ("postgres", &pg_cfg),
        ("bigquery", &bq_cfg),
        ("snowflake", &sf_cfg),
    ] {
        let run = migrate(cfg, &["run"]);
        let out = text(&run);
        assert_eq!(code(&run), 0, "{what}: {out}");
        assert!(
            out.contains("ROW_COUNT public.people (row_count public.people): passed")
                && out.contains("COMPLETENESS public.people (completeness public.people): passed"),
            "{what}: the rules ran against the target: {out}"
        );
        let list = migrate(cfg, &["rejected", "list", "--json"]);
        assert_eq!(
            String::from_utf8_lossy(&list.stdout).lines().count(),
            10,
            "{what}"
        );
    }
    let (want, in_bq, in_sf) = digests().await;
    assert!(want.starts_with("990|"), "{want}");
    assert_eq!(in_bq, want, "BigQuery holds what Postgres holds");
    assert_eq!(in_sf, want, "Snowflake holds what Postgres holds");

    // Fixed at the source; each target's replay brings the same ten rows.
    client(&src)
        .await
        .batch_execute(&format!(
            "UPDATE people SET age = '40' WHERE age = '{MARKER}'"
        ))
        .await
        .unwrap();
    for (what, cfg) in [
        ("postgres", &pg_cfg),
        ("bigquery", &bq_cfg),
        ("snowflake", &sf_cfg),
    ] {
        let replay = migrate(cfg, &["rejected", "replay", "--json"]);
        assert_eq!(code(&replay), 0, "{what}: {}", text(&replay));
        let line: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(line["written"], 10, "{what}: {line}");
    }
    let (want, in_bq, in_sf) = digests().await;
    assert!(want.starts_with("1000|"), "{want}");
    assert_eq!(in_bq, want, "BigQuery after replay");
    assert_eq!(in_sf, want, "Snowflake after replay");
}

const RULES: &str = r#"
[[rule]]
kind = "row_count"
table = "public.people"
[[rule]]
kind = "completeness"
table = "public.people"
columns = ["email", "full_name"]
[[rule]]
name = "every source row arrived"
kind = "consistency"
table = "public.people"
aggregate = "count"
column = "id"
severity = "warning"
[[rule]]
kind = "integrity"
table = "public.people"
severity = "info"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_run_after_the_load_and_a_failed_error_rule_fails_the_run() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let (src, dst, work) = databases(&admin, "migrate_t_tr_src5", "migrate_t_tr_dst5").await;
    let cfg = config(work.path(), "ruled", &src, &dst, RULES);
    let run = migrate(&cfg, &["run"]);
    let out = text(&run);
    assert_eq!(
        code(&run),
        0,
        "a failed WARNING does not fail the run: {out}"
    );
    assert!(out.contains("[ERROR] ROW_COUNT public.people"), "{out}");
    assert!(
        out.contains("passed — target 990 rows, the run wrote 990"),
        "{out}"
    );
    assert!(
        out.contains("[WARNING] CONSISTENCY public.people (every source row arrived): FAILED"),
        "10 rejected rows never arrived: {out}"
    );
    assert!(
        out.contains("[INFO] INTEGRITY public.people") && out.contains("NOT RUN"),
        "{out}"
    );

    // A stricter rule, checked alone: it fails at ERROR, naming keys, not values.
    let strict = work.path().join("ruled-strict.toml");
    let mut body = std::fs::read_to_string(&cfg).unwrap();
    body.push_str(
        "[[rule]]\nkind = \"accuracy\"\ntable = \"public.people\"\npredicate = \"age < 60\"\n",
    );
    std::fs::write(&strict, body).unwrap();
    let v = migrate(&strict, &["validate", "--json"]);
    assert_eq!(code(&v), 1, "{}", text(&v));
    let failed: Vec<serde_json::Value> = String::from_utf8_lossy(&v.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].clone())
        .filter(|o| o["kind"] == "ACCURACY")
        .collect();
    assert_eq!(failed[0]["passed"], false, "{failed:?}");
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("200 target rows"),
        "{failed:?}"
    );
    assert_eq!(failed[0]["sample_keys"].as_array().unwrap().len(), 10);
    // A rule of a kind that does not exist: refused by file, key and line.
    std::fs::write(
        &strict,
        std::fs::read_to_string(&cfg).unwrap()
            + "[[rule]]\nkind = \"freshness\"\ntable = \"public.people\"\n",
    )
    .unwrap();
    let bad = migrate(&strict, &["validate"]);
    assert_eq!(code(&bad), 2, "{}", text(&bad));
    assert!(text(&bad).contains("rule[4].kind"), "{}", text(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transformed_run_resumes_and_records_each_rejected_row_once() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let rows = 60_000;
    let src = source_of(&admin, "migrate_t_tr_src6", rows).await;
    let dst = fresh_db(&admin, "migrate_t_tr_dst6").await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), "killed", &src, &dst, "");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "chunk_rows = 300",
            "chunk_rows = 2000\nparallelism = 2\nlease = \"1s\"",
        ),
    )
    .unwrap();
    let mut first = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a few chunks are in.
    let target = client(&dst).await;
    for _ in 0..400 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let n: i64 = match target
            .query_one("SELECT count(*) FROM public.people", &[])
            .await
        {
            Ok(r) => r.get(0),
            Err(_) => 0,
        };
        if n >= 6000 {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let partial = count(&dst, "SELECT count(*) FROM public.people").await;
    assert!(partial < rows - rows / 100, "killed midway: {partial}");

    let second = migrate(&cfg, &["run"]);
    assert_eq!(code(&second), 0, "{}", text(&second));
    assert_eq!(
        count(&dst, "SELECT count(*) FROM public.people").await,
        rows - rows / 100
    );
    let list = migrate(&cfg, &["rejected", "list", "--json"]);
    let keys: std::collections::BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        (rows / 100) as usize,
        "each rejected row recorded once"
    );
    assert_eq!(keys.len(), (rows / 100) as usize);
    let report = migrate(&cfg, &["report", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(r["progress"]["failed_records"], rows / 100);
    assert_eq!(r["verification"]["passed"], true, "{r}");
}

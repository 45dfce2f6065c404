//! `migrate schema apply|status` as an operator runs them: a dry run prints every converted
//! table and what a warehouse drops, touching nothing; `--strict` refuses what a target cannot
//! carry, naming it; the apply creates the shop fixture's 30 tables in Postgres; `status`
//! reads the store; a file without a number in its name is refused before anything is written;
//! a run SIGKILLed after its 8th table resumes where it stopped, leaving tables 1–8 alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{bin, client, code, fresh_db, text};
use migrate_core::testing::service_env;

fn shop() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrate-ddl/tests/fixtures/shop"
    )
    .to_string()
}

fn schema(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("schema")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_apply_dry_run_strict_apply_and_status() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let shop = shop();
    // Snowflake: nothing is contacted by a dry run.
    let sf = "snowflake://loader:secret@myorg-acct/DB/SHOP";
    let dry = schema(
        work.path(),
        &[
            "apply",
            "--dir",
            &shop,
            "--target",
            sf,
            "--dry-run",
            "--skip-unreadable",
        ],
    );
    assert_eq!(code(&dry), 0, "{}", text(&dry));
    let out = text(&dry);
    assert!(
        out.contains("public.orders (") && out.contains("00_foundation_tables.sql"),
        "{out}"
    );
    assert!(
        out.contains("-- dropped: check"),
        "a warehouse drops CHECKs, said per table: {out}"
    );
    assert!(out.contains("skipped CREATE VIEW"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    let strict = schema(
        work.path(),
        &[
            "apply",
            "--dir",
            &shop,
            "--target",
            sf,
            "--dry-run",
            "--strict",
            "--skip-unreadable",
        ],
    );
    assert_eq!(code(&strict), 2, "{}", text(&strict));
    assert!(
        text(&strict).contains("--strict: the target cannot carry"),
        "{}",
        text(&strict)
    );
    // Without --skip-unreadable: the statement sqlparser cannot read, by file and line.
    let unread = schema(
        work.path(),
        &["apply", "--dir", &shop, "--target", sf, "--dry-run"],
    );
    assert_eq!(code(&unread), 2);
    assert!(
        text(&unread).contains("00_foundation_tables.sql:"),
        "{}",
        text(&unread)
    );

    let url = fresh_db(&admin, "migrate_t_schema_cli").await;
    let store = format!("sqlite://{}", work.path().join("schema.db").display());
    let applied = schema(
        work.path(),
        &[
            "apply",
            "--dir",
            &shop,
            "--target",
            &url,
            "--checkpoint",
            &store,
            "--skip-unreadable",
        ],
    );
    assert_eq!(code(&applied), 0, "{}", text(&applied));
    assert!(
        text(&applied).contains("Current Status: 30 of 30 tables completed"),
        "{}",
        text(&applied)
    );
    let n = tables_in(&url).await;
    assert_eq!(n, 30);
    let status = schema(
        work.path(),
        &[
            "status",
            "--dir",
            &shop,
            "--target",
            &url,
            "--checkpoint",
            &store,
        ],
    );
    assert_eq!(code(&status), 0, "{}", text(&status));
    assert!(
        text(&status).contains("Current Status: 30 of 30 tables completed"),
        "{}",
        text(&status)
    );

    // A .sql file whose name starts with no number: refused, named, nothing written.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("01_a.sql"),
        "CREATE TABLE a (id int PRIMARY KEY);",
    )
    .unwrap();
    std::fs::write(bad.path().join("setup.sql"), "CREATE TABLE b (id int);").unwrap();
    let refused = schema(
        work.path(),
        &[
            "apply",
            "--dir",
            bad.path().to_str().unwrap(),
            "--target",
            &url,
            "--checkpoint",
            &store,
        ],
    );
    assert_eq!(code(&refused), 2);
    assert!(text(&refused).contains("setup.sql"), "{}", text(&refused));
}

/// Tables (not partitions) in `url`'s public schema.
async fn tables_in(url: &str) -> i64 {
    client(url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// `schema.table → pg_class oid` of `tables` in `url`.
async fn oids(url: &str, tables: &[String]) -> Vec<(String, u32)> {
    let c = client(url).await;
    let mut out = Vec::new();
    for t in tables {
        let (schema, name) = t.split_once('.').unwrap();
        let row = c
            .query_one(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .unwrap();
        out.push((t.clone(), row.get(0)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_apply_killed_mid_run_resumes_where_it_stopped() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let shop = shop();
    let url = fresh_db(&admin, "migrate_t_schema_kill").await;
    let store = format!("sqlite://{}", work.path().join("schema.db").display());
    let args = [
        "schema",
        "apply",
        "--dir",
        &shop,
        "--target",
        &url,
        "--checkpoint",
        &store,
        "--skip-unreadable",
        "--lease",
        "1s",
        "--json",
    ];
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        assert_ne!(v["event"], "schema.report", "the run ended before the kill");
        if v["event"] == "table.completed" {
            first.push(v["table"].as_str().unwrap().to_string());
            if first.len() == 8 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(first.len(), 8);
    let before = oids(&url, &first).await;

    let resumed = Command::new(bin())
        .args(args)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(code(&resumed), 0, "{}", text(&resumed));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&resumed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let redone: Vec<&str> = events
        .iter()
        .filter(|v| v["event"] == "table.completed")
        .filter_map(|v| v["table"].as_str())
        .filter(|t| first.iter().any(|f| f == t))
        .collect();
    assert!(redone.is_empty(), "tables 1–8 done again: {redone:?}");
    let report = events.last().unwrap();
    assert_eq!(report["event"], "schema.report");
    assert_eq!(report["completed"], 30, "{report}");
    assert_eq!(
        oids(&url, &first).await,
        before,
        "tables 1–8 untouched by the resumed run"
    );
    let n = tables_in(&url).await;
    assert_eq!(n, 30, "the store and the target agree: 30 tables");
}

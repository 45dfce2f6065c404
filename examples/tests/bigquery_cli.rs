//! The `migrate` CLI into BigQuery (the emulator): a run SIGKILLed part way and run again ends
//! with exactly the source's rows — none lost, none twice — and `migrate verify` passes, each
//! engine computing its own checksums.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, client, code, fresh_db, migrate, text};
use migrate_backend_bigquery::client::{BqClient, BqEndpoint};
use migrate_core::testing::service_env;

const SOURCE: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, opened date);
CREATE TABLE entries (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts,
                      amount numeric(12, 2) NOT NULL, at timestamptz NOT NULL, memo text);
INSERT INTO accounts SELECT i, 'account ' || i, DATE '2020-01-01' + i FROM generate_series(1, 300) i;
INSERT INTO entries
  SELECT i, 1 + i % 300, (i % 10000) / 100.0, TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * interval '1 second',
         CASE WHEN i % 4 = 0 THEN NULL ELSE 'memo ' || i END
    FROM generate_series(1, 30000) i;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_into_bigquery_resumes_to_exactly_the_source_rows() {
    let (Some(admin), Some(rest)) = (
        service_env("MIGRATE_TEST_PG_URL"),
        service_env("MIGRATE_TEST_BIGQUERY_URL"),
    ) else {
        return;
    };
    let project =
        std::env::var("MIGRATE_TEST_BIGQUERY_PROJECT").unwrap_or_else(|_| "test-project".into());
    let src = fresh_db(&admin, "migrate_cli_bq_src").await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let dataset = "migrate_cli_bq";
    let bq = BqClient::new(BqEndpoint::unauthenticated(rest.clone(), project.clone())).unwrap();
    bq.create_dataset(dataset).await.unwrap();
    for t in ["accounts", "entries", "_migrate_prepared"] {
        bq.delete_table(dataset, t).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bq.toml");
    std::fs::write(
        &config,
        format!(
            "[migration]\nname = \"to_bigquery\"\n[source]\nurl = \"{src}\"\n\
             [target]\nurl = \"bigquery://{project}/{dataset}?endpoint={rest}\"\n\
             [tables]\ninclude = [\"public.*\"]\n\
             [execution]\nparallelism = 2\nchunk_rows = 2000\nlease = \"1s\"\n"
        ),
    )
    .unwrap();

    // Killed once some chunks are in (or at the latest after 1.5 s).
    let mut first = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = |table: &'static str| {
        let bq = &bq;
        let q =
            format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM `{project}`.`{dataset}`.`{table}`");
        async move {
            match bq.query(&q).await {
                Ok(r) => r.rows[0]
                    .iter()
                    .map(|c| c.as_str().unwrap().parse::<u64>().unwrap())
                    .collect::<Vec<_>>(),
                Err(_) => vec![0, 0],
            }
        }
    };
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if count("entries").await[0] > 0 {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let partial = count("entries").await;
    assert!(
        partial[0] < 30_000,
        "the kill landed before the end: {partial:?}"
    );

    let second = migrate(&config, &["run"]);
    assert_eq!(code(&second), 0, "{}", text(&second));
    for (table, rows) in [("accounts", 300), ("entries", 30_000)] {
        assert_eq!(
            count(table).await,
            vec![rows, rows],
            "{table}: every row once"
        );
    }
    let verified = migrate(&config, &["verify"]);
    assert_eq!(code(&verified), 0, "{}", text(&verified));
    let report = migrate(&config, &["report"]);
    assert_eq!(code(&report), 0, "{}", text(&report));
}

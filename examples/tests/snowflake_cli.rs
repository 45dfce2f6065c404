//! The `migrate` CLI into Snowflake (fakesnow): a run SIGKILLed part way — mid-transaction,
//! as likely as not — and run again ends with exactly the source's rows, none lost, none twice;
//! `migrate verify` passes, and fails once a value in Snowflake is altered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, client, code, fresh_db, migrate, text};
use migrate_backend_snowflake::{SfClient, SfEndpoint, SfSession};
use migrate_core::testing::service_env;
use migrate_core::Value;

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

/// Rows, and distinct ids, in `table` of `database` (zeros while it does not exist).
async fn count(s: &SfSession, database: &str, table: &str) -> Vec<u64> {
    let q = format!(
        "SELECT COUNT(*), COUNT(DISTINCT \"ID\") FROM \"{database}\".\"PUBLIC\".\"{table}\""
    );
    match s.query(&q, &[]).await {
        Ok(r) => r.rows[0]
            .iter()
            .map(|v| match v {
                Value::Decimal(d) => d.to_string().parse().unwrap(),
                Value::Int64(n) => *n as u64,
                other => panic!("a count as {other:?}"),
            })
            .collect(),
        Err(_) => vec![0, 0],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_into_snowflake_resumes_to_exactly_the_source_rows() {
    killed_and_resumed("MIGRATE_CLI_SF", "migrate_cli_sf_src", "").await;
}

/// The same through the stage: each chunk's rows gzipped, `PUT`, `COPY`ed — a file an attempt
/// left behind never reloads into, or hides rows from, the next attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_through_the_stage_resumes_to_exactly_the_source_rows() {
    killed_and_resumed(
        "MIGRATE_CLI_SF_STAGE",
        "migrate_cli_sf_stage_src",
        "&load=stage",
    )
    .await;
}

async fn killed_and_resumed(database: &str, source_db: &str, params: &str) {
    let (Some(admin), Some(emulator)) = (
        service_env("MIGRATE_TEST_PG_URL"),
        service_env("MIGRATE_TEST_SNOWFLAKE_URL"),
    ) else {
        return;
    };
    let (host, port) = emulator
        .trim_start_matches("http://")
        .split_once(':')
        .unwrap();
    let url = format!(
        "snowflake://migrate:secret@test/{database}/PUBLIC?host={host}&port={port}&protocol=http{params}"
    );
    let src = fresh_db(&admin, source_db).await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let sf = SfClient::new(SfEndpoint::from_url(&url).unwrap())
        .unwrap()
        .session()
        .await
        .unwrap();
    sf.query(
        &format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"PUBLIC\""),
        &[],
    )
    .await
    .unwrap();
    for t in ["ENTRIES", "ACCOUNTS", "_MIGRATE_PREPARED"] {
        sf.query(
            &format!("DROP TABLE IF EXISTS \"{database}\".\"PUBLIC\".\"{t}\""),
            &[],
        )
        .await
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sf.toml");
    std::fs::write(
        &config,
        format!(
            "[migration]\nname = \"to_snowflake\"\n[source]\nurl = \"{src}\"\n\
             [target]\nurl = \"{url}\"\n\
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
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if count(&sf, database, "ENTRIES").await[0] > 0 {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let partial = count(&sf, database, "ENTRIES").await;
    assert!(
        partial[0] < 30_000,
        "the kill landed before the end: {partial:?}"
    );

    let second = migrate(&config, &["run"]);
    assert_eq!(code(&second), 0, "{}", text(&second));
    // The password never shows in what the CLI prints.
    assert!(!text(&second).contains("secret"), "{}", text(&second));
    for (table, rows) in [("ACCOUNTS", 300), ("ENTRIES", 30_000)] {
        assert_eq!(
            count(&sf, database, table).await,
            vec![rows, rows],
            "{table}: every row once"
        );
    }
    let verified = migrate(&config, &["verify"]);
    assert_eq!(code(&verified), 0, "{}", text(&verified));

    sf.query(
        &format!("UPDATE \"{database}\".\"PUBLIC\".\"ENTRIES\" SET \"MEMO\" = 'changed' WHERE \"ID\" = 17"),
        &[],
    )
    .await
    .unwrap();
    let verified = migrate(&config, &["verify"]);
    assert_ne!(code(&verified), 0, "{}", text(&verified));
}

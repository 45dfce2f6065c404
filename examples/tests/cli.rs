//! The `migrate` binary end to end against Postgres: plan, run, status during a run, verify,
//! report, rollback; SIGINT (exit 3) then run again; bad input (exit 2, nothing written).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, code, fresh_db, migrate, text, url_for};
use migrate_backend_postgres::{PgConfig, PgSink};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::{sample_dataset, service_env};
use migrate_core::{CheckpointStore, ChunkSpec, PrepareMode, PrepareOptions, Sink, VecBatchReader};

async fn load_sample(url: &str, scale: f64) {
    let sink = PgSink::new(url).unwrap();
    let data = sample_dataset("public", scale);
    for f in &data {
        sink.prepare(
            &f.table,
            &PrepareOptions {
                mode: PrepareMode::Recreate,
                ..Default::default()
            },
            &migrate_core::RunId::generate(),
        )
        .await
        .unwrap();
        let mut r = VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 5000);
        sink.write_chunk(
            &f.table,
            &ChunkSpec::whole_table(f.table.name.clone(), 0),
            &mut r,
        )
        .await
        .unwrap();
    }
    for f in &data {
        sink.finalize(&f.table).await.unwrap();
    }
}

async fn tables_in(url: &str) -> i64 {
    let c = PgConfig::from_url(url).unwrap().connect().await.unwrap();
    c.query_one(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

fn write_config(dir: &Path, src: &str, dst: &str, extra: &str) -> PathBuf {
    let p = dir.join("shop.toml");
    let text = format!(
        "[source]\nurl = \"{src}\"\n[target]\nurl = \"{dst}\"\n[checkpoint]\nurl = \"sqlite://{}\"\n[tables]\ninclude = [\"public.*\"]\n[execution]\nparallelism = 2\nchunk_rows = 2000\n{extra}",
        dir.join("state.db").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_run_status_verify_report_rollback() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_src").await;
    let dst = fresh_db(&admin, "migrate_cli_dst").await;
    load_sample(&src, 0.002).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &src, &dst, "[constraints]\nwindow = \"1h\"\n[tables.priority]\n\"public.audit_logs\" = \"deferrable\"\n");

    let o = migrate(&cfg, &["plan", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["feasible"], true);
    assert_eq!(plan["order"].as_array().unwrap().len(), 8);
    assert!(plan["deferred"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(dir.path().join("plan.md"))
        .unwrap()
        .contains("# Migration Plan"));
    assert_eq!(
        tables_in(&dst).await,
        0,
        "plan writes nothing to the target"
    );

    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("Status: COMPLETE"), "{}", text(&o));

    let o = migrate(&cfg, &["status", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "completed");
    assert_eq!(st["tables_completed"], 8);
    assert_eq!(st["chunks_done"], st["chunks_total"]);
    let o = migrate(&cfg, &["status"]);
    assert!(
        text(&o).contains("MIGRATION PROGRESS") && text(&o).contains("8 of 8 tables completed"),
        "{}",
        text(&o)
    );

    let o = migrate(&cfg, &["verify"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("verification PASSED"));

    let o = migrate(&cfg, &["report", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["status"], "completed");
    // The stored report is the run's own: its measured figures, and the later verification.
    assert!(
        r["progress"]["memory_budget_bytes"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    assert!(r["progress"]["api_calls"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["later_verification"]["passed"], true, "{r}");
    // The target changes behind the run's back: verify fails, and the report says so.
    let c = PgConfig::from_url(&dst).unwrap().connect().await.unwrap();
    c.batch_execute(
        "DELETE FROM public.audit_logs WHERE id IN (SELECT id FROM public.audit_logs LIMIT 1)",
    )
    .await
    .unwrap();
    assert_eq!(code(&migrate(&cfg, &["verify"])), 1);
    let o = migrate(&cfg, &["report"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("`migrate verify`") && text(&o).contains("FAILED"),
        "{}",
        text(&o)
    );

    let o = migrate(&cfg, &["rollback", "--yes"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("drop public.transactions"),
        "{}",
        text(&o)
    );
    assert_eq!(
        tables_in(&dst).await,
        0,
        "rollback dropped the tables the run created"
    );
    let o = migrate(&cfg, &["verify"]);
    assert_eq!(
        code(&o),
        1,
        "a missing target fails verification: {}",
        text(&o)
    );
    // The stored report follows the rollback: nothing reads as migrated or passed any more.
    let o = migrate(&cfg, &["report"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        !text(&o).contains("Result: PASSED") && text(&o).contains("`migrate verify`"),
        "{}",
        text(&o)
    );
    let store = SqliteCheckpointStore::open(dir.path().join("state.db"))
        .await
        .unwrap();
    let run = store.latest_run("shop").await.unwrap().unwrap();
    let events = store.events(&run.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "rollback.completed"),
        "rollback is in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_during_a_run_then_sigint_exits_3_and_run_again_finishes_exactly() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_int_src").await;
    let dst = fresh_db(&admin, "migrate_cli_int_dst").await;
    load_sample(&src, 0.01).await;
    let dir = tempfile::tempdir().unwrap();
    // Throttled so the run lasts several seconds.
    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "[constraints]\nbandwidth = \"4MB/s\"\n",
    );
    let child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut seen_running = false;
    while start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
        let o = migrate(&cfg, &["status", "--json"]);
        let Ok(st) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
            continue;
        };
        let done = st["chunks_done"].as_u64().unwrap_or(0);
        if st["status"] == "running" && done >= 3 && done < st["chunks_total"].as_u64().unwrap_or(0)
        {
            seen_running = true;
            break;
        }
    }
    assert!(
        seen_running,
        "status shows the run in progress from another process"
    );
    assert!(Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "SIGINT exits 3 (resumable)");
    let o = migrate(&cfg, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "cancelled", "paused then stopped cleanly");
    assert_eq!(
        st["in_progress"],
        serde_json::json!([]),
        "a stopped run processes no table"
    );
    assert!(st["eta_secs"].is_null(), "and has no ETA: {st}");
    let o = migrate(&cfg, &["status"]);
    assert!(
        text(&o).contains("Current Tables Being Processed: -"),
        "{}",
        text(&o)
    );

    let fast = write_config(dir.path(), &src, &dst, "");
    let o = migrate(&fast, &["run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("resumed"),
        "the second run continued the first: {}",
        text(&o)
    );
    let o = migrate(&fast, &["verify"]);
    assert_eq!(
        code(&o),
        0,
        "exact result after the interruption: {}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_names_the_problem_and_writes_nothing() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_bad_src").await;
    let dst = fresh_db(&admin, "migrate_cli_bad_dst").await;
    load_sample(&src, 0.0005).await;
    let host = url_for(&admin, "x");
    let host = &host[..host.len() - 2];
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing key", format!("[target]\nurl = \"{dst}\"\n"), "source"),
        ("unknown key", format!("[source]\nurl = \"{src}\"\n[target]\nurl = \"{dst}\"\n[execution]\nparalelism = 2\n"), "line 6: execution.paralelism:"),
        ("wrong type", format!("[source]\nurl = \"{src}\"\n[target]\nurl = \"{dst}\"\n[execution]\nparallelism = \"two\"\n"), "line 6: execution.parallelism:"),
        ("bad URL", format!("[source]\nurl = \"postgres://postgres@127.0.0.1:notaport/db\"\n[target]\nurl = \"{dst}\"\n"), "invalid Postgres URL"),
        ("unreachable host", format!("[source]\nurl = \"postgres://postgres@127.0.0.1:1/db\"\n[target]\nurl = \"{dst}\"\n"), "127.0.0.1:1"),
        ("unknown role", format!("[source]\nurl = \"{}\"\n[target]\nurl = \"{dst}\"\n", src.replace("postgres@", "no_such_role@")), "no_such_role"),
        ("nonexistent table", format!("[source]\nurl = \"{src}\"\n[target]\nurl = \"{dst}\"\n[tables]\ninclude = [\"public.no_such_table\"]\n"), "public.no_such_table"),
        ("unset secret", format!("[source]\nurl = \"postgres://postgres:${{MIGRATE_UNSET_SECRET}}@{}/x\"\n[target]\nurl = \"{dst}\"\n", host.trim_start_matches("postgres://").split('@').next_back().unwrap()), "MIGRATE_UNSET_SECRET"),
    ];
    for (what, toml, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("bad.toml");
        std::fs::write(
            &cfg,
            format!(
                "{toml}[checkpoint]\nurl = \"sqlite://{}\"\n",
                dir.path().join("state.db").display()
            ),
        )
        .unwrap();
        let o = migrate(&cfg, &["run"]);
        assert_eq!(code(&o), 2, "{what}: exit 2: {}", text(&o));
        assert!(
            text(&o).contains(needle),
            "{what}: the message names {needle:?}: {}",
            text(&o)
        );
        assert!(!text(&o).contains("hunter"), "no secrets");
        assert_eq!(
            tables_in(&dst).await,
            0,
            "{what}: nothing written to the target"
        );
        if dir.path().join("state.db").exists() {
            let store = SqliteCheckpointStore::open(dir.path().join("state.db"))
                .await
                .unwrap();
            assert!(
                store.latest_run("bad").await.unwrap().is_none(),
                "{what}: no run recorded"
            );
        }
    }
}

/// Issue 14, part 3: with mode = "incremental", `plan` said nothing about tables lacking the
/// cursor column and `run` named only the first. Both now name every one (exit 2, nothing
/// written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_run_name_every_table_lacking_the_cursor_column() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_cursor_src").await;
    let dst = fresh_db(&admin, "migrate_cli_cursor_dst").await;
    PgConfig::from_url(&src)
        .unwrap()
        .connect()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE public.accounts (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             CREATE TABLE public.ledger (id bigint PRIMARY KEY, amount numeric);
             CREATE TABLE public.notes (id bigint PRIMARY KEY, body text);
             INSERT INTO public.accounts VALUES (1, now());
             INSERT INTO public.ledger VALUES (1, 2.5);
             INSERT INTO public.notes VALUES (1, 'x');",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "mode = \"incremental\"\ncursor_column = \"updated_at\"\n",
    );
    for command in ["plan", "run"] {
        let o = migrate(&cfg, &[command]);
        let out = text(&o);
        assert_eq!(code(&o), 2, "{command}: exit 2: {out}");
        for table in ["public.ledger", "public.notes"] {
            assert!(
                out.contains(&format!(
                    "{table}: no column \"updated_at\" (the cursor column)"
                )),
                "{command} names {table}: {out}"
            );
        }
        assert!(!out.contains("public.accounts"), "{command}: {out}");
    }
    assert!(!dir.path().join("plan.json").exists(), "no plan written");
    assert_eq!(tables_in(&dst).await, 0, "nothing written to the target");
}

#[test]
fn init_writes_each_template_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    for t in ["standard", "incremental", "bulk", "transform"] {
        let out = dir.path().join(format!("{t}.toml"));
        let o = Command::new(bin())
            .args(["init", "--template", t, "--output"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", text(&o));
        let body = std::fs::read_to_string(&out).unwrap();
        assert!(
            body.contains("[source]") && body.contains("${SOURCE_PASSWORD}"),
            "{t}"
        );
        let again = Command::new(bin())
            .args(["init", "--template", t, "--output"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(code(&again), 2, "never overwrites: {}", text(&again));
    }
    let o = Command::new(bin())
        .args(["init", "--template", "fancy", "--output"])
        .arg(dir.path().join("x.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("fancy") && text(&o).contains("standard"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_prints_progress_events_and_the_report_as_json_lines() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_json_src").await;
    let dst = fresh_db(&admin, "migrate_cli_json_dst").await;
    load_sample(&src, 0.002).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "[constraints]\nbandwidth = \"2MB/s\"\n",
    );
    let o = migrate(&cfg, &["run", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "progress"
                && l["progress"]["rows_total"].as_u64().unwrap_or(0) > 0),
        "progress events"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "report");
    assert_eq!(last["report"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_cancel_from_another_terminal() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_ctl_src").await;
    let dst = fresh_db(&admin, "migrate_cli_ctl_dst").await;
    load_sample(&src, 0.01).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "[constraints]\nbandwidth = \"3MB/s\"\n",
    );
    // The run's own output goes to a file, shown if the test times out waiting for it.
    let run_log = dir.path().join("run.stderr");
    let child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&run_log).unwrap())
        .spawn()
        .unwrap();
    let status = |cfg: &Path| -> serde_json::Value {
        serde_json::from_slice(&migrate(cfg, &["status", "--json"]).stdout)
            .unwrap_or(serde_json::Value::Null)
    };
    let wait = |cfg: &Path, what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        let start = Instant::now();
        while !f(&status(cfg)) {
            if start.elapsed() > Duration::from_secs(120) {
                let o = migrate(cfg, &["status", "--json"]);
                let log = std::fs::read_to_string(&run_log).unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!(
                    "timed out waiting for {what}: status {} {}\nrun's stderr (tail):\n{tail}",
                    code(&o),
                    text(&o)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait(&cfg, "progress", &|s| {
        s["chunks_done"].as_u64().unwrap_or(0) >= 2
    });
    let o = migrate(&cfg, &["pause"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    wait(&cfg, "the run to pause", &|s| s["status"] == "paused");
    let before = status(&cfg)["chunks_done"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        status(&cfg)["chunks_done"].as_u64().unwrap() <= before + 2,
        "no new chunks start while paused"
    );
    let o = migrate(&cfg, &["pause"]);
    assert_eq!(code(&o), 1, "a paused run cannot be paused: {}", text(&o));
    assert!(text(&o).contains("nothing to pause"), "{}", text(&o));
    // Unpause: the same process goes on.
    let o = migrate(&cfg, &["unpause"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    wait(&cfg, "the run to go on", &|s| {
        s["status"] == "running" && s["chunks_done"].as_u64().unwrap_or(0) > before + 2
    });
    let o = migrate(&cfg, &["pause"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    wait(&cfg, "the run to pause again", &|s| s["status"] == "paused");
    let o = migrate(&cfg, &["cancel"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a run cancelled from another terminal exits 3 (resumable)"
    );
    assert_eq!(status(&cfg)["status"], "cancelled");
    // The report of a stopped run says it is resumable and unfinished, not that it failed.
    let o = migrate(&cfg, &["report"]);
    assert!(
        text(&o).contains("resumable") && !text(&o).contains("Result: FAILED"),
        "{}",
        text(&o)
    );
    let o = migrate(&cfg, &["resume"]);
    assert_eq!(code(&o), 0, "resume finishes it: {}", text(&o));
    assert_eq!(code(&migrate(&cfg, &["verify"])), 0);
    for what in ["pause", "unpause", "cancel"] {
        let o = migrate(&cfg, &[what]);
        assert_eq!(
            code(&o),
            1,
            "nothing to {what} in a completed run: {}",
            text(&o)
        );
        assert!(
            text(&o).contains(&format!("nothing to {what}")),
            "{}",
            text(&o)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_mistakes_are_named_and_output_is_plain_off_a_terminal() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_ops_src").await;
    let dst = fresh_db(&admin, "migrate_cli_ops_dst").await;
    load_sample(&src, 0.001).await;
    let dir = tempfile::tempdir().unwrap();
    // An include pattern with a typo is named, and nothing is written.
    let cfg = write_config(dir.path(), &src, &dst, "");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "include = [\"public.*\"]",
        "include = [\"public.customers\", \"public.custmers\"]",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    for cmd in [
        &["run"][..],
        &["plan", "--out", dir.path().to_str().unwrap()],
    ] {
        let o = migrate(&cfg, cmd);
        assert_eq!(code(&o), 2, "{}", text(&o));
        assert!(text(&o).contains("\"public.custmers\""), "{}", text(&o));
    }
    assert_eq!(tables_in(&dst).await, 0);
    // A window nothing fits in: every table deferred, nothing migrated, not a success.
    let cfg = write_config(dir.path(), &src, &dst, "[constraints]\nwindow = \"0s\"\n");
    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("NOTHING MIGRATED"), "{}", text(&o));
    let o = migrate(&cfg, &["plan", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("every table deferred"), "{}", text(&o));
    // With verification off, the report says it did not run — not that it passed.
    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "[verify]\nchecksums = false\nsample_size = 0\n",
    );
    let o = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("MIGRATE_LOG", "info")
        .env_remove("NO_COLOR")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("Result: NOT RUN") && !text(&o).contains("checksum match"),
        "{}",
        text(&o)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("INFO"), "logs were written: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour codes off a terminal: {stderr}"
    );
    // A plan without a window or bandwidth says so instead of inventing them, and lists no
    // follow-up for a migration it did not run.
    let o = migrate(&cfg, &["plan", "--out", dir.path().to_str().unwrap()]);
    assert!(
        text(&o).contains("no window was given")
            && text(&o).contains("assumed: no bandwidth was given")
            && !text(&o).contains("24.0 h")
            && !text(&o).contains("Follow-up Required")
            && !text(&o).contains("-0.0"),
        "{}",
        text(&o)
    );
    // init: -c names the file to write; -c and -o naming two files are refused.
    let o = Command::new(bin())
        .args(["init", "-c", "other.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(dir.path().join("other.toml").exists());
    let o = Command::new(bin())
        .args(["init", "-c", "a.toml", "-o", "b.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(!dir.path().join("a.toml").exists() && !dir.path().join("b.toml").exists());
    // --help lists the exit codes, and each command's help says what it exits with.
    let o = Command::new(bin()).arg("--help").output().unwrap();
    assert!(text(&o).contains("Exit codes:"), "{}", text(&o));
    for sub in [
        "plan", "run", "resume", "pause", "unpause", "cancel", "status", "verify", "rollback",
        "report", "init",
    ] {
        let o = Command::new(bin()).args([sub, "--help"]).output().unwrap();
        assert!(
            text(&o).to_lowercase().contains("exit"),
            "{sub} --help: {}",
            text(&o)
        );
    }
    let o = Command::new(bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("run the same command again"),
        "{}",
        text(&o)
    );
}

/// The operator's scenario from the data-safety review: a target `customers` with rows 1, 2 and
/// 999999 is refused (exit 2, named with its rows, nothing written) and shown by `plan`; merged
/// with a backup it keeps 999999; a completed migration run again is "nothing to do"; rollback
/// puts the three rows back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_the_target_are_refused_merged_rolled_back_and_a_second_run_does_nothing() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let src = fresh_db(&admin, "migrate_cli_exist_src").await;
    let dst = fresh_db(&admin, "migrate_cli_exist_dst").await;
    load_sample(&src, 0.002).await;
    load_sample(&dst, 0.002).await;
    let c = PgConfig::from_url(&dst).unwrap().connect().await.unwrap();
    c.batch_execute(
        "DROP TABLE public.transactions, public.orders, public.inventory, public.preferences,
                    public.user_sessions, public.audit_logs, public.products CASCADE;
         DELETE FROM public.customers WHERE id > 2;
         CREATE TEMP TABLE extra AS SELECT * FROM public.customers WHERE id = 1;
         UPDATE extra SET id = 999999;
         INSERT INTO public.customers SELECT * FROM extra;",
    )
    .await
    .unwrap();
    let customers = || async {
        let c = PgConfig::from_url(&dst).unwrap().connect().await.unwrap();
        let ids: Vec<i64> = c
            .query("SELECT id FROM public.customers ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &src, &dst, "");

    let o = migrate(&cfg, &["plan", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "a refused run is not ready: {}", text(&o));
    assert!(
        text(&o).contains("| public.customers |") && text(&o).contains("refuse: it holds 3 rows"),
        "{}",
        text(&o)
    );
    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("public.customers (3 rows)") && text(&o).contains("existing_rows"),
        "{}",
        text(&o)
    );
    assert_eq!(customers().await, [1, 2, 999999]);
    assert_eq!(tables_in(&dst).await, 1, "nothing was written");

    let cfg = write_config(
        dir.path(),
        &src,
        &dst,
        "[prepare]\nexisting_rows = \"merge\"\nbackup = true\n",
    );
    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let ids = customers().await;
    assert_eq!(ids.last(), Some(&999999), "the target-only row is kept");
    assert!(ids.len() > 3);

    let o = migrate(&cfg, &["run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));

    let o = migrate(&cfg, &["rollback", "--yes"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("restore public.customers from public.customers__bk_"),
        "{}",
        text(&o)
    );
    assert_eq!(customers().await, [1, 2, 999999]);
    assert_eq!(
        tables_in(&dst).await,
        1,
        "created tables and the backup are gone"
    );
}

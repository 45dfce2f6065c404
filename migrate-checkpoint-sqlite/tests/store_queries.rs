//! The store under the executor: operator queries, retention, permissions, privacy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_checkpoint_sqlite::{RetentionPolicy, SqliteCheckpointStore};
use migrate_core::executor::{ExecutorConfig, Migration};
use migrate_core::testing::{sample_dataset, Faults, MemorySink, MemorySource, Op};
use migrate_core::{CheckpointStore, ErrorKind, RunId, RunStatus, Value};

fn cfg(name: &str) -> ExecutorConfig {
    let mut c = ExecutorConfig {
        migration: name.into(),
        chunk_rows: 400,
        ..Default::default()
    };
    c.retry.jitter = false;
    c.retry.initial_delay = std::time::Duration::from_millis(1);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_queries_describe_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteCheckpointStore::open(dir.path().join("m.db"))
            .await
            .unwrap(),
    );
    let data = sample_dataset("public", 0.001);
    let sink_faults = Arc::new(Faults::new());
    sink_faults.fail_nth(Op::Write, 3, ErrorKind::Constraint);
    let source = Arc::new(MemorySource::with_fixtures(&data, Arc::new(Faults::new())));
    let sink = Arc::new(MemorySink::new(sink_faults));
    let report = Migration::new(source.clone(), sink.clone(), store.clone())
        .with_config(cfg("ops"))
        .run()
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let run = RunId(report.execution_id.clone());

    let phases = store.progress_by_phase(Some(run.clone())).await.unwrap();
    let exec = phases.iter().find(|p| p.phase == "execution").unwrap();
    assert_eq!(exec.failed, 1);
    assert_eq!(
        exec.completed + exec.failed + exec.in_progress,
        exec.operations - pending(&store, &run).await
    );
    assert_eq!(
        exec.total_records_processed,
        report.progress.processed_records
    );

    let status = store.table_status(Some(run.clone())).await.unwrap();
    let customers = status
        .iter()
        .find(|r| r.table_name == "public.customers" && r.status == "completed")
        .unwrap();
    assert_eq!(customers.records_processed, 50);
    assert_eq!(customers.completion_percentage, Some(100.0));
    assert!(customers.duration_seconds.is_some());

    let errors = store.error_analysis(Some(run.clone())).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("injected"),
        "{:?}",
        errors[0]
    );
    assert!(errors[0].operation.starts_with("chunk "));

    let perf = store.performance(Some(run.clone())).await.unwrap();
    assert!(!perf.is_empty());
    assert!(perf
        .iter()
        .all(|p| p.batch_count > 0 && p.records_per_second.unwrap_or(0.0) > 0.0));

    let todo = store.incomplete_operations(run.clone()).await.unwrap();
    assert!(todo.iter().any(|r| r.status == "failed"));
    assert!(todo.iter().all(|r| r.status != "completed"));

    // Resume from the file: finishes, and the queries then show everything completed.
    let again = Migration::new(source, sink, store.clone())
        .with_config(cfg("ops"))
        .run()
        .await
        .unwrap();
    assert!(again.succeeded(), "{}", again.to_markdown());
    assert!(store
        .incomplete_operations(run.clone())
        .await
        .unwrap()
        .is_empty());
    assert!(store.error_analysis(Some(run)).await.unwrap().is_empty());
}

async fn pending(store: &SqliteCheckpointStore, run: &RunId) -> u64 {
    store
        .chunks(run)
        .await
        .unwrap()
        .iter()
        .filter(|c| {
            c.status == migrate_core::ChunkStatus::Pending
                || c.status == migrate_core::ChunkStatus::Skipped
        })
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_completed_runs_but_never_a_resumable_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteCheckpointStore::open(dir.path().join("r.db"))
            .await
            .unwrap(),
    );
    let data = sample_dataset("public", 0.0003);
    let source = Arc::new(MemorySource::with_fixtures(&data, Arc::new(Faults::new())));
    let sink = Arc::new(MemorySink::new(Arc::new(Faults::new())));
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut c = cfg("ret");
        c.prepare.mode = migrate_core::PrepareMode::Recreate;
        c.refresh = true; // a new run each time, although the last one completed
        let r = Migration::new(source.clone(), sink.clone(), store.clone())
            .with_config(c)
            .run()
            .await
            .unwrap();
        assert!(r.succeeded());
        ids.push(RunId(r.execution_id));
    }
    // A fifth run that fails stays resumable.
    let faults = Arc::new(Faults::new());
    faults.fail_nth(Op::Write, 1, ErrorKind::Fatal);
    let failing = Arc::new(MemorySink::new(faults));
    let mut c = cfg("ret");
    c.refresh = true;
    let r = Migration::new(source.clone(), failing, store.clone())
        .with_config(c)
        .run()
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    let open = RunId(r.execution_id);

    let out = store
        .apply_retention(RetentionPolicy {
            keep_last: 2,
            expire_after: std::time::Duration::from_secs(3600),
        })
        .await
        .unwrap();
    assert_eq!(
        out.runs_pruned, 2,
        "the two oldest completed runs lose their detail"
    );
    assert!(store.chunks(&ids[0]).await.unwrap().is_empty());
    assert!(store.chunks(&ids[1]).await.unwrap().is_empty());
    assert!(!store.chunks(&ids[3]).await.unwrap().is_empty());
    assert!(
        store.run(&ids[0]).await.unwrap().is_some(),
        "run records stay"
    );
    assert!(
        !store.chunks(&open).await.unwrap().is_empty(),
        "a resumable run is never pruned"
    );
    let all = store
        .apply_retention(RetentionPolicy {
            keep_last: 10,
            expire_after: std::time::Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(
        all.runs_pruned, 2,
        "expiry removes the remaining completed runs' detail"
    );
    assert!(
        !store.chunks(&open).await.unwrap().is_empty(),
        "still not the resumable one"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_owner_only_and_holds_no_row_values() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let store = Arc::new(SqliteCheckpointStore::open(&path).await.unwrap());
    let mut data = sample_dataset("public", 0.0005);
    let secret = "SSN-987-65-4321-do-not-store";
    for f in data.iter_mut().filter(|f| f.table.name.name == "customers") {
        for r in &mut f.rows {
            r[2] = Value::Text(format!("{secret}-{}", r[0].as_i64().unwrap()));
        }
    }
    let source = Arc::new(MemorySource::with_fixtures(&data, Arc::new(Faults::new())));
    let sink = Arc::new(MemorySink::new(Arc::new(Faults::new())));
    let report = Migration::new(source, sink, store.clone())
        .with_config(cfg("priv"))
        .run()
        .await
        .unwrap();
    assert!(report.succeeded());
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&p) {
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{} is owner-only",
                p.display()
            );
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a row value",
                p.display()
            );
        }
    }
    assert!(
        !report.to_json().contains(secret),
        "the report holds no row values"
    );
}

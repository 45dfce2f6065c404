//! Three worker processes run one migration through `PgCheckpointStore`: the result is exact,
//! every chunk is completed by exactly one worker, and a worker SIGKILLed while holding a chunk
//! has that chunk taken over. (The test binary re-runs itself as the workers.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migrate_backend_postgres::{PgCheckpointStore, PgSink, PgSource};
use migrate_core::testing::sample_dataset;
use migrate_core::{
    CheckpointStore, ChunkStatus, ExecutorConfig, KeyRange, Migration, RowChecksum, RunStatus, Sink,
};

const CHILD: &str = "MIGRATE_PG_SHARED_WORKER";

fn config(worker: &str) -> ExecutorConfig {
    ExecutorConfig {
        migration: "shared".into(),
        parallelism: 1,
        chunk_rows: 800,
        lease: Duration::from_secs(2),
        control_poll: Duration::from_millis(100),
        worker_id: worker.into(),
        ..Default::default()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(args) = std::env::var(CHILD) {
        let p: Vec<&str> = args.split('|').collect();
        rt.block_on(async {
            let store = Arc::new(PgCheckpointStore::open(p[2], "migrate").await.unwrap());
            let m = Migration::new(
                Arc::new(PgSource::new(p[0]).unwrap()),
                Arc::new(PgSink::new(p[1]).unwrap()),
                store,
            );
            let report = m.with_config(config(p[3])).run().await.unwrap();
            assert!(
                report.succeeded(),
                "worker {}: {}",
                p[3],
                report.to_markdown()
            );
        });
        return;
    }
    match std::panic::catch_unwind(|| rt.block_on(three_workers())) {
        Ok(true) => println!(
            "test three_workers_share_one_migration ... ok\n\nthree_workers: 1 passed, 0 failed"
        ),
        Ok(false) => println!(
            "three_workers: 0 passed, 0 failed, 1 skipped (no server outside scripts/test)"
        ),
        Err(_) => {
            println!("test three_workers_share_one_migration ... FAILED\n\nthree_workers: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

async fn three_workers() -> bool {
    let Some(admin) = common::admin_url() else {
        return false;
    };
    let src = common::fresh_db(&admin, "migrate_t_workers_src").await;
    let dst = common::fresh_db(&admin, "migrate_t_workers_dst").await;
    let state = common::fresh_db(&admin, "migrate_t_workers_state").await;
    let data = sample_dataset("public", 0.02);
    common::load(&src, &data).await;
    let spawn = |w: &str| -> Child {
        Command::new(std::env::current_exe().unwrap())
            .env(CHILD, format!("{src}|{dst}|{state}|{w}"))
            .spawn()
            .unwrap()
    };
    let mut victim = spawn("w1");
    let mut others = vec![spawn("w2"), spawn("w3")];
    // Kill w1 while it holds a chunk: freeze it (SIGSTOP), read what it holds at that instant,
    // and only then SIGKILL it, so it cannot finish the chunk in between.
    let store = PgCheckpointStore::open(&state, "migrate").await.unwrap();
    let signal = |sig: &str, pid: u32| {
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    let held_by_w1 = |chunks: &[migrate_core::ChunkRecord]| -> Vec<(migrate_core::TableName, u32)> {
        chunks
            .iter()
            .filter(|c| c.status == ChunkStatus::Running && c.worker.as_deref() == Some("w1"))
            .map(|c| (c.table.clone(), c.index))
            .collect()
    };
    let start = Instant::now();
    let mut held = Vec::new();
    while start.elapsed() < Duration::from_secs(120) && held.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Ok(Some(run)) = store.latest_run("shared").await else {
            continue;
        };
        let chunks = store.chunks(&run.id).await.unwrap_or_default();
        let done = chunks
            .iter()
            .filter(|c| c.status == ChunkStatus::Completed)
            .count();
        if done < 10 || held_by_w1(&chunks).is_empty() {
            continue;
        }
        signal("-STOP", victim.id());
        // A statement w1 sent just before it froze (completing its chunk, say) still runs on
        // the server: let it land before reading what w1 holds.
        tokio::time::sleep(Duration::from_millis(300)).await;
        held = held_by_w1(&store.chunks(&run.id).await.unwrap());
        if held.is_empty() {
            signal("-CONT", victim.id());
        }
    }
    victim.kill().unwrap(); // SIGKILL, while frozen mid-chunk
    victim.wait().unwrap();
    let (held_table, held_index) = held
        .first()
        .cloned()
        .expect("w1 held a chunk when it was killed");
    println!("  killed w1 while it held {held_table} chunk {held_index}");
    for c in &mut others {
        assert!(
            c.wait().unwrap().success(),
            "the surviving workers finish the migration"
        );
    }
    let run = store.latest_run("shared").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let chunks = store.chunks(&run.id).await.unwrap();
    let unfinished: Vec<_> = chunks
        .iter()
        .filter(|c| c.status != ChunkStatus::Completed)
        .collect();
    if !unfinished.is_empty() {
        for e in store.events(&run.id).await.unwrap() {
            println!(
                "  event {} {} {:?} {:?} {:?} {}",
                e.at, e.action, e.table, e.chunk, e.actor, e.detail
            );
        }
    }
    assert!(
        unfinished.is_empty(),
        "every chunk completed: {unfinished:?}"
    );
    let completers: BTreeSet<String> = chunks.iter().filter_map(|c| c.worker.clone()).collect();
    assert!(
        completers.contains("w2") && completers.contains("w3"),
        "both survivors did work: {completers:?}"
    );
    let taken = chunks
        .iter()
        .find(|c| c.table == held_table && c.index == held_index)
        .unwrap();
    assert_ne!(
        taken.worker.as_deref(),
        Some("w1"),
        "the killed worker's chunk was taken over"
    );
    assert!(
        taken.attempts >= 2,
        "the taken-over chunk was attempted again"
    );
    let sink = PgSink::new(&dst).unwrap();
    for f in &data {
        let got = sink.checksum(&f.table, &KeyRange::all()).await.unwrap();
        assert_eq!(
            got,
            RowChecksum::of_rows(&f.rows),
            "{}: exact rows",
            f.table.name
        );
    }
    println!("  {} chunks, completed by {completers:?}", chunks.len());
    true
}

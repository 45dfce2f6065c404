//! Real processes against one store file:
//! - a child writing checkpoints in a loop is SIGKILLed; the file opens cleanly and holds every
//!   update the child had acknowledged;
//! - two child processes share a file on one migration and complete every chunk exactly once.
//!
//! The test binary re-runs itself as the child (`MIGRATE_SQLITE_CHILD`), so no helper binary
//! ships with the crate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{
    AuditEvent, CheckpointStore, ChunkResult, ChunkSpec, ChunkStatus, RowChecksum, RunRecord,
    TableName,
};

const CHILD: &str = "MIGRATE_SQLITE_CHILD";

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let tests: [(&str, fn()); 2] = [
        (
            "a_sigkilled_writer_leaves_every_acknowledged_update",
            sigkill,
        ),
        (
            "two_processes_complete_every_chunk_exactly_once",
            two_processes,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("\ndurability: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn spawn(mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn table() -> TableName {
    TableName::new("public", "events")
}

fn spec(i: u32) -> ChunkSpec {
    ChunkSpec {
        index: i,
        ..ChunkSpec::whole_table(table(), u64::from(i))
    }
}

fn result(i: u32) -> ChunkResult {
    ChunkResult {
        rows: u64::from(i),
        bytes: u64::from(i) * 8,
        checksum: Some(RowChecksum::new()),
        duration_ms: 1,
    }
}

/// The child side: `writer:PATH` checkpoints forever; `worker:PATH:NAME` completes chunks until
/// none is left.
fn child(mode: &str) {
    let parts: Vec<&str> = mode.splitn(3, ':').collect();
    rt().block_on(async {
        let store = SqliteCheckpointStore::open(parts[1]).await.unwrap();
        let out = &mut std::io::stdout();
        match parts[0] {
            "writer" => {
                let run = RunRecord::new("durability", "p");
                store.create_run(&run).await.unwrap();
                for i in 0.. {
                    // A table of its own each time: a table's chunks are registered at once.
                    let t = TableName::new("public", format!("events_{i}"));
                    let spec = ChunkSpec {
                        table: t.clone(),
                        ..spec(i)
                    };
                    store.add_chunks(&run.id, &[spec]).await.unwrap();
                    store
                        .claim_chunk(&run.id, &t, i, "writer", Duration::from_secs(60))
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(store
                        .complete_chunk(&run.id, &t, i, "writer", &result(i))
                        .await
                        .unwrap());
                    store
                        .append_event(&run.id, &AuditEvent::new("chunk.completed", format!("{i}")))
                        .await
                        .unwrap();
                    // Acknowledged: every call above returned Ok.
                    writeln!(out, "ack {i}").unwrap();
                    out.flush().unwrap();
                }
            }
            "worker" => {
                let run = store.latest_run("shared").await.unwrap().unwrap();
                let me = parts[2];
                loop {
                    let left: Vec<u32> = store
                        .chunks(&run.id)
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(|c| c.status != ChunkStatus::Completed)
                        .map(|c| c.index)
                        .collect();
                    if left.is_empty() {
                        break;
                    }
                    for i in left {
                        if store
                            .claim_chunk(&run.id, &table(), i, me, Duration::from_secs(60))
                            .await
                            .unwrap()
                            .is_some()
                        {
                            tokio::time::sleep(Duration::from_micros(300)).await; // the "work"
                            assert!(store
                                .complete_chunk(&run.id, &table(), i, me, &result(i))
                                .await
                                .unwrap());
                            writeln!(out, "done {i}").unwrap();
                            out.flush().unwrap();
                        }
                    }
                }
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

fn sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    let mut child = spawn(&format!("writer:{}", path.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Vec<u32> = Vec::new();
    let start = Instant::now();
    while acked.len() < 150 && start.elapsed() < Duration::from_secs(60) {
        let line = lines.next().expect("writer alive").unwrap();
        acked.push(line.trim_start_matches("ack ").parse().unwrap());
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no WAL checkpoint
    child.wait().unwrap();
    // Acks already in the pipe were printed after their updates returned: they count too.
    for line in lines {
        acked.push(line.unwrap().trim_start_matches("ack ").parse().unwrap());
    }
    assert!(
        acked.len() >= 150,
        "the writer made progress: {}",
        acked.len()
    );
    check_integrity(&path);
    rt().block_on(async {
        let store = SqliteCheckpointStore::open(&path)
            .await
            .expect("a killed writer's file opens cleanly");
        let run = store.latest_run("durability").await.unwrap().unwrap();
        let chunks = store.chunks(&run.id).await.unwrap();
        for i in &acked {
            let c = chunks
                .iter()
                .find(|c| c.index == *i)
                .unwrap_or_else(|| panic!("acknowledged chunk {i} lost"));
            assert_eq!(
                (c.status, c.rows),
                (ChunkStatus::Completed, u64::from(*i)),
                "acknowledged chunk {i}"
            );
        }
        let events = store.events(&run.id).await.unwrap();
        assert!(events.len() >= acked.len(), "acknowledged events kept");
        println!(
            "  killed after {} acknowledged checkpoints; all present",
            acked.len()
        );
    });
}

fn check_integrity(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

fn two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    const N: u32 = 300;
    rt().block_on(async {
        let store = SqliteCheckpointStore::open(&path).await.unwrap();
        let run = RunRecord::new("shared", "p");
        store.create_run(&run).await.unwrap();
        store
            .add_chunks(&run.id, &(0..N).map(spec).collect::<Vec<_>>())
            .await
            .unwrap();
    });
    let children: Vec<Child> = ["a", "b"]
        .iter()
        .map(|w| spawn(&format!("worker:{}:{w}", path.display())))
        .collect();
    let mut per_worker: Vec<Vec<u32>> = Vec::new();
    for mut c in children {
        let out = BufReader::new(c.stdout.take().unwrap());
        let done: Vec<u32> = out
            .lines()
            .map(|l| l.unwrap().trim_start_matches("done ").parse().unwrap())
            .collect();
        assert!(c.wait().unwrap().success(), "worker exited cleanly");
        per_worker.push(done);
    }
    let all: Vec<u32> = per_worker.concat();
    let unique: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        N as usize,
        "every chunk completed exactly once (a: {}, b: {})",
        per_worker[0].len(),
        per_worker[1].len()
    );
    assert_eq!(unique, (0..N).collect());
    assert!(
        per_worker.iter().all(|w| !w.is_empty()),
        "both processes did work"
    );
    rt().block_on(async {
        let store = SqliteCheckpointStore::open(&path).await.unwrap();
        let run = store.latest_run("shared").await.unwrap().unwrap();
        let chunks = store.chunks(&run.id).await.unwrap();
        assert!(chunks
            .iter()
            .all(|c| c.status == ChunkStatus::Completed && c.attempts == 1));
        println!(
            "  worker a: {} chunks, worker b: {} chunks, none twice",
            per_worker[0].len(),
            per_worker[1].len()
        );
    });
}

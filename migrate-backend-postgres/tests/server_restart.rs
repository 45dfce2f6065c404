//! The server restarts mid-run (`pg_ctl restart` on a throwaway cluster this test starts
//! itself): lost connections and the lost snapshot are retried and re-established, and the run
//! completes with an exact result.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::sample_dataset;
use migrate_core::{ExecutorConfig, KeyRange, Migration, RowChecksum, Sink};

/// A cluster in a temporary directory, stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl Cluster {
    /// Runs a Postgres binary, as the `postgres` user when we are root (initdb and pg_ctl
    /// refuse to run as root).
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let status = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .status()
        } else {
            Command::new(&exe).args(args).status()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(status.success(), "{tool} {args:?} failed");
    }

    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql installed (scripts/test installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .expect("a postgresql bin directory");
        let dir = tempfile::Builder::new()
            .prefix("migrate-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        if is_root() {
            assert!(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Cluster { bin, dir, port };
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        c.run(
            "pg_ctl",
            &["-D", &data, "-o", &c.opts(), "-l", &c.log(), "-w", "start"],
        );
        c
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.path().join("log").display().to_string()
    }

    fn opts(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        )
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn restart(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &self.opts(),
                "-l",
                &self.log(),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_survives_a_server_restart() {
    // The throwaway cluster needs the tools scripts/test provides; require them the same way.
    if common::admin_url().is_none() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let admin = cluster.url("postgres");
    let src = common::fresh_db(&admin, "src").await;
    let dst = common::fresh_db(&admin, "dst").await;
    let data = sample_dataset("public", 0.02);
    common::load(&src, &data).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteCheckpointStore::open(dir.path().join("m.db"))
            .await
            .unwrap(),
    );
    let mut config = ExecutorConfig {
        migration: "restart".into(),
        parallelism: 2,
        chunk_rows: 2000,
        ..Default::default()
    };
    config.retry.max_attempts = 8;
    config.retry.initial_delay = Duration::from_millis(250);
    config.retry.max_delay = Duration::from_secs(2);
    let handle = Migration::new(
        Arc::new(PgSource::new(&src).unwrap()),
        Arc::new(PgSink::new(&dst).unwrap()),
        store,
    )
    .with_config(config)
    .start();
    let mut progress = handle.progress();
    progress.wait_for(|p| p.chunks_done >= 10).await.unwrap();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    let report = handle.wait().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert!(
        report.progress.retries > 0,
        "the restart cost at least one retry"
    );
    let sink = PgSink::new(&dst).unwrap();
    for f in &data {
        assert_eq!(
            sink.checksum(&f.table, &KeyRange::all()).await.unwrap(),
            RowChecksum::of_rows(&f.rows),
            "{}",
            f.table.name
        );
    }
    println!(
        "completed after a restart with {} retries",
        report.progress.retries
    );
    drop(cluster);
}

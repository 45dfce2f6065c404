//! Modes and settings: stream, settings the sink cannot honour, verification failures,
//! progress events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{cfg, Rig};
use migrate_core::executor::{IncrementalConfig, Mode};
use migrate_core::testing::{all_types_table, fixture_tables, keyless_table, MemorySink};
use migrate_core::{
    Batch, BatchReader, ChunkSpec, ErrorKind, ExistingRows, KeyRange, Migration, Preflight,
    PrepareOptions, Prepared, Result, RowChecksum, RunStatus, Schema, Sink, SinkCapabilities,
    TableInfo, TableStatus, Value, WriteStats,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_repeats_incremental_runs_until_cancelled() {
    let rig = Rig::with(fixture_tables(Some("public"), 20)[..1].to_vec());
    assert!(rig
        .migration(cfg("stream"))
        .run()
        .await
        .unwrap()
        .succeeded());
    let mut c = cfg("stream");
    c.mode = Mode::Stream {
        incremental: IncrementalConfig {
            cursor_column: Some("created_at".into()),
            ..Default::default()
        },
        interval: Duration::from_millis(30),
    };
    let handle = rig.migration(c).start();
    let customers = migrate_core::TableName::new("public", "customers");
    // A row arrives while the stream runs; it reaches the target without another command.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let mut row = rig.fixtures[0].rows[0].clone();
    row[0] = Value::Int64(5000);
    row[5] = Value::TimestampTz(i64::MAX / 2);
    rig.source
        .upsert_rows(&customers, vec![row.clone()])
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !rig.sink.rows(&customers).unwrap().contains(&row) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the streamed row never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.cancel();
    let report = handle.wait().await.unwrap();
    assert_eq!(report.execution_type, "incremental");
}

#[tokio::test]
async fn settings_the_sink_cannot_honour_are_refused_up_front() {
    let rig = Rig::sample(0.0005);
    // A sink that cannot back up tables: asking for backups is refused, naming the setting.
    // (The transaction-mode and bulk settings this test also refused are gone: no sink
    // honoured them.)
    rig.sink.set_capabilities(SinkCapabilities {
        upsert: false,
        backup: false,
    });
    let mut c = cfg("caps");
    c.prepare.backup = true;
    let e = rig.migration(c).run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("memory sink cannot"), "{e}");
    assert!(e.to_string().contains("prepare.backup"), "{e}");
    // Nor can it merge into tables holding rows, which upserts.
    let mut c = cfg("caps");
    c.prepare.existing_rows = ExistingRows::Merge;
    let e = rig.migration(c).run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("existing_rows = merge"), "{e}");
    rig.sink.set_capabilities(SinkCapabilities {
        upsert: true,
        backup: true,
    });
    let mut c = cfg("caps");
    c.mode = Mode::Incremental(IncrementalConfig {
        cursor_column: Some("no_such_column".into()),
        ..Default::default()
    });
    let e = rig.migration(c).run().await.unwrap_err();
    assert!(e.to_string().contains("\"no_such_column\""), "{e}");
    assert!(rig.sink.write_log().is_empty(), "nothing written");
}

/// Issue 14, part 3: every table incremental mode cannot read is named in one error before
/// anything runs (the executor used to stop at the first).
#[tokio::test]
async fn incremental_mode_names_every_table_it_cannot_read() {
    let mut fixtures = fixture_tables(Some("public"), 20); // customers has created_at, orders not
    fixtures.push(all_types_table(Some("public"), &[])); // no created_at
    fixtures.push(keyless_table(Some("public"), 5)); // no created_at, no primary key
    let names: Vec<String> = fixtures.iter().map(|f| f.table.name.to_string()).collect();
    let rig = Rig::with(fixtures);
    let mut c = cfg("lacking");
    c.mode = Mode::Incremental(IncrementalConfig {
        cursor_column: Some("created_at".into()),
        ..Default::default()
    });
    let e = rig.migration(c).run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let msg = e.to_string();
    assert!(msg.contains("3 of the 4 tables"), "{msg}");
    for name in &names[1..] {
        assert!(
            msg.contains(&format!(
                "{name}: no column \"created_at\" (the cursor column)"
            )),
            "{name} not named in: {msg}"
        );
    }
    assert!(msg.contains("no primary key"), "{msg}");
    assert!(!msg.contains(&names[0]), "{msg}");
    assert!(rig.sink.write_log().is_empty(), "nothing written");
}

/// Drops the last row of every chunk it writes but reports success: the kind of silent loss
/// verification exists to catch.
struct LossySink(MemorySink);

struct DropLast<'a> {
    inner: &'a mut dyn BatchReader,
    pending: Option<Batch>,
}

#[async_trait]
impl BatchReader for DropLast<'_> {
    fn schema(&self) -> &Arc<Schema> {
        self.inner.schema()
    }
    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        let next = self.inner.next_batch().await?;
        match (self.pending.take(), next) {
            (None, Some(b)) => {
                self.pending = Some(b);
                Box::pin(self.next_batch()).await
            }
            (Some(p), Some(b)) => {
                self.pending = Some(b);
                Ok(Some(p))
            }
            (Some(p), None) => {
                let mut rows = p.into_rows();
                rows.pop();
                Ok(Some(Batch::new(self.inner.schema().clone(), rows)))
            }
            (None, None) => Ok(None),
        }
    }
}

#[async_trait]
impl Sink for LossySink {
    fn kind(&self) -> &'static str {
        "lossy"
    }
    fn capabilities(&self) -> SinkCapabilities {
        self.0.capabilities()
    }
    async fn preflight(&self, t: &TableInfo) -> Result<Preflight> {
        self.0.preflight(t).await
    }
    async fn prepare(
        &self,
        t: &TableInfo,
        o: &PrepareOptions,
        run: &migrate_core::RunId,
    ) -> Result<Prepared> {
        self.0.prepare(t, o, run).await
    }
    async fn write_chunk(
        &self,
        t: &TableInfo,
        c: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let mut lossy = DropLast {
            inner: rows,
            pending: None,
        };
        self.0.write_chunk(t, c, &mut lossy).await
    }
    async fn checksum(&self, t: &TableInfo, r: &KeyRange) -> Result<RowChecksum> {
        self.0.checksum(t, r).await
    }
    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        self.0.rollback(tables).await
    }
}

#[tokio::test]
async fn verification_failure_fails_the_run_and_names_table_and_chunk() {
    let rig = Rig::with(fixture_tables(Some("public"), 60)[..1].to_vec());
    let sink = Arc::new(LossySink(MemorySink::new(Arc::new(
        migrate_core::testing::Faults::new(),
    ))));
    let report = Migration::new(rig.source.clone(), sink, rig.store.clone())
        .with_config(cfg("lossy"))
        .run()
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert!(!report.verification.passed);
    assert_eq!(report.results[0].status, TableStatus::Failed);
    let v = &report.verification.tables[0];
    assert!(v.checksum_match == Some(false) && v.count_match == Some(false));
    let md = report.to_markdown();
    assert!(
        md.contains("- Result: FAILED"),
        "a mismatch reads as FAILED: {md}"
    );
    assert!(
        v.mismatches.iter().any(|m| m.chunk == 0
            && m.detail.contains("target holds 49 rows")
            && m.detail.contains("the run wrote 50 rows")),
        "{:?}",
        v.mismatches
    );
    let reason = report.results[0].reason.clone().unwrap();
    assert!(
        reason.contains("public.customers") && reason.contains("chunk 0"),
        "{reason}"
    );
    assert!(report.to_markdown().contains("MISMATCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reports_rows_rates_eta_and_tables() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(2));
    let handle = rig.migration(cfg("progress")).start();
    let mut rx = handle.progress();
    let mut saw_eta = false;
    let mut saw_active = false;
    let mut last_rows = 0;
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        assert!(
            p.rows_done >= last_rows || p.rows_done + 1000 >= last_rows,
            "rows only move back when an attempt fails"
        );
        last_rows = p.rows_done;
        saw_eta |=
            p.eta_secs.is_some_and(|e| e > 0.0) && p.rows_per_sec > 0.0 && p.mb_per_sec > 0.0;
        saw_active |= !p.active_tables.is_empty();
        if p.phase == migrate_core::executor::Phase::Done {
            break;
        }
    }
    let report = handle.wait().await.unwrap();
    let p = rx.borrow().clone();
    let total: u64 = rig.fixtures.iter().map(|f| f.rows.len() as u64).sum();
    assert!(report.succeeded());
    assert!(saw_eta && saw_active);
    assert_eq!(p.rows_done, total);
    assert_eq!(p.rows_total, total);
    assert_eq!(p.chunks_done, p.chunks_total);
    assert_eq!(p.tables.len(), 8);
    assert!(p
        .tables
        .iter()
        .all(|t| t.status == TableStatus::Completed && t.rows_done == t.rows_total));
    assert!(p.api_calls > 0);
}

//! Workers sharing one run: a worker never fails a table another worker completed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{cfg, t, Rig};
use migrate_core::testing::{Fixture, MemoryCheckpointStore, MemorySink};
use migrate_core::{
    BatchReader, CheckpointStore, ChunkResult, ChunkSpec, Error, ErrorKind, KeyRange, Preflight,
    PrepareOptions, Prepared, Result, Row, RowChecksum, RunId, Sink, SinkCapabilities, TableInfo,
    TableName, TableRecord, TableStatus, Value, VecBatchReader, WriteStats,
};

/// The memory sink, with another worker sharing the run simulated around it.
struct SharedRun {
    inner: Arc<MemorySink>,
    store: Arc<MemoryCheckpointStore>,
    migration: String,
    /// Finalizing this table loses a race: another worker finalizes it first and records it
    /// completed, and this worker's finalize fails with an error of this kind.
    loses_finalize: Option<(TableName, ErrorKind)>,
    /// When this worker prepares the first table, another worker first loads the second
    /// (this fixture), completes its chunks and records it completed.
    completed_meanwhile: Option<(TableName, Fixture)>,
    /// The tables this worker finalized, with the store's status for each at that moment.
    finalized: Mutex<Vec<(TableName, TableStatus)>>,
}

impl SharedRun {
    fn new(rig: &Rig, migration: &str) -> Self {
        SharedRun {
            inner: rig.sink.clone(),
            store: rig.store.clone(),
            migration: migration.into(),
            loses_finalize: None,
            completed_meanwhile: None,
            finalized: Mutex::new(Vec::new()),
        }
    }

    async fn record(&self, table: &TableName) -> (RunId, TableRecord) {
        let run = self
            .store
            .latest_run(&self.migration)
            .await
            .unwrap()
            .unwrap();
        let record = self
            .store
            .tables(&run.id)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.table == *table)
            .unwrap();
        (run.id, record)
    }

    /// What another worker does: completes `table` (whose target it just loaded).
    async fn complete_elsewhere(&self, table: &TableName) {
        let (run, mut record) = self.record(table).await;
        record.status = TableStatus::Completed;
        record.finished_at = Some(chrono::Utc::now());
        self.store.put_table(&run, &record).await.unwrap();
    }
}

#[async_trait]
impl Sink for SharedRun {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn capabilities(&self) -> SinkCapabilities {
        self.inner.capabilities()
    }
    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        self.inner.preflight(table).await
    }
    async fn prepare(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &migrate_core::RunId,
    ) -> Result<Prepared> {
        if let Some((_, f)) = self
            .completed_meanwhile
            .as_ref()
            .filter(|(trigger, _)| *trigger == table.name)
        {
            let name = &f.table.name;
            self.inner.prepare(&f.table, options, run).await?;
            let whole = ChunkSpec::whole_table(name.clone(), f.rows.len() as u64);
            let mut r = VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 16);
            self.inner.write_chunk(&f.table, &whole, &mut r).await?;
            let (run, _) = self.record(name).await;
            for c in self
                .store
                .chunks(&run)
                .await?
                .iter()
                .filter(|c| c.table == *name)
            {
                self.store
                    .claim_chunk(&run, name, c.index, "other", Duration::from_secs(60))
                    .await?
                    .unwrap();
                let done = ChunkResult {
                    rows: 0,
                    bytes: 0,
                    checksum: None,
                    duration_ms: 1,
                };
                assert!(
                    self.store
                        .complete_chunk(&run, name, c.index, "other", &done)
                        .await?
                );
            }
            self.complete_elsewhere(name).await;
        }
        self.inner.prepare(table, options, run).await
    }

    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        self.inner.write_chunk(table, chunk, rows).await
    }
    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        self.inner.checksum(table, range).await
    }
    async fn finalize(&self, table: &TableInfo) -> Result<Vec<migrate_core::ObjectOutcome>> {
        let (_, now) = self.record(&table.name).await;
        self.finalized
            .lock()
            .unwrap()
            .push((table.name.clone(), now.status));
        let created = self.inner.finalize(table).await?;
        match &self.loses_finalize {
            Some((name, kind)) if *name == table.name => {
                self.complete_elsewhere(name).await;
                Err(Error::new(
                    *kind,
                    format!(
                        "creating index orders_customer_id_idx on {name}: duplicate key value violates unique constraint \"pg_class_relname_nsp_index\""
                    ),
                ))
            }
            _ => Ok(created),
        }
    }
    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        self.inner.fetch_rows(table, keys).await
    }
    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        self.inner.describe(table).await
    }
    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        self.inner.rollback(tables).await
    }
}

#[tokio::test]
async fn a_table_another_worker_completed_is_adopted_not_failed_and_its_children_go_on() {
    // A constraint error fails the table; a fatal one stops the run: neither may stand when
    // another worker completed the table.
    for kind in [ErrorKind::Constraint, ErrorKind::Fatal] {
        let rig = Rig::sample(0.001);
        let name = format!("adopt-{kind}");
        let sink = Arc::new(SharedRun {
            loses_finalize: Some((t("orders"), kind)),
            ..SharedRun::new(&rig, &name)
        });
        let report = migrate_core::Migration::new(rig.source.clone(), sink, rig.store.clone())
            .with_config(cfg(&name))
            .run()
            .await
            .unwrap();
        assert!(report.succeeded(), "{kind}: {}", report.to_markdown());
        assert_eq!(report.errors.total, 0, "{kind}: {}", report.to_markdown());
        rig.assert_target_equals_source();
        let tables = rig
            .store
            .tables(&RunId(report.execution_id.clone()))
            .await
            .unwrap();
        assert!(
            tables.iter().all(|r| r.status == TableStatus::Completed),
            "{kind}: orders stays completed and its child transactions is not skipped: {tables:?}"
        );
        assert_eq!(
            report
                .audit_summary
                .by_action
                .get("table.completed_elsewhere"),
            Some(&1),
            "{kind}: the adoption is in the audit log"
        );
    }
}

#[tokio::test]
async fn a_table_another_worker_completed_before_this_one_started_it_is_not_started_again() {
    // Completed while this worker prepares it (it finds the table existing), or after this
    // worker prepared it (while it prepares inventory, a child) and before it started it.
    for trigger in ["products", "inventory"] {
        let rig = Rig::sample(0.001);
        let products = rig
            .fixtures
            .iter()
            .find(|f| f.table.name == t("products"))
            .unwrap();
        let sink = Arc::new(SharedRun {
            completed_meanwhile: Some((t(trigger), products.clone())),
            ..SharedRun::new(&rig, trigger)
        });
        let report =
            migrate_core::Migration::new(rig.source.clone(), sink.clone(), rig.store.clone())
                .with_config(cfg(trigger))
                .run()
                .await
                .unwrap();
        assert!(report.succeeded(), "{trigger}: {}", report.to_markdown());
        rig.assert_target_equals_source();
        let finalized = sink.finalized.lock().unwrap().clone();
        assert_eq!(finalized.len(), 7, "{trigger}: {finalized:?}");
        assert!(
            finalized
                .iter()
                .all(|(n, status)| *n != t("products") && *status == TableStatus::Running),
            "{trigger}: this worker neither wrote over products' Completed nor finalized it again: {finalized:?}"
        );
        let tables = rig
            .store
            .tables(&RunId(report.execution_id.clone()))
            .await
            .unwrap();
        assert!(tables.iter().all(|r| r.status == TableStatus::Completed));
        assert_eq!(
            report
                .audit_summary
                .by_action
                .get("table.completed_elsewhere"),
            Some(&1),
            "{trigger}"
        );
    }
}

#[tokio::test]
async fn a_failure_nobody_else_completed_still_fails_the_table() {
    let rig = Rig::sample(0.001);
    rig.sink_faults
        .fail_nth(migrate_core::testing::Op::Write, 1, ErrorKind::Schema);
    let report = rig.migration(cfg("still-fails")).run().await.unwrap();
    assert!(!report.succeeded());
    assert!(report
        .results
        .iter()
        .any(|r| r.status == TableStatus::Failed));
    assert!(!report
        .audit_summary
        .by_action
        .contains_key("table.completed_elsewhere"));
}

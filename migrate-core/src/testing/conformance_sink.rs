//! The suite every [`Sink`] passes: idempotent chunk rewrites, partial writes replaced, counts
//! and checksums, keyless reloads, lossless types, rollback.

use std::sync::Arc;

use async_trait::async_trait;

use super::fixtures::{all_types_table, fixture_tables, keyless_table, Fixture};
use crate::batch::{Batch, BatchReader, Row, VecBatchReader};
use crate::checkpoint::RunId;
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{DataType, Schema, TableInfo};
use crate::sink::{PrepareMode, PrepareOptions, Sink};
use crate::value::Value;

/// How to run the sink suite against one backend.
#[derive(Debug, Clone, Default)]
pub struct SinkSuite {
    /// Schema / dataset the suite's tables are created in (it must exist and hold none of
    /// `customers`, `events_keyless`, `all_types`).
    pub namespace: Option<String>,
    /// Types the backend cannot store (left out of the all-types table), e.g. `Interval` for
    /// Snowflake. Say why in the backend's docs.
    pub unsupported_types: Vec<DataType>,
}

/// Yields `rows` then fails with a transient error: a write that dies half way.
struct FailingReader {
    inner: VecBatchReader,
}

#[async_trait]
impl BatchReader for FailingReader {
    fn schema(&self) -> &Arc<Schema> {
        self.inner.schema()
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        match self.inner.next_batch().await? {
            Some(b) => Ok(Some(b)),
            None => Err(Error::transient(
                "connection reset (injected by the sink suite)",
            )),
        }
    }
}

fn reader(t: &TableInfo, rows: Vec<Row>) -> VecBatchReader {
    VecBatchReader::from_rows(t.schema.clone(), rows, 17)
}

fn in_range(t: &TableInfo, rows: &[Row], r: &KeyRange) -> Vec<Row> {
    rows.iter()
        .filter(|row| r.contains(&t.schema.key_of(row)))
        .cloned()
        .collect()
}

async fn checksum(sink: &dyn Sink, t: &TableInfo, r: &KeyRange) -> RowChecksum {
    sink.checksum(t, r)
        .await
        .unwrap_or_else(|e| panic!("{} sink: checksum of {} {r}: {e}", sink.kind(), t.name))
}

async fn write(sink: &dyn Sink, t: &TableInfo, c: &ChunkSpec, rows: Vec<Row>) {
    let n = rows.len() as u64;
    let stats = sink
        .write_chunk(t, c, &mut reader(t, rows))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} sink: write chunk {} of {}: {e}",
                sink.kind(),
                c.index,
                t.name
            )
        });
    assert_eq!(stats.rows, n, "write_chunk reports the rows it wrote");
}

/// Runs the sink contract. Panics with a message naming the broken rule.
pub async fn sink_conformance(sink: &dyn Sink, suite: &SinkSuite) {
    let ns = suite.namespace.as_deref();
    let Fixture { table: t, rows } = fixture_tables(ns, 120).swap_remove(0);
    let kind = sink.kind();

    let pre = sink
        .preflight(&t)
        .await
        .unwrap_or_else(|e| panic!("{kind}: preflight: {e}"));
    assert!(
        pre.reachable && !pre.exists && pre.problems.is_empty(),
        "{kind}: preflight of a new table: {pre:?}"
    );
    let opts = PrepareOptions::default();
    let run = RunId::generate();
    let prepared = sink
        .prepare(&t, &opts, &run)
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare: {e}"));
    assert!(
        prepared.created,
        "{kind}: prepare reports that it created the table"
    );
    let again = sink
        .prepare(&t, &opts, &run)
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare again: {e}"));
    assert_eq!(
        again, prepared,
        "{kind}: preparing again in the same run returns what the first call did"
    );
    let other = sink
        .prepare(&t, &opts, &RunId::generate())
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare in another run: {e}"));
    assert!(
        !other.created && other.existing_rows == Some(0),
        "{kind}: another run finds the table it did not create, empty: {other:?}"
    );
    assert!(
        sink.preflight(&t).await.map(|p| p.exists).unwrap_or(false),
        "{kind}: preflight sees the table"
    );

    let bound = |k: i64| Some(vec![Value::Int64(k)]);
    let chunks: Vec<ChunkSpec> = [(None, bound(41)), (bound(41), bound(81)), (bound(81), None)]
        .into_iter()
        .enumerate()
        .map(|(i, (lo, hi))| ChunkSpec {
            table: t.name.clone(),
            index: i as u32,
            range: KeyRange::between(lo, hi),
            estimated_rows: 40,
            operation: crate::Operation::CopyRows,
        })
        .collect();
    for c in &chunks {
        write(sink, &t, c, in_range(&t, &rows, &c.range)).await;
    }
    for c in &chunks {
        let want = RowChecksum::of_rows(&in_range(&t, &rows, &c.range));
        assert_eq!(
            checksum(sink, &t, &c.range).await,
            want,
            "{kind}: checksum of chunk {}",
            c.index
        );
    }
    let whole = RowChecksum::of_rows(&rows);
    assert_eq!(
        checksum(sink, &t, &KeyRange::all()).await,
        whole,
        "{kind}: whole-table checksum"
    );

    // Rewriting a chunk changes nothing.
    write(sink, &t, &chunks[1], in_range(&t, &rows, &chunks[1].range)).await;
    assert_eq!(
        checksum(sink, &t, &KeyRange::all()).await,
        whole,
        "{kind}: rewrite of a chunk is idempotent"
    );

    // A write that dies half way, then the retry: exactly the chunk's rows.
    let c2 = &chunks[2];
    let c2_rows = in_range(&t, &rows, &c2.range);
    let half = c2_rows[..c2_rows.len() / 2].to_vec();
    let mut failing = FailingReader {
        inner: reader(&t, half),
    };
    let err = sink.write_chunk(&t, c2, &mut failing).await;
    assert!(err.is_err(), "{kind}: a write whose input fails must fail");
    write(sink, &t, c2, c2_rows.clone()).await;
    assert_eq!(
        checksum(sink, &t, &KeyRange::all()).await,
        whole,
        "{kind}: a retried partial write converges"
    );

    // The source changed between attempts: the range ends up holding exactly the new rows.
    let mut changed = in_range(&t, &rows, &chunks[0].range);
    changed.retain(|r| r[0].as_i64().is_some_and(|k| k % 4 != 0));
    changed[0][2] = Value::Text("changed@example.com".into());
    write(sink, &t, &chunks[0], changed.clone()).await;
    assert_eq!(
        checksum(sink, &t, &chunks[0].range).await,
        RowChecksum::of_rows(&changed),
        "{kind}: a rewritten range holds exactly the rows of the last write"
    );
    for c in &chunks[1..] {
        assert_eq!(
            checksum(sink, &t, &c.range).await,
            RowChecksum::of_rows(&in_range(&t, &rows, &c.range)),
            "{kind}: rewriting chunk 0 left chunk {} alone",
            c.index
        );
    }

    keyless(sink, ns).await;
    all_types(sink, suite).await;
    existing_rows(sink, ns).await;

    // Rollback of a table this run created removes it.
    sink.rollback(&[(t.clone(), prepared)])
        .await
        .unwrap_or_else(|e| panic!("{kind}: rollback: {e}"));
    let gone = sink.checksum(&t, &KeyRange::all()).await;
    assert_eq!(
        gone.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound),
        "{kind}: after rollback of a created table it is gone (checksum is NotFound)"
    );
}

async fn keyless(sink: &dyn Sink, ns: Option<&str>) {
    let kind = sink.kind();
    let Fixture { table: t, rows } = keyless_table(ns, 30);
    let opts = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    let prepared = sink
        .prepare(&t, &opts, &RunId::generate())
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare keyless: {e}"));
    let whole = ChunkSpec::whole_table(t.name.clone(), 30);
    write(sink, &t, &whole, rows.clone()).await;
    write(sink, &t, &whole, rows.clone()).await;
    assert_eq!(
        checksum(sink, &t, &KeyRange::all()).await,
        RowChecksum::of_rows(&rows),
        "{kind}: a keyless table written twice holds one copy"
    );
    let merge = PrepareOptions {
        existing_rows: crate::sink::ExistingRows::Merge,
        ..Default::default()
    };
    let refused = sink.prepare(&t, &merge, &RunId::generate()).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::Config),
        "{kind}: merging into a keyless table that holds rows is refused: {refused:?}"
    );
    sink.rollback(&[(t, prepared)])
        .await
        .unwrap_or_else(|e| panic!("{kind}: rollback keyless: {e}"));
}

async fn all_types(sink: &dyn Sink, suite: &SinkSuite) {
    let kind = sink.kind();
    let Fixture { table: t, rows } =
        all_types_table(suite.namespace.as_deref(), &suite.unsupported_types);
    let opts = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    let prepared = sink
        .prepare(&t, &opts, &RunId::generate())
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare all_types: {e}"));
    write(
        sink,
        &t,
        &ChunkSpec::whole_table(t.name.clone(), 3),
        rows.clone(),
    )
    .await;
    let got = checksum(sink, &t, &KeyRange::all()).await;
    if got != RowChecksum::of_rows(&rows) {
        // Find the column that did not survive, to make the failure useful.
        let back = sink
            .fetch_rows(&t, &[vec![Value::Int64(1)], vec![Value::Int64(2)]])
            .await;
        panic!("{kind}: the all-types table did not round-trip losslessly: {got} != expected; rows read back: {back:?}");
    }
    sink.rollback(&[(t, prepared)])
        .await
        .unwrap_or_else(|e| panic!("{kind}: rollback all_types: {e}"));
}

/// A table that holds rows before a run: refused by default, merged or replaced when asked,
/// backed up once per run, and restored by rollback.
async fn existing_rows(sink: &dyn Sink, ns: Option<&str>) {
    let kind = sink.kind();
    let Fixture { table: mut t, rows } = fixture_tables(ns, 20).swap_remove(0);
    t.name.name = "existing_rows".into();
    let first = sink
        .prepare(
            &t,
            &PrepareOptions {
                mode: PrepareMode::Recreate,
                ..Default::default()
            },
            &RunId::generate(),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare existing_rows: {e}"));
    write(
        sink,
        &t,
        &ChunkSpec::whole_table(t.name.clone(), 20),
        rows.clone(),
    )
    .await;
    let before = RowChecksum::of_rows(&rows);
    let pre = sink
        .preflight(&t)
        .await
        .unwrap_or_else(|e| panic!("{kind}: preflight: {e}"));
    assert_eq!(
        pre.rows,
        Some(20),
        "{kind}: preflight counts the rows: {pre:?}"
    );

    let refused = sink
        .prepare(&t, &PrepareOptions::default(), &RunId::generate())
        .await;
    match refused {
        Err(e) => assert!(
            e.kind() == ErrorKind::Config
                && e.to_string().contains("existing_rows")
                && e.to_string().contains("20 rows"),
            "{kind}: the refusal names the count and the setting: {e}"
        ),
        Ok(p) => panic!("{kind}: a table holding rows was prepared under `fail`: {p:?}"),
    }

    let merge = PrepareOptions {
        existing_rows: crate::sink::ExistingRows::Merge,
        backup: true,
        ..Default::default()
    };
    let run = RunId::generate();
    let merged = sink
        .prepare(&t, &merge, &run)
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare to merge: {e}"));
    assert!(
        merged.merge && merged.existing_rows == Some(20) && merged.backup.is_some(),
        "{kind}: {merged:?}"
    );
    // A changed row and a new one, upserted: target-only rows stay.
    let mut changed = vec![rows[3].clone(), rows[0].clone()];
    changed[0][2] = Value::Text("merged@example.com".into());
    changed[1][0] = Value::Int64(1000);
    sink.upsert(&t, &mut reader(&t, changed.clone()))
        .await
        .unwrap_or_else(|e| panic!("{kind}: upsert: {e}"));
    assert_eq!(
        sink.prepare(&t, &merge, &run).await.ok().as_ref(),
        Some(&merged),
        "{kind}: preparing again in the same run takes no second backup"
    );
    assert_eq!(checksum(sink, &t, &KeyRange::all()).await.count, 21);
    let replaced = sink
        .prepare(
            &t,
            &PrepareOptions {
                existing_rows: crate::sink::ExistingRows::Replace,
                ..Default::default()
            },
            &RunId::generate(),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: prepare to replace: {e}"));
    assert!(
        !replaced.merge && replaced.existing_rows == Some(21),
        "{kind}: {replaced:?}"
    );
    sink.rollback(&[(t.clone(), merged)])
        .await
        .unwrap_or_else(|e| panic!("{kind}: rollback of the merge: {e}"));
    assert_eq!(
        checksum(sink, &t, &KeyRange::all()).await,
        before,
        "{kind}: rollback puts the backed-up rows back"
    );
    sink.rollback(&[(t, first)])
        .await
        .unwrap_or_else(|e| panic!("{kind}: rollback existing_rows: {e}"));
}

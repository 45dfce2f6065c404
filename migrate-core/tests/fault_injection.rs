//! The fault injection the executor tests rely on does what it says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;
use std::time::Duration;

use migrate_core::testing::{fixture_tables, Faults, MemorySink, MemorySource, Op};
use migrate_core::{
    collect_rows, ChunkSpec, ErrorKind, KeyRange, PrepareOptions, RowChecksum, Sink, Source,
    VecBatchReader,
};

#[tokio::test]
async fn fails_the_nth_write_with_the_chosen_kind_and_leaves_a_partial_chunk() {
    let faults = Arc::new(Faults::new());
    faults.fail_nth(Op::Write, 2, ErrorKind::Constraint);
    faults.fail_nth_after(Op::Write, 3, 5, ErrorKind::Transient);
    let sink = MemorySink::new(faults.clone());
    let f = fixture_tables(None, 30).swap_remove(0);
    sink.prepare(
        &f.table,
        &PrepareOptions::default(),
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();
    let chunk = ChunkSpec::whole_table(f.table.name.clone(), 30);
    let write = |n: usize| {
        let rows = f.rows[..n].to_vec();
        let t = f.table.clone();
        let c = chunk.clone();
        let sink = &sink;
        async move {
            sink.write_chunk(
                &t,
                &c,
                &mut VecBatchReader::from_rows(t.schema.clone(), rows, 4),
            )
            .await
        }
    };
    assert_eq!(write(30).await.unwrap().rows, 30);
    let e = write(30).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Constraint);
    assert_eq!(e.context().chunk, Some(0), "errors carry the chunk");
    let e = write(30).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    let partial = sink.rows(&f.table.name).unwrap();
    assert_eq!(
        partial.len(),
        5,
        "a fault after 5 rows leaves 5 rows behind (non-transactional)"
    );
    assert_eq!(
        write(30).await.unwrap().rows,
        30,
        "the 4th write has no fault"
    );
    assert_eq!(
        sink.checksum(&f.table, &KeyRange::all()).await.unwrap(),
        RowChecksum::of_rows(&f.rows)
    );
    assert_eq!(faults.count(Op::Write), 4);
    let log = sink.write_log();
    assert_eq!(log.iter().filter(|w| w.ok).count(), 2);
}

#[tokio::test]
async fn rate_limit_and_quota_faults_on_reads() {
    let faults = Arc::new(Faults::new());
    faults.rate_limit_nth(Op::Read, 1, Some(Duration::from_secs(7)));
    faults.quota_nth(Op::Read, 2);
    faults.fail_nth_after(Op::Read, 3, 10, ErrorKind::Transient);
    let f = fixture_tables(None, 40).swap_remove(0);
    let source = MemorySource::with_fixtures(std::slice::from_ref(&f), faults);
    let chunk = ChunkSpec::whole_table(f.table.name.clone(), 40);
    let e = source.read_chunk(&f.table, &chunk, 8).await.err().unwrap();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let e = source.read_chunk(&f.table, &chunk, 8).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Quota);
    // The third read fails mid-stream, after 10 rows.
    let mut r = source.read_chunk(&f.table, &chunk, 8).await.unwrap();
    let mut got = 0;
    let err = loop {
        match r.next_batch().await {
            Ok(Some(b)) => got += b.len(),
            Ok(None) => panic!("expected a mid-stream failure"),
            Err(e) => break e,
        }
    };
    assert_eq!((got, err.kind()), (10, ErrorKind::Transient));
    let mut r = source.read_chunk(&f.table, &chunk, 8).await.unwrap();
    assert_eq!(collect_rows(&mut *r).await.unwrap().len(), 40);
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_to_every_operation() {
    let faults = Arc::new(Faults::new());
    faults.set_latency(Duration::from_millis(250));
    let f = fixture_tables(None, 5).swap_remove(0);
    let source = MemorySource::with_fixtures(std::slice::from_ref(&f), faults);
    let start = tokio::time::Instant::now();
    source.checksum(&f.table, &KeyRange::all()).await.unwrap();
    source.checksum(&f.table, &KeyRange::all()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

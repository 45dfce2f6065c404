//! Property: through the executor, whatever chain of built-in steps a table has, the target
//! holds rows in − filtered − rejected, each rejected row is recorded once by key (also when a
//! chunk is written again after a failure), and
//! verification (checksums per chunk and sampled rows compared after the chain) passes — on
//! the in-memory backends for random chains and data, and on Postgres for a fixed set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::testing::{
    service_env, Faults, Fixture, MemoryCheckpointStore, MemorySink, MemorySource, Op,
};
use migrate_core::{
    CheckpointStore, ChunkSpec, Column, DataType, ErrorKind, ExecutorConfig, Migration,
    PrepareMode, PrepareOptions, RunId, Schema, Sink, Source, TableInfo, TableName, Transform,
    Value, VecBatchReader,
};
use migrate_transform::{
    Chain, Compute, Convert, Filter, Lookup, Map, Mask, MaskKind, OnError, OnMiss, Reference,
};
use proptest::prelude::*;

fn table() -> TableName {
    TableName::new("public", "items")
}

fn fixture(rows: &[(Option<String>, Option<i32>, Option<String>)]) -> Fixture {
    let schema = Schema::new(
        vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new("code", DataType::text()),
            Column::new("qty", DataType::Int32),
            Column::new("note", DataType::text()),
        ],
        &["id"],
    )
    .unwrap();
    let mut info = TableInfo::new(table(), schema);
    info.estimated_rows = rows.len() as u64;
    let rows = rows
        .iter()
        .enumerate()
        .map(|(i, (code, qty, note))| {
            vec![
                Value::Int64(i as i64 * 7),
                code.clone().map_or(Value::Null, Value::Text),
                qty.map_or(Value::Null, Value::Int32),
                note.clone().map_or(Value::Null, Value::Text),
            ]
        })
        .collect();
    Fixture { table: info, rows }
}

fn step(i: u8) -> Arc<dyn Transform> {
    let data = Arc::new(Reference::from_pairs(
        ["a", "b", "1"].map(|c| (vec![Value::Text(c.into())], vec![Value::Int64(7)])),
    ));
    match i % 7 {
        0 => Arc::new(Convert::new("code", DataType::Int32, OnError::Reject)),
        1 => Arc::new(Compute::expr(
            "total",
            "qty * 2 + length(coalesce(note, ''))",
            None,
        )),
        2 => Arc::new(Filter::new("qty IS NULL OR qty % 4 <> 0")),
        3 => Arc::new(Mask::new(
            "note",
            MaskKind::hash_with(b"executor-property-key"),
        )),
        4 => Arc::new(Map::rename([("note", "remark")])),
        5 => Arc::new(Convert::new(
            "note",
            DataType::Text { max_len: Some(2) },
            OnError::Null,
        )),
        _ => Arc::new(Lookup::new(
            ["code"],
            vec![Column::new("hit", DataType::Int64)],
            data,
            OnMiss::Reject,
        )),
    }
}

fn chain(steps: &[u8]) -> Chain {
    let mut c = Chain::new();
    for s in steps {
        c.push(step(*s));
    }
    c
}

fn config(name: &str) -> ExecutorConfig {
    ExecutorConfig {
        migration: name.into(),
        chunk_rows: 16,
        parallelism: 2,
        retry: migrate_core::retry::RetryConfig {
            initial_delay: std::time::Duration::from_millis(1),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs the chain over `fx` into `sink`; checks the counts, the rejected records and
/// verification; returns the rows the target got.
async fn check(
    fx: &Fixture,
    chain: Chain,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    name: &str,
) -> Result<(), TestCaseError> {
    // What the chain alone makes of the rows: the expectation.
    let alone = chain
        .apply(migrate_core::Batch::new(
            fx.table.schema.clone(),
            fx.rows.clone(),
        ))
        .unwrap();
    let report = Migration::new(source, sink, store.clone())
        .with_config(config(name))
        .with_transform(Some(table()), Arc::new(chain))
        .run()
        .await
        .unwrap();
    prop_assert!(report.succeeded(), "{}", report.to_markdown());
    prop_assert!(report.verification.passed, "{}", report.to_markdown());
    let written = report.results[0].rows;
    prop_assert_eq!(written, alone.batch.len() as u64);
    prop_assert_eq!(
        written + alone.rejected.len() as u64 + alone.filtered,
        fx.rows.len() as u64,
        "rows out = rows in − filtered − rejected"
    );
    let run = store.latest_run(name).await.unwrap().unwrap();
    let recorded = store.rejected(&run.id).await.unwrap();
    prop_assert_eq!(
        recorded.len(),
        alone.rejected.len(),
        "each rejected row once"
    );
    prop_assert_eq!(report.progress.failed_records, alone.rejected.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_chain_through_the_executor_verifies(
        rows in prop::collection::vec(
            (
                prop::option::of("[ab1-3]{0,2}"),
                prop::option::of(-500i32..500),
                prop::option::of("\\PC{0,3}"),
            ),
            0..70,
        ),
        steps in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let fx = fixture(&rows);
        let chain = chain(&steps);
        if chain.output_schema(&fx.table.schema).is_err() {
            return Ok(());
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let faults = Arc::new(Faults::new());
            // A chunk written again after a failure rejects its rows again: recorded once.
            faults.fail_nth(Op::Write, 2, ErrorKind::Transient);
            let source = Arc::new(MemorySource::with_fixtures(std::slice::from_ref(&fx), faults.clone()));
            let sink = Arc::new(MemorySink::new(faults));
            let store = Arc::new(MemoryCheckpointStore::new());
            check(&fx, chain, source, sink, store, "prop").await
        })?;
    }
}

/// The same on Postgres, for chains covering every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_through_postgres_verify() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let rows: Vec<(Option<String>, Option<i32>, Option<String>)> = (0..120)
        .map(|i| {
            (
                (i % 5 != 0).then(|| ["a", "1", "2", "b", "zz"][i % 5].to_string()),
                (i % 7 != 0).then_some(i as i32 * 3 - 100),
                (i % 3 != 0).then(|| format!("nöte {i}")),
            )
        })
        .collect();
    let fx = fixture(&rows);
    for (n, steps) in [vec![0, 1, 2], vec![3, 5, 4], vec![6, 1], vec![5, 0, 2, 3]]
        .iter()
        .enumerate()
    {
        let src = fresh_db(&admin, &format!("migrate_t_trx_src{n}")).await;
        let dst = fresh_db(&admin, &format!("migrate_t_trx_dst{n}")).await;
        load(&src, &fx).await;
        let source: Arc<dyn Source> = Arc::new(PgSource::new(&src).unwrap());
        let sink: Arc<dyn Sink> = Arc::new(PgSink::new(&dst).unwrap());
        let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
        check(&fx, chain(steps), source, sink, store, &format!("pg{n}"))
            .await
            .unwrap();
    }
}

/// A fresh database `name` next to `admin`'s; its URL.
async fn fresh_db(admin: &str, name: &str) -> String {
    let (c, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        c.batch_execute(&sql).await.unwrap();
    }
    let base = admin.split('?').next().unwrap();
    format!("{}/{name}", &base[..base.rfind('/').unwrap()])
}

/// The fixture's table, created and filled through the sink.
async fn load(url: &str, fx: &Fixture) {
    let sink = PgSink::new(url).unwrap();
    let opts = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&fx.table, &opts, &RunId::generate())
        .await
        .unwrap();
    let chunk = ChunkSpec::whole_table(fx.table.name.clone(), fx.rows.len() as u64);
    let mut rows = VecBatchReader::from_rows(fx.table.schema.clone(), fx.rows.clone(), 1000);
    sink.write_chunk(&fx.table, &chunk, &mut rows)
        .await
        .unwrap();
    sink.finalize(&fx.table).await.unwrap();
}

/// A keyless table's rejected rows could be named by nothing: the table fails rather than lose
/// them, while transforms that reject nothing still run on it.
#[tokio::test]
async fn a_keyless_table_fails_on_its_first_rejected_row() {
    let schema = Schema::new(
        vec![
            Column::new("code", DataType::text()),
            Column::new("note", DataType::text()),
        ],
        &[],
    )
    .unwrap();
    let fx = Fixture {
        table: TableInfo::new(table(), schema),
        rows: vec![
            vec![Value::Text("1".into()), Value::Null],
            vec![Value::Text("x".into()), Value::Text("n".into())],
        ],
    };
    let run = |steps: Chain, name: &'static str| {
        let fx = fx.clone();
        async move {
            let faults = Arc::new(Faults::new());
            Migration::new(
                Arc::new(MemorySource::with_fixtures(
                    std::slice::from_ref(&fx),
                    faults.clone(),
                )),
                Arc::new(MemorySink::new(faults)),
                Arc::new(MemoryCheckpointStore::new()),
            )
            .with_config(config(name))
            .with_transform(Some(table()), Arc::new(steps))
            .run()
            .await
            .unwrap()
        }
    };
    let masked = run(
        Chain::new().then(Mask::new("note", MaskKind::Null)),
        "keyless-ok",
    )
    .await;
    assert!(masked.succeeded(), "{}", masked.to_markdown());
    let rejecting = run(
        Chain::new().then(Convert::new("code", DataType::Int32, OnError::Reject)),
        "keyless-rejects",
    )
    .await;
    assert!(!rejecting.succeeded());
    let reason = rejecting.results[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("has no primary key"), "{reason}");
}

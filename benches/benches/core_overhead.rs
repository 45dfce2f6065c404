//! What migrate itself costs per row, with no database in the way: rows/s through the whole
//! executor (in-memory source → a transform → in-memory sink, checkpointing in memory) for
//! narrow and wide rows, and the MB/s of the per-value work every Postgres run does — COPY
//! BINARY decoding and encoding and the canonical checksum — and of the pass-through path that
//! replaces them for Postgres → Postgres (tuples cut undecoded, checksummed from the wire).
//!
//! ```text
//! cargo bench -p migrate-benches --bench core_overhead
//! ```

// A measuring harness: when a step fails, stopping loudly is the right behaviour.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use migrate_backend_postgres::copy_binary::{
    checksum_tuple, decode_tuple, RowSplitter, TupleDecoder, TupleEncoder,
};
use migrate_core::testing::{Faults, MemoryCheckpointStore, MemorySink, MemorySource};
use migrate_core::{
    Batch, Column, DataType, EncodedBatch, Encoding, ExecutorConfig, Migration, Result, Row,
    RowChecksum, RowCodec, Schema, TableInfo, TableName, Transform, TransformOutput, Value,
    POSTGRES_COPY_BINARY,
};
use tokio_postgres::types::Type;

/// Narrow: key, text, timestamp. Wide: key plus 29 columns cycling through the common types.
fn table(wide: bool, rows: usize) -> (TableInfo, Vec<Row>, Vec<Type>) {
    let cycle = [
        (DataType::text(), Type::TEXT),
        (DataType::Int64, Type::INT8),
        (
            DataType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            Type::NUMERIC,
        ),
        (DataType::TimestampTz, Type::TIMESTAMPTZ),
        (DataType::Bool, Type::BOOL),
        (DataType::Float64, Type::FLOAT8),
    ];
    let width = if wide { 30 } else { 3 };
    let mut columns = vec![Column::new("id", DataType::Int64).not_null()];
    let mut types = vec![Type::INT8];
    for i in 1..width {
        let (dt, ty) = if wide {
            cycle[(i - 1) % cycle.len()].clone()
        } else {
            [cycle[0].clone(), cycle[3].clone()][i - 1].clone()
        };
        columns.push(Column::new(format!("c{i}"), dt));
        types.push(ty);
    }
    let schema = Schema::new(columns, &["id"]).expect("schema");
    let data = (0..rows as i64)
        .map(|r| {
            let mut row = vec![Value::Int64(r)];
            for ty in &types[1..] {
                row.push(match *ty {
                    Type::TEXT => Value::Text(format!("customer {r} <c{r}@example.com>")),
                    Type::INT8 => Value::Int64(r * 7919),
                    Type::NUMERIC => Value::Decimal(
                        format!("{}.{:02}", r % 100_000, r % 100)
                            .parse()
                            .expect("decimal"),
                    ),
                    Type::TIMESTAMPTZ => Value::TimestampTz(1_700_000_000_000_000 + r * 1_000_003),
                    Type::BOOL => Value::Bool(r % 3 == 0),
                    _ => Value::Float64(r as f64 / 7.0),
                });
            }
            row
        })
        .collect();
    let name = if wide { "wide" } else { "narrow" };
    (
        TableInfo::new(TableName::new("bench", name), schema),
        data,
        types,
    )
}

/// A transform that touches every row (upper-cases the first text column), as a masking or
/// normalising step would.
struct Upper;

impl Transform for Upper {
    fn name(&self) -> &str {
        "upper"
    }
    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        Ok(input.clone())
    }
    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let schema = batch.schema().clone();
        let rows = batch
            .into_rows()
            .into_iter()
            .map(|mut row| {
                if let Some(Value::Text(s)) = row.get_mut(1) {
                    s.make_ascii_uppercase();
                }
                row
            })
            .collect();
        Ok(TransformOutput::passed(Batch::new(schema, rows)))
    }
}

fn executor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("executor");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (wide, rows) in [(false, 200_000), (true, 40_000)] {
        let (info, data, _) = table(wide, rows);
        let source = Arc::new(MemorySource::new(Arc::new(Faults::default())));
        source.add_table(info.clone(), data);
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_function(
            format!("{} rows, {} columns", rows, info.schema.columns.len()),
            |b| {
                b.iter_batched(
                    || {
                        let sink = Arc::new(MemorySink::new(Arc::new(Faults::default())));
                        let store = Arc::new(MemoryCheckpointStore::new());
                        let mut config = ExecutorConfig {
                            migration: "bench".into(),
                            parallelism: 2,
                            chunk_rows: 20_000,
                            ..Default::default()
                        };
                        config.verify.checksums = false;
                        config.verify.sample_size = 0;
                        Migration::new(source.clone(), sink, store)
                            .with_config(config)
                            .with_transform(None, Arc::new(Upper))
                    },
                    |m| {
                        let report = rt.block_on(m.run()).expect("run");
                        assert!(report.succeeded());
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

fn per_value(c: &mut Criterion) {
    for wide in [false, true] {
        let (info, rows, types) = table(wide, 20_000);
        let label = if wide { "30 columns" } else { "3 columns" };
        let mut enc = TupleEncoder::new();
        for r in &rows {
            enc.row(r, &types).expect("encode");
        }
        enc.finish();
        let wire: Bytes = enc.take();
        // Postgres sends one row per message; feed it the same way.
        let messages: Vec<Bytes> = split_messages(&wire, &types);
        let mut g = c.benchmark_group(format!("per value ({label})"));
        g.sample_size(20);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function("COPY BINARY decode", |b| {
            b.iter(|| {
                let mut d = TupleDecoder::new(types.clone());
                let mut out = Vec::with_capacity(rows.len());
                for m in &messages {
                    d.feed(m, &mut out).expect("decode");
                }
                assert_eq!(out.len(), rows.len());
                out
            })
        });
        g.bench_function("COPY BINARY encode", |b| {
            b.iter(|| {
                let mut e = TupleEncoder::new();
                for r in &rows {
                    e.row(r, &types).expect("encode");
                }
                e.finish();
                e.take()
            })
        });
        g.bench_function("canonical checksum", |b| {
            b.iter(|| RowChecksum::of_rows(&rows))
        });
        // The pass-through path: tuples cut out of the stream undecoded, and the checksum
        // computed from them.
        g.bench_function("COPY BINARY split (undecoded)", |b| {
            b.iter(|| {
                let mut s = RowSplitter::new(types.len());
                for m in &messages {
                    s.feed(m).expect("split");
                }
                assert_eq!(s.rows(), rows.len());
                s.take()
            })
        });
        let mut s = RowSplitter::new(types.len());
        s.feed(&wire).expect("split");
        let (tuples, ends) = s.take();
        let encoding = Arc::new(Encoding {
            format: POSTGRES_COPY_BINARY,
            column_types: types.iter().map(Type::oid).collect(),
            codec: Arc::new(WireCodec(types.clone())),
        });
        let batch = EncodedBatch::new(encoding, tuples, ends);
        g.bench_function("canonical checksum from the wire", |b| {
            b.iter(|| {
                let mut c = RowChecksum::new();
                c.add_encoded(&batch).expect("checksum");
                assert_eq!(c.count, rows.len() as u64);
                c
            })
        });
        g.finish();
        drop(info);
    }
}

/// Reads tuples the way the Postgres reader's codec does.
struct WireCodec(Vec<Type>);

impl RowCodec for WireCodec {
    fn decode_row(&self, row: &[u8]) -> Result<Row> {
        decode_tuple(&self.0, row)
            .map_err(|e| migrate_core::Error::validation(e.source.to_string()))
    }
    fn checksum_text(&self, row: &[u8], out: &mut String) -> Result<()> {
        checksum_tuple(&self.0, row, out)
            .map_err(|e| migrate_core::Error::validation(e.source.to_string()))
    }
}

/// Splits an encoded stream into per-row messages (header with the first row, trailer with
/// the last), the way Postgres frames COPY TO output.
fn split_messages(wire: &Bytes, types: &[Type]) -> Vec<Bytes> {
    let mut cuts = vec![0];
    let mut at = 19; // header
    loop {
        let fields = i16::from_be_bytes([wire[at], wire[at + 1]]);
        if fields == -1 {
            break;
        }
        at += 2;
        for _ in types {
            let len = i32::from_be_bytes(wire[at..at + 4].try_into().expect("4 bytes"));
            at += 4 + len.max(0) as usize;
        }
        cuts.push(at);
    }
    let last = cuts.len() - 1;
    cuts[last] = wire.len();
    cuts.windows(2).map(|w| wire.slice(w[0]..w[1])).collect()
}

/// The planner alone on 10,000 tables: a binary tree of foreign keys (wide and 14 deep) and a
/// single chain (10,000 deep).
fn planner(c: &mut Criterion) {
    use migrate_core::plan::{plan, Constraints, PlanTable, Priority};
    let mut g = c.benchmark_group("plan 10,000 tables");
    g.sample_size(10);
    for (shape, parent) in [
        ("tree", (|i: usize| i / 2) as fn(usize) -> usize),
        ("chain", |i: usize| i - 1),
    ] {
        let tables: Vec<PlanTable> = (1..=10_000usize)
            .map(|i| PlanTable {
                name: TableName::new("public", format!("t{i}")),
                rows: 1_000 * i as u64,
                bytes: 100_000 * i as u64,
                depends_on: if i > 1 {
                    vec![TableName::new("public", format!("t{}", parent(i)))]
                } else {
                    vec![]
                },
                priority: Priority::default(),
                measured_bytes_per_sec: None,
            })
            .collect();
        g.bench_function(shape, |b| {
            b.iter(|| plan(&tables, &Constraints::default()).expect("plan"))
        });
    }
    g.finish();
}

criterion_group!(benches, executor, per_value, planner);
criterion_main!(benches);

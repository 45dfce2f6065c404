//! Every supported type survives Postgres → migrate → Postgres exactly, and the checksum
//! Postgres computes equals migrate-core's for the same rows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::testing::{all_types_table, Fixture};
use migrate_core::{
    collect_rows, BatchReader, ChunkSpec, Column, DataType, Decimal, KeyRange, PrepareOptions,
    RowChecksum, Schema, Sink, Source, TableFilter, TableInfo, TableName, Value,
};

fn extremes() -> Fixture {
    let schema = Schema::new(
        vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new(
                "big",
                DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            Column::new(
                "tiny",
                DataType::Decimal {
                    precision: Some(60),
                    scale: Some(50),
                },
            ),
            Column::new("at", DataType::TimestampTz),
            Column::new("local", DataType::Timestamp),
            Column::new("day", DataType::Date),
            Column::new("label", DataType::text()),
            Column::new("code", DataType::Text { max_len: Some(4) }),
            Column::new("blob", DataType::Bytes),
            Column::new("ints", DataType::Array(Box::new(DataType::Int32))),
            Column::new("words", DataType::Array(Box::new(DataType::text()))),
            Column::new("n16", DataType::Int16),
            Column::new("flag", DataType::Bool),
            Column::new("u", DataType::Uuid),
        ],
        &["id"],
    )
    .unwrap();
    let dec = |s: &str| Value::Decimal(s.parse::<Decimal>().unwrap());
    let rows = vec![
        vec![
            Value::Int64(i64::MIN),
            dec(&format!("-{}.{}", "7".repeat(45), "3".repeat(40))),
            dec(&format!("0.{}1", "0".repeat(49))),
            Value::TimestampTz(-2_208_988_800_000_001), // 1899-12-31 23:59:59.999999
            Value::Timestamp(4_102_444_800_123_456),    // 2100-01-01
            Value::Date(-40_000),
            Value::Text("Zürich – 東京 – 🚀 – \\ ' \" \t".into()),
            Value::Text(String::new()),
            Value::Bytes((0..=255).collect()),
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(i32::MIN)]),
            Value::Array(vec![
                Value::Null,
                Value::Text(String::new()),
                Value::Text("a\"b,c{}".into()),
            ]),
            Value::Int16(i16::MIN),
            Value::Bool(false),
            Value::Uuid([0xff; 16]),
        ],
        vec![
            Value::Int64(i64::MAX),
            dec("0"),
            dec("-0.00000000000000000000000000000000000000000000000001"),
            Value::TimestampTz(2_147_483_648_000_000), // 2038-01-19 03:14:08, past the 32-bit limit
            Value::Timestamp(-62_135_596_800_000_000), // 0001-01-01
            Value::Date(2_932_896),                    // 9999-12-31
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Array(vec![]),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ];
    let mut t = TableInfo::new(TableName::new("types", "extremes"), schema);
    t.estimated_rows = 2;
    Fixture { table: t, rows }
}

async fn round_trip(url: &str, f: &Fixture) {
    common::load(url, std::slice::from_ref(f)).await;
    let source = PgSource::new(url).unwrap();
    let found = source
        .discover(&TableFilter {
            include: vec![f.table.name.to_string()],
            exclude: vec![],
            ..Default::default()
        })
        .await
        .unwrap();
    let t = &found[0];
    for (got, want) in t.schema.columns.iter().zip(&f.table.schema.columns) {
        assert_eq!(
            got.data_type, want.data_type,
            "discovered type of {}",
            want.name
        );
    }
    let mut reader = source
        .read_chunk(t, &ChunkSpec::whole_table(t.name.clone(), 0), 1)
        .await
        .unwrap();
    let mut got = collect_rows(&mut *reader).await.unwrap();
    let key = |r: &Vec<Value>| r[0].clone();
    got.sort_by(|a, b| key(a).cmp_key(&key(b)));
    let mut want = f.rows.clone();
    want.sort_by(|a, b| key(a).cmp_key(&key(b)));
    for (g, w) in got.iter().zip(&want) {
        for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
            let same = match (gv, wv) {
                // Decimals compare by value and scale: the column's scale pads.
                (Value::Decimal(a), Value::Decimal(b)) => a == b,
                _ => gv == wv,
            };
            assert!(
                same,
                "{}.{}: read {gv:?}, wrote {wv:?}",
                f.table.name, f.table.schema.columns[i].name
            );
        }
    }
    assert_eq!(got.len(), want.len());
    let expected = RowChecksum::of_rows(&f.rows);
    assert_eq!(
        source.checksum(t, &KeyRange::all()).await.unwrap(),
        expected,
        "source checksum of {}",
        f.table.name
    );
    let sink = PgSink::new(url).unwrap();
    assert_eq!(
        sink.checksum(t, &KeyRange::all()).await.unwrap(),
        expected,
        "sink checksum of {}",
        f.table.name
    );
    encoded_path(url, &source, t, &got, expected).await;
}

/// The same chunk read undecoded: the tuples decode to the same rows, their checksum (text
/// read straight from the wire) is the decoded rows', and a sink whose target has the same
/// wire types forwards them into a table that then holds exactly the source's rows.
async fn encoded_path(
    url: &str,
    source: &PgSource,
    t: &TableInfo,
    decoded: &[Vec<Value>],
    expected: RowChecksum,
) {
    let chunk = ChunkSpec::whole_table(t.name.clone(), 0);
    let mut reader = source.read_chunk(t, &chunk, 1).await.unwrap();
    assert!(
        reader.encoding().is_some(),
        "the Postgres reader offers tuples"
    );
    let (mut rows, mut checksum) = (Vec::new(), RowChecksum::new());
    while let Some(b) = reader.next_encoded().await.unwrap() {
        assert_eq!(b.len(), 1, "one row per batch, as asked");
        checksum.add_encoded(&b).unwrap();
        rows.extend(b.decode().unwrap());
    }
    let key = |r: &Vec<Value>| r[0].clone();
    rows.sort_by(|a, b| key(a).cmp_key(&key(b)));
    assert_eq!(rows, decoded, "{}: encoded rows decode alike", t.name);
    assert_eq!(checksum, expected, "{}: checksum from the wire", t.name);

    // Forwarded into a copy of the table in another schema of the same database.
    let copy = TableInfo {
        name: TableName::new("types_copy", &t.name.name),
        ..t.clone()
    };
    common::client(url)
        .await
        .batch_execute("CREATE SCHEMA IF NOT EXISTS types_copy")
        .await
        .unwrap();
    let sink = PgSink::new(url).unwrap();
    sink.prepare(
        &copy,
        &PrepareOptions::default(),
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();
    let mut reader = Only {
        inner: source.read_chunk(t, &chunk, 1000).await.unwrap(),
        encoded: true,
    };
    let stats = sink.write_chunk(&copy, &chunk, &mut reader).await.unwrap();
    assert_eq!(stats.rows, decoded.len() as u64);
    sink.finalize(&copy).await.unwrap();
    assert_eq!(
        sink.checksum(&copy, &KeyRange::all()).await.unwrap(),
        expected,
        "{}: checksum of the forwarded copy",
        t.name
    );
    let copies = PgSource::new(url).unwrap();
    let found = copies
        .discover(&TableFilter {
            include: vec![copy.name.to_string()],
            exclude: vec![],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut back = copies.read_chunk(&found[0], &chunk, 1000).await.unwrap();
    let mut back = collect_rows(&mut *back).await.unwrap();
    back.sort_by(|a, b| key(a).cmp_key(&key(b)));
    assert_eq!(
        back, decoded,
        "{}: the forwarded copy reads back alike",
        t.name
    );
}

/// A reader that lets its consumer read one way only: encoded tuples or decoded batches (the
/// other fails the test), to prove which path a sink took.
struct Only {
    inner: Box<dyn BatchReader>,
    encoded: bool,
}

#[async_trait::async_trait]
impl BatchReader for Only {
    fn schema(&self) -> &std::sync::Arc<Schema> {
        self.inner.schema()
    }
    async fn next_batch(&mut self) -> migrate_core::Result<Option<migrate_core::Batch>> {
        assert!(
            !self.encoded,
            "the sink decoded rows it could have forwarded"
        );
        self.inner.next_batch().await
    }
    fn encoding(&self) -> Option<&std::sync::Arc<migrate_core::Encoding>> {
        self.inner.encoding()
    }
    async fn next_encoded(&mut self) -> migrate_core::Result<Option<migrate_core::EncodedBatch>> {
        assert!(
            self.encoded,
            "the sink forwarded tuples of other wire types"
        );
        self.inner.next_encoded().await
    }
}

#[tokio::test]
async fn a_target_with_other_wire_types_gets_decoded_rows() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_wire_types").await;
    common::client(&url)
        .await
        .batch_execute(
            "CREATE TABLE narrow (id int4 PRIMARY KEY, n int2, label varchar(10));
             INSERT INTO narrow SELECT g, g, 'row ' || g FROM generate_series(1, 50) g;
             CREATE SCHEMA wide;
             CREATE TABLE wide.narrow (id bigint PRIMARY KEY, n int4, label text);",
        )
        .await
        .unwrap();
    let source = PgSource::new(&url).unwrap();
    let t = source
        .discover(&TableFilter {
            include: vec!["public.narrow".into()],
            exclude: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    let target = TableInfo {
        name: TableName::new("wide", "narrow"),
        ..t.clone()
    };
    let sink = PgSink::new(&url).unwrap();
    let chunk = ChunkSpec::whole_table(t.name.clone(), 0);
    let mut reader = Only {
        inner: source.read_chunk(&t, &chunk, 7).await.unwrap(),
        encoded: false,
    };
    let stats = sink
        .write_chunk(&target, &chunk, &mut reader)
        .await
        .unwrap();
    assert_eq!(stats.rows, 50);
    let want = source.checksum(&t, &KeyRange::all()).await.unwrap();
    assert_eq!(
        sink.checksum(&target, &KeyRange::all()).await.unwrap(),
        want
    );
}

#[tokio::test]
async fn every_supported_type_round_trips_with_extremes() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_types").await;
    round_trip(&url, &all_types_table(Some("types"), &[])).await;
    round_trip(&url, &extremes()).await;
}

#[tokio::test]
async fn the_checksum_postgres_computes_equals_the_cores() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_checksum").await;
    // Only types with an exact SQL rendering: this exercises the server-side path.
    let mut f = extremes();
    let keep = [
        "id", "big", "tiny", "at", "local", "day", "label", "code", "blob", "n16", "flag", "u",
    ];
    let idx: Vec<usize> = keep
        .iter()
        .map(|k| f.table.schema.index_of(k).unwrap())
        .collect();
    let cols: Vec<Column> = idx
        .iter()
        .map(|&i| f.table.schema.columns[i].clone())
        .collect();
    f.rows = f
        .rows
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
        .collect();
    f.table = TableInfo {
        schema: std::sync::Arc::new(Schema::new(cols, &["id"]).unwrap()),
        ..f.table
    };
    common::load(&url, std::slice::from_ref(&f)).await;
    let source = PgSource::new(&url).unwrap();
    let t = &source.discover(&TableFilter::default()).await.unwrap()[0];
    let server = source.checksum(t, &KeyRange::all()).await.unwrap();
    assert_eq!(server, RowChecksum::of_rows(&f.rows));
    // And over a sub-range.
    let r = KeyRange::between(Some(vec![Value::Int64(0)]), None);
    assert_eq!(
        source.checksum(t, &r).await.unwrap(),
        RowChecksum::of_rows(&f.rows[1..])
    );
    let c = common::client(&url).await;
    c.batch_execute("UPDATE types.extremes SET label = 'changed' WHERE id > 0")
        .await
        .unwrap();
    // The source reads in its exported snapshot: it still sees the rows as they were.
    assert_eq!(
        source.checksum(t, &r).await.unwrap(),
        RowChecksum::of_rows(&f.rows[1..]),
        "snapshot isolation"
    );
    // A new source sees the change, computed server-side.
    let fresh = PgSource::new(&url).unwrap();
    assert_ne!(
        fresh.checksum(t, &r).await.unwrap(),
        RowChecksum::of_rows(&f.rows[1..]),
        "a changed value changes the server-side checksum"
    );
}

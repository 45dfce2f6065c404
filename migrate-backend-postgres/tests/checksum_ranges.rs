//! Verification reads a table once and sorts its rows into the chunk ranges: the figures must
//! be those of checksumming each range on its own, on the source and on the sink, whatever the
//! key (composite, text under a linguistic collation) and the column types.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::{admin_url, client, fresh_db};
use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::{KeyRange, RowChecksum, Sink, Source, TableFilter, TableInfo};

async fn table(source: &PgSource, name: &str) -> TableInfo {
    source
        .discover(&TableFilter {
            include: vec![format!("public.{name}")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} discovered"))
}

/// Per-range figures on both sides, against the one-pass ones; returns the one-pass figures.
async fn compare(source: &PgSource, sink: &PgSink, t: &TableInfo) -> Vec<RowChecksum> {
    let ranges: Vec<KeyRange> = source
        .chunks(t, 7)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.range)
        .collect();
    assert!(ranges.len() > 3, "{}: {} ranges", t.name, ranges.len());
    let mut one_by_one = Vec::new();
    for r in &ranges {
        let s = source.checksum(t, r).await.unwrap();
        assert_eq!(sink.checksum(t, r).await.unwrap(), s, "{} {r}", t.name);
        one_by_one.push(s);
    }
    let from_source = source.checksum_ranges(t, &ranges).await.unwrap();
    let from_sink = sink.checksum_ranges(t, &ranges).await.unwrap();
    assert_eq!(from_source, one_by_one, "{}: source, one pass", t.name);
    assert_eq!(from_sink, one_by_one, "{}: sink, one pass", t.name);
    // Every row lands in exactly one range.
    let mut all = RowChecksum::new();
    from_sink.iter().for_each(|c| all.merge(c));
    assert_eq!(
        all,
        sink.checksum(t, &KeyRange::all()).await.unwrap(),
        "{}",
        t.name
    );
    from_sink
}

#[tokio::test]
async fn one_pass_range_checksums_equal_per_range_ones() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_db(&admin, "migrate_checksum_ranges").await;
    let c = client(&url).await;
    // A linguistic collation orders 'a' < 'B' < 'É' < 'z'; bytes order 'B' < 'a' < 'z' < 'É'.
    let icu: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let collate = if icu { "COLLATE \"und-x-icu\"" } else { "" };
    c.batch_execute(&format!(
        "CREATE TABLE words (w text {collate} PRIMARY KEY, n numeric, at timestamptz, tags text[], doc jsonb);
         INSERT INTO words
           SELECT w || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 hour',
                  CASE WHEN g % 3 = 0 THEN NULL ELSE ARRAY['x', w] END,
                  CASE WHEN g % 4 = 0 THEN NULL ELSE jsonb_build_object('g', g) END
             FROM unnest(ARRAY['a', 'B', 'c', 'É', 'z', 'ä', 'Zebra', '']) w, generate_series(1, 9) g;
         CREATE TABLE pairs (a int, b text {collate}, v double precision, raw bytea, PRIMARY KEY (a, b));
         INSERT INTO pairs
           SELECT g % 5, chr(65 + g % 7) || chr(97 + g % 11) || g, g / 7.0, decode(md5(g::text), 'hex')
             FROM generate_series(1, 200) g;
         CREATE TABLE ids (id bigint PRIMARY KEY, note text);
         INSERT INTO ids SELECT g * 3, CASE WHEN g % 2 = 0 THEN 'even' END FROM generate_series(1, 100) g;"
    ))
    .await
    .unwrap();
    let source = PgSource::new(&url).unwrap();
    let sink = PgSink::new(&url).unwrap();
    for name in ["words", "pairs", "ids"] {
        let t = table(&source, name).await;
        let sums = compare(&source, &sink, &t).await;
        let rows: i64 = c
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(sums.iter().map(|s| s.count).sum::<u64>(), rows as u64);
    }

    // A changed value moves exactly its range's figure.
    let t = table(&source, "ids").await;
    let ranges: Vec<KeyRange> = source
        .chunks(&t, 7)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.range)
        .collect();
    let before = sink.checksum_ranges(&t, &ranges).await.unwrap();
    c.batch_execute("UPDATE ids SET note = 'changed' WHERE id = 150")
        .await
        .unwrap();
    let after = sink.checksum_ranges(&t, &ranges).await.unwrap();
    let moved: Vec<usize> = (0..ranges.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    let holds = |i: &usize| ranges[*i].contains(&[migrate_core::Value::Int64(150)]);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(holds(&moved[0]));

    // A table the target lacks is NotFound, as for a single range.
    sink_missing(&sink, &t).await;
}

async fn sink_missing(sink: &PgSink, t: &TableInfo) {
    let mut gone = t.clone();
    gone.name.name = "not_there".into();
    let e = sink
        .checksum_ranges(&gone, &[KeyRange::all()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), migrate_core::ErrorKind::NotFound, "{e}");
}

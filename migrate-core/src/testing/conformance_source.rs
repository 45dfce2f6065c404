//! The suite every [`Source`] passes: discovery, chunks that partition the key space, chunk
//! reads, checksums, bounded batches and (when supported) incremental reads.

use std::collections::HashMap;

use super::fixtures::{fixture_tables, keyless_table, Fixture};
use crate::batch::Row;
use crate::checksum::RowChecksum;
use crate::chunk::KeyRange;
use crate::schema::TableInfo;
use crate::source::{Source, TableFilter};
use crate::value::KeyDisplay;

/// How to run the source suite against one backend.
#[derive(Debug, Clone, Default)]
pub struct SourceSuite {
    /// Schema / dataset holding the fixtures.
    pub namespace: Option<String>,
    /// Whether discovered column types must equal the fixture's exactly (false for engines
    /// whose type systems are coarser, e.g. BigQuery's INT64 for every integer).
    pub exact_types: bool,
}

/// The tables a source must hold for the suite: [`fixture_tables`] with `customers` rows and
/// [`keyless_table`], in `namespace`. Load them with the backend's own tools, then run
/// [`source_conformance`].
pub fn source_fixtures(namespace: Option<&str>) -> Vec<Fixture> {
    let mut f = fixture_tables(namespace, 95);
    f.push(keyless_table(namespace, 12));
    f
}

/// Runs the source contract against a source holding [`source_fixtures`]. Panics with a message
/// naming the broken rule.
pub async fn source_conformance(source: &dyn Source, suite: &SourceSuite) {
    let kind = source.kind();
    let fixtures = source_fixtures(suite.namespace.as_deref());
    let filter = TableFilter {
        include: fixtures.iter().map(|f| f.table.name.to_string()).collect(),
        exclude: vec![],
        ..Default::default()
    };
    let found = source
        .discover(&filter)
        .await
        .unwrap_or_else(|e| panic!("{kind}: discover: {e}"));
    let by_name: HashMap<String, &TableInfo> =
        found.iter().map(|t| (t.name.to_string(), t)).collect();
    assert_eq!(
        found.len(),
        fixtures.len(),
        "{kind}: discover finds exactly the included tables: {:?}",
        by_name.keys()
    );
    let none = TableFilter {
        include: vec!["no_such_schema.*".into()],
        exclude: vec![],
        ..Default::default()
    };
    assert!(
        source
            .discover(&none)
            .await
            .map(|v| v.is_empty())
            .unwrap_or(false),
        "{kind}: filters apply"
    );

    for f in &fixtures {
        let name = f.table.name.to_string();
        let t = by_name
            .get(&name)
            .unwrap_or_else(|| panic!("{kind}: table {name} not discovered"));
        let got: Vec<&str> = t.schema.columns.iter().map(|c| c.name.as_str()).collect();
        let want: Vec<&str> = f
            .table
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(got, want, "{kind}: columns of {name}");
        assert_eq!(
            t.primary_key(),
            f.table.primary_key(),
            "{kind}: primary key of {name}"
        );
        if suite.exact_types {
            for (g, w) in t.schema.columns.iter().zip(&f.table.schema.columns) {
                assert_eq!(
                    g.data_type, w.data_type,
                    "{kind}: type of {name}.{}",
                    w.name
                );
                assert_eq!(
                    g.nullable, w.nullable,
                    "{kind}: nullability of {name}.{}",
                    w.name
                );
            }
        }
        let want_fks: Vec<String> = f
            .table
            .foreign_keys
            .iter()
            .map(|k| k.referenced_table.to_string())
            .collect();
        let got_fks: Vec<String> = t
            .foreign_keys
            .iter()
            .map(|k| k.referenced_table.to_string())
            .collect();
        assert_eq!(got_fks, want_fks, "{kind}: foreign keys of {name}");
        check_chunks(source, t, &f.rows).await;
    }
}

async fn check_chunks(source: &dyn Source, t: &TableInfo, rows: &[Row]) {
    let kind = source.kind();
    let name = &t.name;
    let chunks = source
        .chunks(t, 20)
        .await
        .unwrap_or_else(|e| panic!("{kind}: chunks of {name}: {e}"));
    assert!(!chunks.is_empty(), "{kind}: {name} has at least one chunk");
    if t.schema.primary_key.is_empty() {
        assert_eq!(chunks.len(), 1, "{kind}: a keyless table is one chunk");
        assert!(
            chunks[0].range.is_all(),
            "{kind}: the keyless chunk covers the whole table"
        );
    } else {
        assert!(
            chunks.len() >= 2,
            "{kind}: {name} with {} rows splits at 20 rows per chunk",
            rows.len()
        );
    }
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(
            c.index as usize, i,
            "{kind}: chunks of {name} are numbered from 0 in order"
        );
        assert_eq!(&c.table, name);
    }
    assert!(
        chunks[0].range.lower.is_none(),
        "{kind}: the first chunk of {name} is open below"
    );
    assert!(
        chunks[chunks.len() - 1].range.upper.is_none(),
        "{kind}: the last chunk of {name} is open above"
    );
    for w in chunks.windows(2) {
        assert_eq!(
            w[0].range.upper, w[1].range.lower,
            "{kind}: chunks of {name} are contiguous"
        );
    }

    let mut seen: Vec<Row> = Vec::new();
    let mut total = RowChecksum::new();
    for c in &chunks {
        let mut reader = source
            .read_chunk(t, c, 7)
            .await
            .unwrap_or_else(|e| panic!("{kind}: read chunk {} of {name}: {e}", c.index));
        let mut got = Vec::new();
        while let Some(b) = reader
            .next_batch()
            .await
            .unwrap_or_else(|e| panic!("{kind}: reading {name}: {e}"))
        {
            assert!(b.len() <= 7, "{kind}: batches hold at most batch_rows rows");
            got.extend(b.into_rows());
        }
        for r in &got {
            let key = t.schema.key_of(r);
            assert!(
                c.range.is_all() || c.range.contains(&key),
                "{kind}: row {} of {name} outside chunk {}",
                KeyDisplay(&key),
                c.index
            );
        }
        let read_sum = RowChecksum::of_rows(&got);
        let server_sum = source
            .checksum(t, &c.range)
            .await
            .unwrap_or_else(|e| panic!("{kind}: checksum of {name} chunk {}: {e}", c.index));
        assert_eq!(
            server_sum, read_sum,
            "{kind}: checksum of {name} chunk {} equals the rows read",
            c.index
        );
        total.merge(&read_sum);
        seen.extend(got);
    }
    assert_eq!(
        seen.len(),
        rows.len(),
        "{kind}: every row of {name} read exactly once"
    );
    assert_eq!(
        total,
        RowChecksum::of_rows(rows),
        "{kind}: the rows of {name} read equal the fixture"
    );
    assert_eq!(
        source
            .checksum(t, &KeyRange::all())
            .await
            .unwrap_or_else(|e| panic!("{kind}: checksum {name}: {e}")),
        total,
        "{kind}: whole-table checksum of {name}"
    );
}

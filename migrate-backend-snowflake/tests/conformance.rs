//! `SfSink` against the shared sink suite, on fakesnow: prepare (per run, existing rows
//! refused, merged or replaced, backed up by a clone), chunk transactions that converge however
//! often they run, checksums equal to migrate's figure, every type Snowflake holds, rollback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_snowflake::{Load, SfSink};
use migrate_core::testing::{sink_conformance, SinkSuite};
use migrate_core::DataType;

#[tokio::test]
async fn snowflake_sink_passes_the_sink_suite() {
    suite("MIGRATE_SINK_SUITE", Load::Bind).await;
}

/// The same suite with every chunk's rows gzipped, `PUT` to the stage and loaded by `COPY`.
#[tokio::test]
async fn snowflake_sink_passes_the_sink_suite_through_a_stage() {
    suite("MIGRATE_SINK_SUITE_STAGED", Load::Stage).await;
}

async fn suite(database: &str, load: Load) {
    let Some(endpoint) = common::endpoint(database, "SUITE") else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap().with_load(load);
    // The suite wants none of its tables there (an earlier run against the same emulator).
    sink.pool()
        .query(
            &format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"SUITE\""),
            &[],
        )
        .await
        .unwrap();
    for t in [
        "CUSTOMERS",
        "EVENTS_KEYLESS",
        "ALL_TYPES",
        "EXISTING_ROWS",
        "_MIGRATE_PREPARED",
    ] {
        sink.pool()
            .query(
                &format!("DROP TABLE IF EXISTS \"{database}\".\"SUITE\".\"{t}\""),
                &[],
            )
            .await
            .unwrap();
    }
    let suite = SinkSuite {
        namespace: Some("suite".into()),
        unsupported_types: vec![
            // Refused with the column named (see `types`): Snowflake has no interval column,
            // a bare NUMBER would drop fractions, and NUMBER stops at 38 digits.
            DataType::Interval,
            DataType::Decimal {
                precision: None,
                scale: None,
            },
            DataType::Decimal {
                precision: Some(76),
                scale: Some(38),
            },
        ],
    };
    sink_conformance(&sink, &suite).await;
}

#[tokio::test]
async fn the_emulator_lacks_the_md5_functions_so_checksums_stream() {
    use migrate_core::testing::fixture_tables;
    let Some(endpoint) = common::endpoint("MIGRATE_SINK_SUITE", "SUITE") else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap();
    let table = fixture_tables(Some("suite"), 1).swap_remove(0).table;
    let path = sink.checksum_path(&table).await.unwrap();
    assert!(
        path.starts_with("streamed and hashed by migrate")
            && path.contains("cannot run the checksum functions"),
        "{path}"
    );
}

#[tokio::test]
async fn two_source_tables_of_one_name_are_refused_not_mixed() {
    use migrate_core::{Column, PrepareOptions, RunId, Schema, Sink, TableInfo, TableName};
    let Some(endpoint) = common::endpoint("MIGRATE_SINK_SUITE", "NAMES") else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap();
    sink.pool()
        .query(
            "CREATE SCHEMA IF NOT EXISTS \"MIGRATE_SINK_SUITE\".\"NAMES\"",
            &[],
        )
        .await
        .unwrap();
    sink.pool()
        .query(
            "DROP TABLE IF EXISTS \"MIGRATE_SINK_SUITE\".\"NAMES\".\"DUPES\"",
            &[],
        )
        .await
        .unwrap();
    let table = |schema: &str| {
        let columns = vec![Column::new("id", DataType::Int64).not_null()];
        TableInfo::new(
            TableName::new(schema, "dupes"),
            Schema::new(columns, &["id"]).unwrap(),
        )
    };
    let run = RunId::generate();
    let first = sink
        .prepare(&table("public"), &PrepareOptions::default(), &run)
        .await
        .unwrap();
    assert!(first.created);
    // The same table again in the same run: the same answer.
    assert_eq!(
        sink.prepare(&table("public"), &PrepareOptions::default(), &run)
            .await
            .unwrap(),
        first
    );
    let e = sink
        .prepare(&table("sales"), &PrepareOptions::default(), &run)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), migrate_core::ErrorKind::Config);
    assert!(
        e.to_string().contains("public.dupes") && e.to_string().contains("sales.dupes"),
        "{e}"
    );
}

/// Workers sharing a run prepare one table at once — here a table holding rows the run
/// replaces, backed up first: one of them decides (one backup, the rows cleared once) and every
/// one gets that same answer; none decides again over the table the first one prepared.
#[tokio::test]
async fn workers_preparing_one_table_at_once_decide_once() {
    use migrate_core::{
        Column, ExistingRows, PrepareOptions, RunId, Schema, Sink, TableInfo, TableName,
    };
    // A schema of its own each time: backups of earlier runs would be counted.
    let schema = format!("RACE_{:08X}", fastrand::u32(..));
    let Some(endpoint) = common::endpoint("MIGRATE_SINK_SUITE", &schema) else {
        return;
    };
    let sink = SfSink::new(endpoint.clone()).unwrap();
    let qualified = format!("\"MIGRATE_SINK_SUITE\".\"{schema}\"");
    for sql in [
        format!("CREATE SCHEMA IF NOT EXISTS {qualified}"),
        format!("CREATE TABLE {qualified}.\"RACED\" (\"ID\" NUMBER(19, 0) NOT NULL PRIMARY KEY)"),
        format!("INSERT INTO {qualified}.\"RACED\" VALUES (1), (2), (3)"),
    ] {
        sink.pool().query(&sql, &[]).await.unwrap();
    }
    let table = TableInfo::new(
        TableName::new("public", "raced"),
        Schema::new(vec![Column::new("id", DataType::Int64).not_null()], &["id"]).unwrap(),
    );
    let options = PrepareOptions {
        existing_rows: ExistingRows::Replace,
        backup: true,
        ..Default::default()
    };
    let run = RunId::generate();
    let workers: Vec<SfSink> = (0..4)
        .map(|_| SfSink::new(endpoint.clone()).unwrap())
        .collect();
    let prepare = |i: usize| workers[i].prepare(&table, &options, &run);
    let (a, b, c, d) = tokio::join!(prepare(0), prepare(1), prepare(2), prepare(3));
    let first = a.unwrap();
    assert_eq!(first.existing_rows, Some(3), "{first:?}");
    assert!(first.backup.is_some(), "{first:?}");
    for other in [b, c, d] {
        assert_eq!(other.unwrap(), first, "every worker gets the one decision");
    }
    let backups = sink
        .pool()
        .query(
            &format!("SELECT COUNT(*) FROM \"MIGRATE_SINK_SUITE\".INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME LIKE 'RACED%' AND TABLE_NAME <> 'RACED'"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(backups.counted(&["count"]), 1, "one backup taken");
}

/// An existing table whose NUMBER column keeps fewer decimal places than the source's would
/// have Snowflake round every value, silently: refused before a row is written, naming it.
#[tokio::test]
async fn an_existing_number_column_that_would_round_is_refused() {
    use migrate_core::{
        Column, ExistingRows, PrepareOptions, RunId, Schema, Sink, TableInfo, TableName,
    };
    let schema = format!("NARROW_{:08X}", fastrand::u32(..));
    let Some(endpoint) = common::endpoint("MIGRATE_SINK_SUITE", &schema) else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap();
    let qualified = format!("\"MIGRATE_SINK_SUITE\".\"{schema}\"");
    for sql in [
        format!("CREATE SCHEMA IF NOT EXISTS {qualified}"),
        format!("CREATE TABLE {qualified}.\"PRICES\" (\"ID\" NUMBER(19, 0) NOT NULL PRIMARY KEY, \"AMOUNT\" NUMBER(10, 2))"),
    ] {
        sink.pool().query(&sql, &[]).await.unwrap();
    }
    let decimal = |p, s| DataType::Decimal {
        precision: Some(p),
        scale: Some(s),
    };
    let table = |scale| {
        TableInfo::new(
            TableName::new("public", "prices"),
            Schema::new(
                vec![
                    Column::new("id", DataType::Int64).not_null(),
                    Column::new("amount", decimal(12, scale)),
                ],
                &["id"],
            )
            .unwrap(),
        )
    };
    let options = PrepareOptions {
        existing_rows: ExistingRows::Merge,
        ..Default::default()
    };
    let e = sink
        .prepare(&table(4), &options, &RunId::generate())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), migrate_core::ErrorKind::Schema, "{e}");
    assert!(
        e.to_string().contains("AMOUNT") && e.to_string().contains("2 decimal places"),
        "{e}"
    );
    // As many places as the column keeps: taken as it is.
    sink.prepare(&table(2), &options, &RunId::generate())
        .await
        .unwrap();
}

//! The client against the fakesnow emulator: sign in, DDL, DML with its counts, bound
//! parameters, every column type read back from Arrow as migrate's values (NULLs included —
//! the emulator's NULL timestamps are the Arrow that arrow-rs refuses as it stands), a
//! transaction rolled back inside one session, and errors as their kinds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_backend_snowflake::{Binding, SfClient, SfEndpoint};
use migrate_core::decimal::Decimal;
use migrate_core::testing::service_env;
use migrate_core::{ErrorKind, Value};

/// A count as Snowflake types it (`NUMBER(38, 0)`: a decimal), as a number.
fn count(v: &Value) -> i64 {
    match v {
        Value::Decimal(d) => d.to_string().parse().unwrap(),
        Value::Int64(n) => *n,
        other => panic!("a count read as {other:?}"),
    }
}

/// A client on the emulator, in database `db`.
fn client(db: &str) -> Option<SfClient> {
    let url = service_env("MIGRATE_TEST_SNOWFLAKE_URL")?;
    let addr = url.trim_start_matches("http://");
    let (host, port) = addr.split_once(':').expect("host:port");
    let endpoint = SfEndpoint::from_url(&format!(
        "snowflake://migrate:unused@test/{db}/PUBLIC?host={host}&port={port}&protocol=http"
    ))
    .unwrap();
    Some(SfClient::new(endpoint).unwrap())
}

#[tokio::test]
async fn statements_run_and_every_type_reads_back() {
    let Some(c) = client("MIGRATE_CLIENT") else {
        return;
    };
    let s = c.session().await.unwrap();
    s.query(
        "CREATE OR REPLACE TABLE kinds (id NUMBER(19, 0), n NUMBER(12, 2), f FLOAT, t VARCHAR, \
         b BINARY, ok BOOLEAN, d DATE, tm TIME(6), ts TIMESTAMP_NTZ(6), tz TIMESTAMP_LTZ(6), v VARIANT)",
        &[],
    )
    .await
    .unwrap();
    let inserted = s
        .query(
            "INSERT INTO kinds SELECT 1, -12.34, 1.5, 'ünï 漢字', TO_BINARY('00ff10', 'HEX'), TRUE, \
             '2024-01-02'::DATE, '12:34:56.789012'::TIME, '2024-01-02 03:04:05.123456'::TIMESTAMP_NTZ, \
             '2024-01-02 03:04:05.123456'::TIMESTAMP_NTZ, PARSE_JSON('{\"a\": [1, 2]}')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted.affected(), Some(1));
    let nulls = s
        .query("INSERT INTO kinds (id) SELECT 2 UNION ALL SELECT 3", &[])
        .await
        .unwrap();
    assert_eq!(nulls.affected(), Some(2));

    let r = s
        .query("SELECT * FROM kinds ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(r.columns.len(), 11);
    assert_eq!(r.rows.len(), 3);
    let row = &r.rows[0];
    assert_eq!(row[0], Value::Int64(1));
    assert_eq!(
        row[1],
        Value::Decimal(Decimal::from_parts(true, "1234", 2).unwrap())
    );
    assert_eq!(row[2], Value::Float64(1.5));
    assert_eq!(row[3], Value::Text("ünï 漢字".into()));
    assert_eq!(row[4], Value::Bytes(vec![0x00, 0xff, 0x10]));
    assert_eq!(row[5], Value::Bool(true));
    assert_eq!(row[6], Value::Date(19_724));
    assert_eq!(row[7], Value::Time(45_296_789_012));
    let micros = 1_704_164_645_123_456;
    assert_eq!(row[8], Value::Timestamp(micros));
    assert_eq!(row[9], Value::TimestampTz(micros));
    match &row[10] {
        Value::Json(doc) => {
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            assert_eq!(v, serde_json::json!({"a": [1, 2]}));
        }
        other => panic!("variant read as {other:?}"),
    }
    // NULL in every column but the key, timestamps included.
    for row in &r.rows[1..] {
        assert!(row[1..].iter().all(Value::is_null), "{row:?}");
    }

    // Bound parameters.
    let n = s
        .query(
            "SELECT COUNT(*) FROM kinds WHERE t = ? AND id < CAST(? AS INT)",
            &[Binding::text("ünï 漢字"), Binding::text("5")],
        )
        .await
        .unwrap();
    assert_eq!(count(&n.rows[0][0]), 1);
    s.close().await;
}

#[tokio::test]
async fn a_transaction_lives_in_its_session_and_errors_have_kinds() {
    let Some(c) = client("MIGRATE_CLIENT_TX") else {
        return;
    };
    let a = c.session().await.unwrap();
    a.query("CREATE OR REPLACE TABLE t (id NUMBER(19, 0))", &[])
        .await
        .unwrap();
    a.query("BEGIN", &[]).await.unwrap();
    a.query("INSERT INTO t SELECT 1", &[]).await.unwrap();
    a.query("ROLLBACK", &[]).await.unwrap();
    let rows = |r: migrate_backend_snowflake::QueryResult| count(&r.rows[0][0]);
    assert_eq!(
        rows(a.query("SELECT COUNT(*) FROM t", &[]).await.unwrap()),
        0,
        "rolled back"
    );
    a.query("BEGIN", &[]).await.unwrap();
    a.query("INSERT INTO t SELECT 2", &[]).await.unwrap();
    a.query("COMMIT", &[]).await.unwrap();
    let b = c.session().await.unwrap();
    assert_eq!(
        rows(b.query("SELECT COUNT(*) FROM t", &[]).await.unwrap()),
        1,
        "committed, seen from another session"
    );

    let e = b
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("002003"), "{e}");
    let e = b.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
}

//! `scripts/test` provisions PostgreSQL at `MIGRATE_TEST_PG_URL`. (The backend's own suites
//! arrive with `PgSource`/`PgSink`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_core::testing::service_env;

#[tokio::test]
async fn postgres_answers_a_query() {
    let Some(url) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at MIGRATE_TEST_PG_URL unreachable: {e}"));
    tokio::spawn(conn);
    let row = client
        .query_one(
            "select 40 + 2, current_setting('server_version_num')::int",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert!(
        row.get::<_, i32>(1) >= 130000,
        "PostgreSQL 13 or newer is required"
    );
}

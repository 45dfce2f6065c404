//! TLS: `sslmode=require` encrypts (rustls) and carries a migration's writes; `verify-full`
//! refuses a certificate nobody vouches for, as a configuration error rather than a retry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_postgres::{PgConfig, PgSink};
use migrate_core::testing::fixture_tables;
use migrate_core::{
    ChunkSpec, ErrorKind, KeyRange, PrepareOptions, RowChecksum, Sink, VecBatchReader,
};

fn with_param(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

#[tokio::test]
async fn require_encrypts_and_verify_full_refuses_an_untrusted_certificate() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let plain = common::client(&admin).await;
    let ssl: String = plain.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test server must have ssl = on (Debian's default, with its snakeoil certificate)"
    );
    let url = common::fresh_db(&admin, "migrate_t_tls").await;

    let tls_url = with_param(&url, "sslmode=require");
    let client = PgConfig::from_url(&tls_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "sslmode=require connects over TLS");

    // The pool used by the sink encrypts too, and data goes through.
    let sink = PgSink::new(&tls_url).unwrap();
    let f = fixture_tables(Some("public"), 30).swap_remove(0);
    sink.prepare(
        &f.table,
        &PrepareOptions::default(),
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();
    let chunk = ChunkSpec::whole_table(f.table.name.clone(), 30);
    sink.write_chunk(
        &f.table,
        &chunk,
        &mut VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 7),
    )
    .await
    .unwrap();
    assert_eq!(
        sink.checksum(&f.table, &KeyRange::all()).await.unwrap(),
        RowChecksum::of_rows(&f.rows)
    );
    let tls_sessions: i64 = plain
        .query_one("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = 'migrate_t_tls'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        tls_sessions >= 2,
        "the sink's pooled connections are encrypted ({tls_sessions})"
    );

    let e = PgConfig::from_url(&with_param(&url, "sslmode=verify-full"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let e = PgConfig::from_url(&with_param(&url, "sslmode=sometimes")).unwrap_err();
    assert!(e.to_string().contains("sometimes"), "{e}");
}

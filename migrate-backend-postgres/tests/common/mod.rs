//! Databases for the Postgres tests: each test gets its own, dropped and recreated at start.
#![allow(dead_code)]

use migrate_backend_postgres::PgSink;
use migrate_core::testing::{service_env, Fixture};
use migrate_core::{ChunkSpec, PrepareMode, PrepareOptions, Sink, VecBatchReader};

/// The admin URL from `scripts/test`, or `None` (the test then returns) outside it.
pub fn admin_url() -> Option<String> {
    service_env("MIGRATE_TEST_PG_URL")
}

/// A fresh database named `name`; returns its URL.
pub async fn fresh_db(admin: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    url_for(admin, name)
}

/// `admin` with its database replaced by `db`.
pub fn url_for(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let root = match base.rfind('/') {
        Some(i)
            if base[..i].contains("://") && base[..i].len() > base.find("://").unwrap_or(0) + 2 =>
        {
            &base[..i]
        }
        _ => base,
    };
    format!("{root}/{db}{query}")
}

/// A direct client on `url`.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Creates and fills the fixtures' tables through the sink, foreign keys included.
pub async fn load(url: &str, fixtures: &[Fixture]) {
    let sink = PgSink::new(url).expect("sink");
    let opts = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    for f in fixtures {
        sink.prepare(&f.table, &opts, &migrate_core::RunId::generate())
            .await
            .expect("prepare fixture table");
        let chunk = ChunkSpec::whole_table(f.table.name.clone(), f.rows.len() as u64);
        let mut rows = VecBatchReader::from_rows(f.table.schema.clone(), f.rows.clone(), 1000);
        sink.write_chunk(&f.table, &chunk, &mut rows)
            .await
            .expect("load fixture rows");
    }
    for f in fixtures {
        sink.finalize(&f.table).await.expect("fixture foreign keys");
    }
}

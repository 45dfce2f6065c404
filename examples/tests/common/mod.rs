//! What the CLI tests share: fresh databases on the test server, and running the binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test uses a part

use std::path::Path;
use std::process::{Command, Output};

use migrate_backend_postgres::PgConfig;

/// The `migrate` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_migrate")
}

/// `admin`'s URL with its database replaced by `db`.
pub fn url_for(admin: &str, db: &str) -> String {
    let base = admin.split('?').next().unwrap();
    format!("{}/{db}", &base[..base.rfind('/').unwrap()])
}

/// A client on `url`.
pub async fn client(url: &str) -> tokio_postgres::Client {
    PgConfig::from_url(url).unwrap().connect().await.unwrap()
}

/// A database named `name`, dropped and created again; returns its URL.
pub async fn fresh_db(admin: &str, name: &str) -> String {
    let c = client(admin).await;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    url_for(admin, name)
}

/// Runs `migrate --config CONFIG ARGS…` in the config's folder.
pub fn migrate(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(config.parent().unwrap())
        .output()
        .unwrap()
}

/// The exit code (-1 when killed by a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

//! The emulator's endpoint for a test, in its own database and schema.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by tests that use parts

use migrate_backend_snowflake::SfEndpoint;
use migrate_core::testing::service_env;

/// The emulator's `snowflake://` URL for `database` and `schema` (`None` when no emulator is
/// configured — which `service_env` turns into a failure under `scripts/test`).
pub fn url(database: &str, schema: &str) -> Option<String> {
    let url = service_env("MIGRATE_TEST_SNOWFLAKE_URL")?;
    let (host, port) = url
        .trim_start_matches("http://")
        .split_once(':')
        .expect("host:port");
    Some(format!(
        "snowflake://migrate:unused@test/{database}/{schema}?host={host}&port={port}&protocol=http"
    ))
}

/// The emulator's endpoint for `database` and `schema`.
pub fn endpoint(database: &str, schema: &str) -> Option<SfEndpoint> {
    Some(SfEndpoint::from_url(&url(database, schema)?).unwrap())
}

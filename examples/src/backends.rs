//! Opening sources, sinks and checkpoint stores from URLs.

use std::sync::Arc;

use migrate_backend_bigquery::client::BqEndpoint;
use migrate_backend_bigquery::{BqSink, BqSource};
use migrate_backend_postgres::{
    redact, PgCheckpointStore, PgConfig, PgSink, PgSinkOptions, PgSource,
};
use migrate_backend_snowflake::{SfEndpoint, SfSink, SfSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{CheckpointStore, Error, Sink, Source};

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or("", |(s, _)| s)
}

fn unsupported(what: &str, url: &str) -> Error {
    Error::config(format!(
        "{what} {}: unknown URL scheme (use postgres://, bigquery:// or snowflake://)",
        redact(url)
    ))
}

/// The source at `url`.
pub fn source(url: &str) -> Result<Arc<dyn Source>, Error> {
    match scheme(url) {
        "postgres" | "postgresql" => Ok(Arc::new(PgSource::new(url)?)),
        "bigquery" => {
            let (endpoint, dataset) = BqEndpoint::from_url(url)?;
            Ok(Arc::new(BqSource::new(endpoint, &dataset)?))
        }
        "snowflake" => Ok(Arc::new(SfSource::new(SfEndpoint::from_url(url)?)?)),
        _ => Err(unsupported("source", url)),
    }
}

/// The sink at `url`; `pg` configures a Postgres target.
pub fn sink(url: &str, pg: &PgSinkOptions) -> Result<Arc<dyn Sink>, Error> {
    match scheme(url) {
        "postgres" | "postgresql" => Ok(Arc::new(PgSink::with_config(
            PgConfig::from_url(url)?,
            pg.clone(),
        )?)),
        "bigquery" => {
            let (endpoint, dataset) = BqEndpoint::from_url(url)?;
            Ok(Arc::new(BqSink::new(endpoint, &dataset)?))
        }
        "snowflake" => Ok(Arc::new(SfSink::new(SfEndpoint::from_url(url)?)?)),
        _ => Err(unsupported("target", url)),
    }
}

/// A checkpoint store: `sqlite://FILE` (the default) or `postgres://…` (shared by workers on
/// several machines), plus the SQLite store itself when that is what it is (for the
/// `migration_control` operator queries).
pub async fn store(
    url: &str,
    schema: &str,
) -> Result<(Arc<dyn CheckpointStore>, Option<Arc<SqliteCheckpointStore>>), Error> {
    match scheme(url) {
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            let s = Arc::new(SqliteCheckpointStore::open(path).await?);
            Ok((s.clone(), Some(s)))
        }
        "postgres" | "postgresql" => {
            Ok((Arc::new(PgCheckpointStore::open(url, schema).await?), None))
        }
        _ => Err(Error::config(format!(
            "checkpoint store {}: use sqlite://FILE or postgres://…",
            redact(url)
        ))),
    }
}

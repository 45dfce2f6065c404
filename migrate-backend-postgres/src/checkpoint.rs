//! [`PgCheckpointStore`]: the checkpoint tables in Postgres, so workers on several machines
//! share one migration. Claims take row locks with `FOR UPDATE SKIP LOCKED`; leases are timed
//! by the database's clock, so workers whose clocks disagree still agree on expiry.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use migrate_core::source::Watermark;
use migrate_core::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkSpec, Control, Error, ErrorKind,
    Operation, RejectedRecord, Result, RunId, RunRecord, RunStatus, TableName, TableRecord,
};
use tokio_postgres::Row;

use crate::config::PgConfig;
use crate::error::{pg_error, pool_error};
use crate::sql::ident;

/// The store's schema version (recorded in `<schema>.migrate_schema_version`).
pub const PG_STORE_VERSION: i32 = 2;

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS {s}.migrate_schema_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.migrate_runs (
    id text PRIMARY KEY, migration text NOT NULL, plan_hash text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'failed', 'cancelled', 'superseded')),
    started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, finished_at timestamptz);
CREATE INDEX IF NOT EXISTS migrate_runs_migration ON {s}.migrate_runs (migration, started_at);
CREATE TABLE IF NOT EXISTS {s}.migration_control (
    id bigserial PRIMARY KEY,
    phase text NOT NULL, table_name text NOT NULL, operation text NOT NULL, status text NOT NULL,
    records_processed bigint, total_records bigint, started_at timestamptz, completed_at timestamptz,
    error_message text, batch_size bigint, worker_id text, source_query text, validation_query text,
    run_id text NOT NULL REFERENCES {s}.migrate_runs (id), table_schema text, chunk_index integer,
    key_range jsonb, attempts integer NOT NULL DEFAULT 0, lease_until timestamptz, bytes bigint,
    checksum jsonb, error_kind jsonb, duration_ms bigint,
    CONSTRAINT migration_control_phase_check CHECK (phase IN ('discovery', 'planning', 'mapping', 'execution', 'validation', 'rollback')),
    CONSTRAINT migration_control_status_check CHECK (status IN ('pending', 'running', 'completed', 'failed', 'paused', 'skipped')));
CREATE INDEX IF NOT EXISTS idx_migration_control_phase ON {s}.migration_control (phase);
CREATE INDEX IF NOT EXISTS idx_migration_control_status ON {s}.migration_control (status);
CREATE INDEX IF NOT EXISTS idx_migration_control_table ON {s}.migration_control (table_name);
CREATE INDEX IF NOT EXISTS idx_migration_control_started_at ON {s}.migration_control (started_at);
CREATE UNIQUE INDEX IF NOT EXISTS idx_migration_control_chunk ON {s}.migration_control (run_id, table_name, chunk_index) WHERE phase = 'execution';
CREATE TABLE IF NOT EXISTS {s}.migrate_tables (
    run_id text NOT NULL REFERENCES {s}.migrate_runs (id), table_name text NOT NULL, table_schema text,
    status text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped', 'deferred')),
    rows bigint NOT NULL, total_rows bigint NOT NULL, prepared jsonb, reason text,
    started_at timestamptz, finished_at timestamptz, PRIMARY KEY (run_id, table_name));
CREATE TABLE IF NOT EXISTS {s}.migrate_events (
    id bigserial PRIMARY KEY, run_id text NOT NULL REFERENCES {s}.migrate_runs (id), at timestamptz NOT NULL,
    action text NOT NULL, table_name text, table_schema text, chunk_index integer, actor text, detail text NOT NULL);
CREATE INDEX IF NOT EXISTS migrate_events_run ON {s}.migrate_events (run_id, id);
CREATE TABLE IF NOT EXISTS {s}.migrate_rejected (
    id bigserial PRIMARY KEY, run_id text NOT NULL REFERENCES {s}.migrate_runs (id), table_name text NOT NULL,
    table_schema text, chunk_index integer NOT NULL, record_key text NOT NULL, reason text NOT NULL, at timestamptz NOT NULL);
ALTER TABLE {s}.migrate_rejected ADD COLUMN IF NOT EXISTS rule text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS error_kind jsonb, ADD COLUMN IF NOT EXISTS record_values text,
    ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
CREATE TABLE IF NOT EXISTS {s}.migrate_cursors (
    migration text NOT NULL, table_name text NOT NULL, table_schema text, watermark jsonb NOT NULL,
    updated_at timestamptz NOT NULL, PRIMARY KEY (migration, table_name));
CREATE TABLE IF NOT EXISTS {s}.migrate_control (
    run_id text PRIMARY KEY REFERENCES {s}.migrate_runs (id),
    control text NOT NULL CHECK (control IN ('run', 'pause', 'cancel')), updated_at timestamptz NOT NULL);
"#;

/// Version 2: one rejected record per (run, table, key, rule) — duplicates an earlier version
/// wrote are folded first.
const V2: &str = r#"
DELETE FROM {s}.migrate_rejected a USING {s}.migrate_rejected b
 WHERE a.run_id = b.run_id AND a.table_name = b.table_name AND a.record_key = b.record_key
   AND a.rule = b.rule AND a.id > b.id;
CREATE UNIQUE INDEX IF NOT EXISTS migrate_rejected_row ON {s}.migrate_rejected (run_id, table_name, record_key, rule);
"#;

/// Checkpoint state in Postgres tables (schema `migrate` by default).
pub struct PgCheckpointStore {
    pool: Pool,
    schema: String,
    config: PgConfig,
}

impl std::fmt::Debug for PgCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCheckpointStore")
            .field("config", &self.config)
            .field("schema", &self.schema)
            .finish()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v)
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "encoding a checkpoint value", e))
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "decoding a checkpoint value", e))
}

fn name_of<T: serde::Serialize>(v: &T) -> Result<String> {
    match json(v)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(Error::fatal(format!("unexpected status encoding {other}"))),
    }
}

const CHUNK_COLUMNS: &str = "table_name, table_schema, chunk_index, key_range, total_records, status, attempts, worker_id, lease_until, records_processed, bytes, checksum, error_message, error_kind, started_at, completed_at, duration_ms, operation";

fn chunk_from(r: &Row) -> Result<ChunkRecord> {
    Ok(ChunkRecord {
        table: TableName::from_columns(r.get(0), r.get(1)),
        index: r.get::<_, i32>(2) as u32,
        range: from_json(r.get(3))?,
        estimated_rows: r.get::<_, Option<i64>>(4).unwrap_or(0) as u64,
        status: from_json(serde_json::Value::String(r.get(5)))?,
        attempts: r.get::<_, i32>(6) as u32,
        worker: r.get(7),
        lease_until: r.get(8),
        rows: r.get::<_, Option<i64>>(9).unwrap_or(0) as u64,
        bytes: r.get::<_, Option<i64>>(10).unwrap_or(0) as u64,
        checksum: r
            .get::<_, Option<serde_json::Value>>(11)
            .map(from_json)
            .transpose()?,
        error: r.get(12),
        error_kind: r
            .get::<_, Option<serde_json::Value>>(13)
            .map(from_json)
            .transpose()?,
        started_at: r.get(14),
        finished_at: r.get(15),
        duration_ms: r.get::<_, Option<i64>>(16).map(|d| d as u64),
        operation: Operation::parse(r.get(17)),
    })
}

fn run_from(r: &Row) -> Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(r.get(0)),
        migration: r.get(1),
        plan_hash: r.get(2),
        status: from_json(serde_json::Value::String(r.get(3)))?,
        started_at: r.get(4),
        updated_at: r.get(5),
        finished_at: r.get(6),
    })
}

impl PgCheckpointStore {
    /// Opens the store in `schema` (created if missing) of the database at `url`.
    pub async fn open(url: &str, schema: &str) -> Result<Self> {
        let config = PgConfig::from_url(url)?;
        let store = PgCheckpointStore {
            pool: config.pool()?,
            schema: ident(schema),
            config,
        };
        store.install().await?;
        Ok(store)
    }

    async fn conn(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, self.config.redacted()))
    }

    fn q(&self, sql: &str) -> String {
        sql.replace("{s}", &self.schema)
    }

    /// Creates or replaces a table's state — unless, with `unless_completed`, the stored state
    /// says completed. Whether it wrote.
    async fn upsert_table(
        &self,
        run: &RunId,
        t: &TableRecord,
        unless_completed: bool,
    ) -> Result<bool> {
        let conn = self.conn().await?;
        let (name, schema) = TableName::to_columns(&t.table);
        let prepared = t.prepared.as_ref().map(json).transpose()?;
        let guard = if unless_completed {
            " WHERE stored.status <> 'completed'"
        } else {
            ""
        };
        let written = conn
            .execute(
                &self.q(&format!("INSERT INTO {{s}}.migrate_tables AS stored VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (run_id, table_name) DO UPDATE SET status = EXCLUDED.status, rows = EXCLUDED.rows, total_rows = EXCLUDED.total_rows,
                        prepared = EXCLUDED.prepared, reason = EXCLUDED.reason, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at{guard}")),
                &[&run.0, &name, &schema, &t.status.as_str(), &(t.rows as i64), &(t.total_rows as i64), &prepared, &t.reason, &t.started_at, &t.finished_at],
            )
            .await
            .map_err(|e| pg_error(e, "put_table"))?;
        Ok(written == 1)
    }

    /// Creates the tables (idempotent; serialized across workers by an advisory lock) and
    /// refuses a store written by a newer version.
    async fn install(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "installing the checkpoint store"))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(hashtext('migrate checkpoint store {0}')); CREATE SCHEMA IF NOT EXISTS {0}",
            self.schema
        ))
        .await
        .map_err(|e| pg_error(e, "creating the checkpoint schema"))?;
        tx.batch_execute(&self.q(DDL))
            .await
            .map_err(|e| pg_error(e, "creating the checkpoint tables"))?;
        let found: Option<i32> = tx
            .query_opt(
                &self.q("SELECT max(version) FROM {s}.migrate_schema_version"),
                &[],
            )
            .await
            .map_err(|e| pg_error(e, "reading the store version"))?
            .and_then(|r| r.get(0));
        match found {
            Some(v) if v > PG_STORE_VERSION => {
                return Err(Error::config(format!(
                    "checkpoint schema {} was written by store version {v}; this build understands up to {PG_STORE_VERSION}: use a newer migrate",
                    self.schema
                )))
            }
            Some(PG_STORE_VERSION) => {}
            _ => {
                tx.batch_execute(&self.q(V2))
                    .await
                    .map_err(|e| pg_error(e, "upgrading the checkpoint tables"))?;
                tx.execute(&self.q("INSERT INTO {s}.migrate_schema_version VALUES ($1)"), &[&PG_STORE_VERSION])
                    .await
                    .map_err(|e| pg_error(e, "recording the store version"))?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| pg_error(e, "installing the checkpoint store"))
    }

    async fn one_chunk(
        &self,
        conn: &Object,
        run: &str,
        t: &TableName,
        index: u32,
    ) -> Result<Option<ChunkRecord>> {
        let r = conn
            .query_opt(
                &self.q(&format!("SELECT {CHUNK_COLUMNS} FROM {{s}}.migration_control WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution'")),
                &[&run, &t.to_string(), &(index as i32)],
            )
            .await
            .map_err(|e| pg_error(e, "reading a chunk"))?;
        r.as_ref().map(chunk_from).transpose()
    }
}

fn no_chunk(t: &TableName, i: u32) -> Error {
    Error::not_found(format!("no chunk {i} of {t} in this run")).table(t)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().min(10.0 * 365.0 * 86400.0)
}

#[async_trait]
impl CheckpointStore for PgCheckpointStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "create_run"))?;
        // One resumable run per migration: serialize creators of the same migration.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("migrate run {}", run.migration)],
        )
        .await
        .map_err(|e| pg_error(e, "create_run"))?;
        let open = tx
            .query_opt(
                &self.q("SELECT id FROM {s}.migrate_runs WHERE migration = $1 AND status NOT IN ('completed', 'superseded') LIMIT 1"),
                &[&run.migration],
            )
            .await
            .map_err(|e| pg_error(e, "create_run"))?;
        if let Some(r) = open {
            return Err(Error::new(
                ErrorKind::Constraint,
                format!(
                    "migration {:?} already has resumable run {}",
                    run.migration,
                    r.get::<_, String>(0)
                ),
            ));
        }
        tx.execute(
            &self.q("INSERT INTO {s}.migrate_runs VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            &[
                &run.id.0,
                &run.migration,
                &run.plan_hash,
                &run.status.as_str(),
                &run.started_at,
                &run.updated_at,
                &run.finished_at,
            ],
        )
        .await
        .map_err(|e| pg_error(e, "create_run"))?;
        tx.commit().await.map_err(|e| pg_error(e, "create_run"))
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let conn = self.conn().await?;
        let r = conn
            .query_opt(&self.q("SELECT id, migration, plan_hash, status, started_at, updated_at, finished_at FROM {s}.migrate_runs WHERE id = $1"), &[&id.0])
            .await
            .map_err(|e| pg_error(e, "run"))?;
        r.as_ref().map(run_from).transpose()
    }

    async fn latest_run(&self, migration: &str) -> Result<Option<RunRecord>> {
        let conn = self.conn().await?;
        let r = conn
            .query_opt(
                &self.q("SELECT id, migration, plan_hash, status, started_at, updated_at, finished_at FROM {s}.migrate_runs WHERE migration = $1 ORDER BY started_at DESC LIMIT 1"),
                &[&migration],
            )
            .await
            .map_err(|e| pg_error(e, "latest_run"))?;
        r.as_ref().map(run_from).transpose()
    }

    async fn set_run_status(&self, id: &RunId, status: RunStatus) -> Result<()> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                &self.q("UPDATE {s}.migrate_runs SET status = $1, updated_at = now(), finished_at = CASE WHEN $2 THEN now() END WHERE id = $3"),
                &[&status.as_str(), &status.is_stopped(), &id.0],
            )
            .await
            .map_err(|e| pg_error(e, "set_run_status"))?;
        if n == 0 {
            return Err(Error::not_found(format!("no run {id}")));
        }
        Ok(())
    }

    async fn add_chunks(&self, run: &RunId, chunks: &[ChunkSpec]) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "add_chunks"))?;
        let st = tx
            .prepare(&self.q(
                "INSERT INTO {s}.migration_control (phase, table_name, table_schema, operation, status, total_records, batch_size, run_id, chunk_index, key_range)
                 VALUES ('execution', $1, $2, $7, 'pending', $3, $3, $4, $5, $6)
                 ON CONFLICT (run_id, table_name, chunk_index) WHERE phase = 'execution' DO NOTHING",
            ))
            .await
            .map_err(|e| pg_error(e, "add_chunks"))?;
        // One plan per table: the table's lock (held to commit) orders workers registering it
        // at once, and the later one finds the earlier one's chunks and adds none.
        // (Two statements: under READ COMMITTED the check's snapshot must be taken after the
        // lock is held, to see what the earlier worker committed.)
        let lock = tx
            .prepare("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .await
            .map_err(|e| pg_error(e, "add_chunks"))?;
        let planned = tx
            .prepare(&self.q(
                "SELECT EXISTS (SELECT 1 FROM {s}.migration_control WHERE run_id = $1 AND phase = 'execution' AND table_name = $2)",
            ))
            .await
            .map_err(|e| pg_error(e, "add_chunks"))?;
        let mut known = std::collections::HashMap::new();
        for c in chunks {
            let (t, s) = TableName::to_columns(&c.table);
            let skip = match known.get(&t) {
                Some(skip) => *skip,
                None => {
                    tx.execute(&lock, &[&run.0, &t])
                        .await
                        .map_err(|e| pg_error(e, "add_chunks"))?;
                    let row = tx
                        .query_one(&planned, &[&run.0, &t])
                        .await
                        .map_err(|e| pg_error(e, "add_chunks"))?;
                    let skip: bool = row.get(0);
                    known.insert(t.clone(), skip);
                    skip
                }
            };
            if skip {
                continue;
            }
            tx.execute(
                &st,
                &[
                    &t,
                    &s,
                    &(c.estimated_rows as i64),
                    &run.0,
                    &(c.index as i32),
                    &json(&c.range)?,
                    &c.operation.as_str(),
                ],
            )
            .await
            .map_err(|e| pg_error(e, "add_chunks"))?;
        }
        tx.commit().await.map_err(|e| pg_error(e, "add_chunks"))
    }

    async fn chunks(&self, run: &RunId) -> Result<Vec<ChunkRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&self.q(&format!("SELECT {CHUNK_COLUMNS} FROM {{s}}.migration_control WHERE run_id = $1 AND phase = 'execution' ORDER BY table_name, chunk_index")), &[&run.0])
            .await
            .map_err(|e| pg_error(e, "chunks"))?;
        rows.iter().map(chunk_from).collect()
    }

    async fn claim_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ChunkRecord>> {
        let conn = self.conn().await?;
        // Lock the row if nobody else holds it (SKIP LOCKED), then claim it if claimable; the
        // lease is measured on the database clock.
        let r = conn
            .query_opt(
                &self.q(&format!(
                    "UPDATE {{s}}.migration_control m
                        SET status = 'running', attempts = m.attempts + 1, worker_id = $4,
                            lease_until = now() + make_interval(secs => $5), started_at = now(), completed_at = NULL
                      WHERE m.id = (SELECT id FROM {{s}}.migration_control
                                     WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution'
                                       AND (status IN ('pending', 'failed', 'skipped')
                                            OR (status = 'running' AND (worker_id = $4 OR lease_until IS NULL OR lease_until <= now())))
                                     FOR UPDATE SKIP LOCKED)
                  RETURNING {CHUNK_COLUMNS}"
                )),
                &[&run.0, &table.to_string(), &(index as i32), &worker, &secs(lease)],
            )
            .await
            .map_err(|e| pg_error(e, "claim_chunk"))?;
        match r {
            Some(r) => Ok(Some(chunk_from(&r)?)),
            None => match self.one_chunk(&conn, &run.0, table, index).await? {
                Some(_) => Ok(None),
                None => Err(no_chunk(table, index)),
            },
        }
    }

    async fn renew_lease(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                &self.q("UPDATE {s}.migration_control SET lease_until = now() + make_interval(secs => $5)
                          WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution' AND status = 'running' AND worker_id = $4"),
                &[&run.0, &table.to_string(), &(index as i32), &worker, &secs(lease)],
            )
            .await
            .map_err(|e| pg_error(e, "renew_lease"))?;
        Ok(n == 1)
    }

    async fn complete_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        result: &ChunkResult,
    ) -> Result<bool> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                &self.q("UPDATE {s}.migration_control
                            SET status = 'completed', records_processed = $5, bytes = $6, checksum = $7, duration_ms = $8,
                                completed_at = now(), lease_until = NULL, error_message = NULL, error_kind = NULL
                          WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution' AND status = 'running' AND worker_id = $4"),
                &[&run.0, &table.to_string(), &(index as i32), &worker, &(result.rows as i64), &(result.bytes as i64), &result.checksum.map(|c| json(&c)).transpose()?, &(result.duration_ms as i64)],
            )
            .await
            .map_err(|e| pg_error(e, "complete_chunk"))?;
        if n == 0 && self.one_chunk(&conn, &run.0, table, index).await?.is_none() {
            return Err(no_chunk(table, index));
        }
        Ok(n == 1)
    }

    async fn fail_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        error: &str,
        kind: ErrorKind,
    ) -> Result<()> {
        let conn = self.conn().await?;
        conn.execute(
            &self.q("UPDATE {s}.migration_control SET status = 'failed', error_message = $4, error_kind = $5, lease_until = NULL, completed_at = now()
                      WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution' AND status <> 'completed'"),
            &[&run.0, &table.to_string(), &(index as i32), &error, &json(&kind)?],
        )
        .await
        .map_err(|e| pg_error(e, "fail_chunk"))?;
        Ok(())
    }

    async fn skip_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        reason: &str,
    ) -> Result<()> {
        let conn = self.conn().await?;
        conn.execute(
            &self.q("UPDATE {s}.migration_control SET status = 'skipped', error_message = $4, lease_until = NULL, completed_at = now()
                      WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND phase = 'execution' AND status <> 'completed'"),
            &[&run.0, &table.to_string(), &(index as i32), &reason],
        )
        .await
        .map_err(|e| pg_error(e, "skip_chunk"))?;
        Ok(())
    }

    async fn reset_table_chunks(&self, run: &RunId, table: &TableName) -> Result<()> {
        let conn = self.conn().await?;
        conn.execute(
            &self.q("UPDATE {s}.migration_control SET status = 'pending', worker_id = NULL, lease_until = NULL, records_processed = NULL, bytes = NULL,
                            checksum = NULL, error_message = NULL, error_kind = NULL, started_at = NULL, completed_at = NULL, duration_ms = NULL
                      WHERE run_id = $1 AND table_name = $2 AND phase = 'execution'"),
            &[&run.0, &table.to_string()],
        )
        .await
        .map_err(|e| pg_error(e, "reset_table_chunks"))?;
        Ok(())
    }

    async fn put_table(&self, run: &RunId, t: &TableRecord) -> Result<()> {
        self.upsert_table(run, t, false).await.map(|_| ())
    }

    async fn put_table_unless_completed(
        &self,
        run: &RunId,
        t: &TableRecord,
    ) -> Result<Option<TableRecord>> {
        if self.upsert_table(run, t, true).await? {
            return Ok(None);
        }
        // Completed (which only `put_table` undoes): read it back.
        Ok(self
            .tables(run)
            .await?
            .into_iter()
            .find(|r| r.table == t.table))
    }

    async fn tables(&self, run: &RunId) -> Result<Vec<TableRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&self.q("SELECT table_name, table_schema, status, rows, total_rows, prepared, reason, started_at, finished_at FROM {s}.migrate_tables WHERE run_id = $1 ORDER BY table_name"), &[&run.0])
            .await
            .map_err(|e| pg_error(e, "tables"))?;
        rows.iter()
            .map(|r| {
                Ok(TableRecord {
                    table: TableName::from_columns(r.get(0), r.get(1)),
                    status: from_json(serde_json::Value::String(r.get(2)))?,
                    rows: r.get::<_, i64>(3) as u64,
                    total_rows: r.get::<_, i64>(4) as u64,
                    prepared: r
                        .get::<_, Option<serde_json::Value>>(5)
                        .map(from_json)
                        .transpose()?,
                    reason: r.get(6),
                    started_at: r.get(7),
                    finished_at: r.get(8),
                })
            })
            .collect()
    }

    async fn append_event(&self, run: &RunId, e: &AuditEvent) -> Result<()> {
        let conn = self.conn().await?;
        let (t, s) = e.table.as_ref().map(TableName::to_columns).unzip();
        conn.execute(
            &self.q("INSERT INTO {s}.migrate_events (run_id, at, action, table_name, table_schema, chunk_index, actor, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[&run.0, &e.at, &e.action, &t, &s.flatten(), &e.chunk.map(|c| c as i32), &e.actor, &e.detail],
        )
        .await
        .map_err(|e| pg_error(e, "append_event"))?;
        Ok(())
    }

    async fn events(&self, run: &RunId) -> Result<Vec<AuditEvent>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&self.q("SELECT at, action, table_name, table_schema, chunk_index, actor, detail FROM {s}.migrate_events WHERE run_id = $1 ORDER BY id"), &[&run.0])
            .await
            .map_err(|e| pg_error(e, "events"))?;
        Ok(rows
            .iter()
            .map(|r| AuditEvent {
                at: r.get(0),
                action: r.get(1),
                table: r
                    .get::<_, Option<String>>(2)
                    .map(|t| TableName::from_columns(t, r.get(3))),
                chunk: r.get::<_, Option<i32>>(4).map(|c| c as u32),
                actor: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }

    async fn add_rejected(&self, run: &RunId, records: &[RejectedRecord]) -> Result<()> {
        self.write_rejected(run, Clear::Nothing, records)
            .await
            .map(|_| ())
    }

    async fn replace_chunk_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        chunk: u32,
        records: &[RejectedRecord],
    ) -> Result<()> {
        self.write_rejected(run, Clear::Chunk(table, chunk), records)
            .await
            .map(|_| ())
    }

    async fn rejected(&self, run: &RunId) -> Result<Vec<RejectedRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&self.q("SELECT table_name, table_schema, chunk_index, record_key, rule, reason, error_kind, record_values, at FROM {s}.migrate_rejected WHERE run_id = $1 AND resolved_at IS NULL ORDER BY id"), &[&run.0])
            .await
            .map_err(|e| pg_error(e, "rejected"))?;
        rows.iter()
            .map(|r| {
                Ok(RejectedRecord {
                    table: TableName::from_columns(r.get(0), r.get(1)),
                    chunk: r.get::<_, i32>(2) as u32,
                    key: r.get(3),
                    rule: r.get(4),
                    reason: r.get(5),
                    kind: r
                        .get::<_, Option<serde_json::Value>>(6)
                        .map(from_json)
                        .transpose()?,
                    values: r.get(7),
                    at: r.get(8),
                })
            })
            .collect()
    }

    async fn rejected_count(&self, run: &RunId, table: &TableName) -> Result<u64> {
        let conn = self.conn().await?;
        let (t, _) = TableName::to_columns(table);
        let row = conn
            .query_one(
                &self.q("SELECT count(DISTINCT record_key) FROM {s}.migrate_rejected WHERE run_id = $1 AND table_name = $2 AND resolved_at IS NULL"),
                &[&run.0, &t],
            )
            .await
            .map_err(|e| pg_error(e, "rejected_count"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn recheck_rejected(
        &self,
        run: &RunId,
        table: &TableName,
        keys: &[String],
        still: &[RejectedRecord],
    ) -> Result<u64> {
        self.write_rejected(run, Clear::Keys(table, keys), still)
            .await
    }

    async fn save_cursor(
        &self,
        migration: &str,
        table: &TableName,
        mark: &Watermark,
    ) -> Result<()> {
        let conn = self.conn().await?;
        let (t, s) = TableName::to_columns(table);
        conn.execute(
            &self.q("INSERT INTO {s}.migrate_cursors VALUES ($1, $2, $3, $4, now())
                     ON CONFLICT (migration, table_name) DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()"),
            &[&migration, &t, &s, &json(mark)?],
        )
        .await
        .map_err(|e| pg_error(e, "save_cursor"))?;
        Ok(())
    }

    async fn cursor(&self, migration: &str, table: &TableName) -> Result<Option<Watermark>> {
        let conn = self.conn().await?;
        let r = conn
            .query_opt(&self.q("SELECT watermark FROM {s}.migrate_cursors WHERE migration = $1 AND table_name = $2"), &[&migration, &table.to_string()])
            .await
            .map_err(|e| pg_error(e, "cursor"))?;
        r.map(|r| from_json(r.get(0))).transpose()
    }

    async fn set_control(&self, run: &RunId, control: Control) -> Result<()> {
        let conn = self.conn().await?;
        conn.execute(
            &self.q("INSERT INTO {s}.migrate_control VALUES ($1, $2, now()) ON CONFLICT (run_id) DO UPDATE SET control = EXCLUDED.control, updated_at = now()"),
            &[&run.0, &name_of(&control)?],
        )
        .await
        .map_err(|e| pg_error(e, "set_control"))?;
        Ok(())
    }

    async fn control(&self, run: &RunId) -> Result<Control> {
        let conn = self.conn().await?;
        let r = conn
            .query_opt(
                &self.q("SELECT control FROM {s}.migrate_control WHERE run_id = $1"),
                &[&run.0],
            )
            .await
            .map_err(|e| pg_error(e, "control"))?;
        match r {
            Some(r) => from_json(serde_json::Value::String(r.get(0))),
            None => Ok(Control::Run),
        }
    }
}

/// What a write of rejected records first clears.
enum Clear<'a> {
    Nothing,
    /// The chunk's unresolved records (deleted: an attempt's outcome replaces the last).
    Chunk(&'a TableName, u32),
    /// These keys' unresolved records (resolved: a replay checked them again).
    Keys(&'a TableName, &'a [String]),
}

impl PgCheckpointStore {
    /// Clears what `clear` says, then upserts `records` (one per run, table, key and rule) —
    /// in one transaction; how many records were cleared.
    async fn write_rejected(
        &self,
        run: &RunId,
        clear: Clear<'_>,
        records: &[RejectedRecord],
    ) -> Result<u64> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "add_rejected"))?;
        let cleared = match clear {
            Clear::Nothing => 0,
            Clear::Chunk(t, c) => {
                let (t, _) = TableName::to_columns(t);
                tx.execute(
                    &self.q("DELETE FROM {s}.migrate_rejected WHERE run_id = $1 AND table_name = $2 AND chunk_index = $3 AND resolved_at IS NULL"),
                    &[&run.0, &t, &(c as i32)],
                )
                .await
                .map_err(|e| pg_error(e, "add_rejected"))?
            }
            Clear::Keys(t, keys) => {
                let (t, _) = TableName::to_columns(t);
                tx.execute(
                    &self.q("UPDATE {s}.migrate_rejected SET resolved_at = now() WHERE run_id = $1 AND table_name = $2 AND record_key = ANY($3) AND resolved_at IS NULL"),
                    &[&run.0, &t, &keys],
                )
                .await
                .map_err(|e| pg_error(e, "recheck_rejected"))?
            }
        };
        let st = tx
            .prepare(&self.q(
                "INSERT INTO {s}.migrate_rejected (run_id, table_name, table_schema, chunk_index, record_key, rule, reason, error_kind, record_values, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (run_id, table_name, record_key, rule) DO UPDATE SET
                     chunk_index = EXCLUDED.chunk_index, reason = EXCLUDED.reason, error_kind = EXCLUDED.error_kind,
                     record_values = EXCLUDED.record_values, at = EXCLUDED.at, resolved_at = NULL",
            ))
            .await
            .map_err(|e| pg_error(e, "add_rejected"))?;
        for r in records {
            let (t, s) = TableName::to_columns(&r.table);
            let kind = r.kind.map(|k| json(&k)).transpose()?;
            tx.execute(
                &st,
                &[
                    &run.0,
                    &t,
                    &s,
                    &(r.chunk as i32),
                    &r.key,
                    &r.rule,
                    &r.reason,
                    &kind,
                    &r.values,
                    &r.at,
                ],
            )
            .await
            .map_err(|e| pg_error(e, "add_rejected"))?;
        }
        tx.commit().await.map_err(|e| pg_error(e, "add_rejected"))?;
        Ok(cleared)
    }
}

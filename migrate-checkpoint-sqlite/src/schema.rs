//! The store's schema and its versions. `PRAGMA user_version` records the version a file was
//! written with; older files are upgraded in place, newer ones refused.

use migrate_core::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::codec::sql_error;

/// The schema version this build writes.
pub const CURRENT_VERSION: i32 = 3;

/// `UPGRADES[i]` takes a file from version `i` to `i + 1`.
const UPGRADES: [&str; CURRENT_VERSION as usize] = [V1, V2, V3];

/// Version 1: the `migration_control` progress table (one row per chunk in phase `execution`, plus the
/// columns resume needs), runs, tables, audit events, rejected records, cursors, control flags.
const V1: &str = r#"
CREATE TABLE migrate_runs (
    id          TEXT PRIMARY KEY,
    migration   TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'failed', 'cancelled', 'superseded')),
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX idx_migrate_runs_migration ON migrate_runs(migration, started_at);

CREATE TABLE migration_control (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    phase             TEXT NOT NULL,
    table_name        TEXT NOT NULL,
    operation         TEXT NOT NULL,
    status            TEXT NOT NULL,
    records_processed INTEGER,
    total_records     INTEGER,
    started_at        TEXT,
    completed_at      TEXT,
    error_message     TEXT,
    batch_size        INTEGER,
    worker_id         TEXT,
    source_query      TEXT,
    validation_query  TEXT,
    -- what resume and leases need beyond the operator-facing columns
    run_id            TEXT NOT NULL REFERENCES migrate_runs(id),
    table_schema      TEXT,
    chunk_index       INTEGER,
    key_range         TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_until       TEXT,
    bytes             INTEGER,
    checksum          TEXT,
    error_kind        TEXT,
    CONSTRAINT migration_control_phase_check
        CHECK (phase IN ('discovery', 'planning', 'mapping', 'execution', 'validation', 'rollback')),
    CONSTRAINT migration_control_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'paused', 'skipped'))
);
CREATE INDEX idx_migration_control_phase ON migration_control(phase);
CREATE INDEX idx_migration_control_status ON migration_control(status);
CREATE INDEX idx_migration_control_table ON migration_control(table_name);
CREATE INDEX idx_migration_control_started_at ON migration_control(started_at);
CREATE UNIQUE INDEX idx_migration_control_chunk
    ON migration_control(run_id, table_name, chunk_index) WHERE phase = 'execution';

CREATE TABLE migrate_tables (
    run_id       TEXT NOT NULL REFERENCES migrate_runs(id),
    table_name   TEXT NOT NULL,
    table_schema TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped', 'deferred')),
    rows         INTEGER NOT NULL,
    total_rows   INTEGER NOT NULL,
    prepared     TEXT,
    reason       TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    PRIMARY KEY (run_id, table_name)
);

CREATE TABLE migrate_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES migrate_runs(id),
    at           TEXT NOT NULL,
    action       TEXT NOT NULL,
    table_name   TEXT,
    table_schema TEXT,
    chunk_index  INTEGER,
    actor        TEXT,
    detail       TEXT NOT NULL
);
CREATE INDEX idx_migrate_events_run ON migrate_events(run_id, id);

CREATE TABLE migrate_rejected (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES migrate_runs(id),
    table_name   TEXT NOT NULL,
    table_schema TEXT,
    chunk_index  INTEGER NOT NULL,
    record_key   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX idx_migrate_rejected_run ON migrate_rejected(run_id, id);

CREATE TABLE migrate_cursors (
    migration    TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    table_schema TEXT,
    watermark    TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (migration, table_name)
);

CREATE TABLE migrate_control (
    run_id     TEXT PRIMARY KEY REFERENCES migrate_runs(id),
    control    TEXT NOT NULL CHECK (control IN ('run', 'pause', 'cancel')),
    updated_at TEXT NOT NULL
);
"#;

/// Version 2: chunk durations (for the performance query) and an index for resume queries.
const V2: &str = r#"
ALTER TABLE migration_control ADD COLUMN duration_ms INTEGER;
CREATE INDEX idx_migration_control_run_status ON migration_control(run_id, status);
"#;

/// Version 3: rejected rows carry the rule they broke, their error kind, their values (only on
/// opt-in) and when a replay resolved them; one record per (run, table, key, rule).
const V3: &str = r#"
ALTER TABLE migrate_rejected ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE migrate_rejected ADD COLUMN error_kind TEXT;
ALTER TABLE migrate_rejected ADD COLUMN record_values TEXT;
ALTER TABLE migrate_rejected ADD COLUMN resolved_at TEXT;
DELETE FROM migrate_rejected WHERE id NOT IN
    (SELECT min(id) FROM migrate_rejected GROUP BY run_id, table_name, record_key, rule);
CREATE UNIQUE INDEX idx_migrate_rejected_row ON migrate_rejected(run_id, table_name, record_key, rule);
"#;

/// Brings the file to [`CURRENT_VERSION`]; refuses files from a newer build.
pub fn upgrade(conn: &mut Connection, path: &str) -> Result<i32> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let found: i32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_error)?;
    if found > CURRENT_VERSION {
        return Err(Error::config(format!(
            "checkpoint store {path} was written by schema version {found}; this build of migrate understands versions up to {CURRENT_VERSION}: use a newer migrate"
        )));
    }
    for (v, ddl) in UPGRADES.iter().enumerate().skip(found as usize) {
        tx.execute_batch(ddl).map_err(|e| {
            Error::with_source(
                migrate_core::ErrorKind::Fatal,
                format!(
                    "upgrading checkpoint store {path} from schema version {v} to {}",
                    v + 1
                ),
                e,
            )
        })?;
    }
    if found < CURRENT_VERSION {
        tx.pragma_update(None, "user_version", CURRENT_VERSION)
            .map_err(sql_error)?;
        tracing::info!(
            path,
            from = found,
            to = CURRENT_VERSION,
            "checkpoint store schema upgraded"
        );
    }
    tx.commit().map_err(sql_error)?;
    Ok(found)
}

/// Creates a file at schema version `version` exactly (tests and fixtures).
pub fn create_at_version(conn: &Connection, version: i32) -> Result<()> {
    for ddl in UPGRADES.iter().take(version as usize) {
        conn.execute_batch(ddl).map_err(sql_error)?;
    }
    conn.pragma_update(None, "user_version", version)
        .map_err(sql_error)
}

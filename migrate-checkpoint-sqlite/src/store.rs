//! [`SqliteCheckpointStore`]: the embedded default checkpoint store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use migrate_core::source::Watermark;
use migrate_core::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkSpec, Control, Error, ErrorKind,
    Operation, RejectedRecord, Result, RunId, RunRecord, RunStatus, TableName, TableRecord,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::codec::{enum_from, from_json, json, opt_time, parse_time, sql_error, time};
use crate::schema;

/// How durable each commit is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged checkpoint survives power loss (the default).
    #[default]
    Full,
    /// fsync at WAL checkpoints only: survives a process crash, may lose the last commits on
    /// power loss. Faster.
    Normal,
}

/// Settings for [`SqliteCheckpointStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Commit durability (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// How long a writer waits for another process's lock before failing (default 10 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// Checkpoint state in one SQLite file (bundled SQLite, WAL). Several processes on one machine
/// may share the file: chunk claims are leases taken in single atomic statements.
///
/// Blocking SQLite calls run on tokio's blocking pool, never on the async worker threads.
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpointStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteCheckpointStore {
    /// Opens (creating it owner-only if missing) and upgrades the store at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens with explicit settings.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p, &options))
            .await
            .map_err(|e| {
                Error::with_source(ErrorKind::Fatal, "opening the checkpoint store", e)
            })??;
        Ok(SqliteCheckpointStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    /// Creates or replaces a table's state — unless, with `unless_completed`, the stored state
    /// says completed (one statement, so atomic across processes). Whether it wrote.
    async fn upsert_table(
        &self,
        run: &RunId,
        table: &TableRecord,
        unless_completed: bool,
    ) -> Result<bool> {
        let (run, rec) = (run.0.clone(), table.clone());
        let prepared = rec.prepared.as_ref().map(json).transpose()?;
        let guard = if unless_completed {
            " WHERE migrate_tables.status <> 'completed'"
        } else {
            ""
        };
        self.with(move |c| {
            let (t, s) = TableName::to_columns(&rec.table);
            let written = c
                .execute(
                    &format!("INSERT INTO migrate_tables (run_id, table_name, table_schema, status, rows, total_rows, prepared, reason, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (run_id, table_name) DO UPDATE SET
                        status = excluded.status, rows = excluded.rows, total_rows = excluded.total_rows, prepared = excluded.prepared,
                        reason = excluded.reason, started_at = excluded.started_at, finished_at = excluded.finished_at{guard}"),
                    params![run, t, s, rec.status.as_str(), rec.rows as i64, rec.total_rows as i64, prepared, rec.reason, opt_time(rec.started_at), opt_time(rec.finished_at)],
                )
                .map_err(sql_error)?;
            Ok(written == 1)
        })
        .await
    }

    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "checkpoint store task failed", e))?
    }
}

fn open_blocking(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let shown = path.display().to_string();
    create_private(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
            ErrorKind::Permission
        } else {
            ErrorKind::Config
        };
        Error::with_source(kind, format!("cannot create checkpoint store {shown}"), e)
    })?;
    let mut conn = Connection::open(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            format!("cannot open checkpoint store {shown}"),
            e,
        )
    })?;
    conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Config,
                format!("{shown} is not a usable SQLite file"),
                e,
            )
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::config(format!(
            "checkpoint store {shown}: WAL mode unavailable (got {mode})"
        )));
    }
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(sql_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql_error)?;
    schema::upgrade(&mut conn, &shown)?;
    Ok(conn)
}

/// Creates the file with owner-only permissions when it does not exist yet (SQLite gives the
/// -wal and -shm files the same permissions).
fn create_private(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

const CHUNK_COLUMNS: &str = "table_name, table_schema, chunk_index, key_range, total_records, status, attempts, worker_id, lease_until, records_processed, bytes, checksum, error_message, error_kind, started_at, completed_at, duration_ms, operation";

fn chunk_from_row(r: &Row<'_>) -> rusqlite::Result<ChunkRecord> {
    Ok(ChunkRecord {
        table: TableName::from_columns(r.get(0)?, r.get(1)?),
        index: r.get(2)?,
        range: from_json(&r.get::<_, String>(3)?)?,
        estimated_rows: r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
        status: enum_from(&r.get::<_, String>(5)?)?,
        attempts: r.get(6)?,
        worker: r.get(7)?,
        lease_until: parse_time(r.get(8)?)?,
        rows: r.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
        bytes: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
        checksum: r
            .get::<_, Option<String>>(11)?
            .map(|s| from_json(&s))
            .transpose()?,
        error: r.get(12)?,
        error_kind: r
            .get::<_, Option<String>>(13)?
            .map(|s| from_json(&s))
            .transpose()?,
        started_at: parse_time(r.get(14)?)?,
        finished_at: parse_time(r.get(15)?)?,
        duration_ms: r.get::<_, Option<i64>>(16)?.map(|d| d as u64),
        operation: Operation::parse(&r.get::<_, String>(17)?),
    })
}

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(r.get(0)?),
        migration: r.get(1)?,
        plan_hash: r.get(2)?,
        status: enum_from(&r.get::<_, String>(3)?)?,
        started_at: parse_time(r.get(4)?)?.unwrap_or_default(),
        updated_at: parse_time(r.get(5)?)?.unwrap_or_default(),
        finished_at: parse_time(r.get(6)?)?,
    })
}

const RUN_COLUMNS: &str = "id, migration, plan_hash, status, started_at, updated_at, finished_at";

fn no_chunk(table: &TableName, index: u32) -> Error {
    Error::not_found(format!("no chunk {index} of {table} in this run")).table(table)
}

fn lease_end(lease: Duration) -> String {
    time(Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::days(3650)))
}

#[async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            let open: Option<String> = tx
                .query_row(
                    "SELECT id FROM migrate_runs WHERE migration = ?1 AND status NOT IN ('completed', 'superseded') LIMIT 1",
                    [&run.migration],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            if let Some(open) = open {
                return Err(Error::new(ErrorKind::Constraint, format!("migration {:?} already has resumable run {open}", run.migration)));
            }
            tx.execute(
                "INSERT INTO migrate_runs (id, migration, plan_hash, status, started_at, updated_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run.id.0, run.migration, run.plan_hash, run.status.as_str(), time(run.started_at), time(run.updated_at), opt_time(run.finished_at)],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let id = id.0.clone();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM migrate_runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()
            .map_err(sql_error)
        })
        .await
    }

    async fn latest_run(&self, migration: &str) -> Result<Option<RunRecord>> {
        let m = migration.to_string();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM migrate_runs WHERE migration = ?1 ORDER BY started_at DESC, rowid DESC LIMIT 1"),
                [m],
                run_from_row,
            )
            .optional()
            .map_err(sql_error)
        })
        .await
    }

    async fn set_run_status(&self, id: &RunId, status: RunStatus) -> Result<()> {
        let id = id.0.clone();
        self.with(move |c| {
            let now = time(Utc::now());
            let finished = status.is_stopped().then(|| now.clone());
            let n = c
                .execute(
                    "UPDATE migrate_runs SET status = ?1, updated_at = ?2, finished_at = ?3 WHERE id = ?4",
                    params![status.as_str(), now, finished, id],
                )
                .map_err(sql_error)?;
            if n == 0 {
                return Err(Error::not_found(format!("no run {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn add_chunks(&self, run: &RunId, chunks: &[ChunkSpec]) -> Result<()> {
        let run = run.0.clone();
        let rows: Vec<(String, Option<String>, u32, String, i64, &'static str)> = chunks
            .iter()
            .map(|c| {
                let (t, s) = TableName::to_columns(&c.table);
                let op = c.operation.as_str();
                Ok((t, s, c.index, json(&c.range)?, c.estimated_rows as i64, op))
            })
            .collect::<Result<_>>()?;
        self.with(move |c| {
            // IMMEDIATE: the write lock first, so the "already planned" check and the inserts
            // see no other worker's in between.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            {
                let mut planned = tx
                    .prepare(
                        "SELECT 1 FROM migration_control WHERE run_id = ?1 AND phase = 'execution' AND table_name = ?2 LIMIT 1",
                    )
                    .map_err(sql_error)?;
                let mut st = tx
                    .prepare(
                        "INSERT INTO migration_control (phase, table_name, table_schema, operation, status, total_records, batch_size, run_id, chunk_index, key_range)
                         VALUES ('execution', ?1, ?2, ?7, 'pending', ?3, ?3, ?4, ?5, ?6)
                         ON CONFLICT (run_id, table_name, chunk_index) WHERE phase = 'execution' DO NOTHING",
                    )
                    .map_err(sql_error)?;
                let mut known: std::collections::HashMap<String, bool> =
                    std::collections::HashMap::new();
                for (t, s, i, range, est, op) in rows {
                    let skip = match known.get(&t) {
                        Some(skip) => *skip,
                        None => {
                            let skip = planned.exists(params![run, t]).map_err(sql_error)?;
                            known.insert(t.clone(), skip);
                            skip
                        }
                    };
                    if !skip {
                        st.execute(params![t, s, est, run, i, range, op]).map_err(sql_error)?;
                    }
                }
            }
            tx.commit().map_err(sql_error)
        })
        .await
    }

    async fn chunks(&self, run: &RunId) -> Result<Vec<ChunkRecord>> {
        let run = run.0.clone();
        self.with(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {CHUNK_COLUMNS} FROM migration_control WHERE run_id = ?1 AND phase = 'execution' ORDER BY table_name, chunk_index"
                ))
                .map_err(sql_error)?;
            let rows = st.query_map([run], chunk_from_row).map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    async fn claim_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ChunkRecord>> {
        let (run, t, worker) = (run.0.clone(), table.clone(), worker.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            let now = time(Utc::now());
            // One statement decides and claims, so two processes can never both win.
            let n = tx
                .execute(
                    "UPDATE migration_control
                        SET status = 'running', attempts = attempts + 1, worker_id = ?1, lease_until = ?2,
                            started_at = ?3, completed_at = NULL
                      WHERE run_id = ?4 AND table_name = ?5 AND chunk_index = ?6 AND phase = 'execution'
                        AND (status IN ('pending', 'failed', 'skipped')
                             OR (status = 'running' AND (worker_id = ?1 OR lease_until IS NULL OR lease_until <= ?3)))",
                    params![worker, lease_end(lease), now, run, t.to_string(), index],
                )
                .map_err(sql_error)?;
            let rec = tx
                .query_row(
                    &format!("SELECT {CHUNK_COLUMNS} FROM migration_control WHERE run_id = ?1 AND table_name = ?2 AND chunk_index = ?3 AND phase = 'execution'"),
                    params![run, t.to_string(), index],
                    chunk_from_row,
                )
                .optional()
                .map_err(sql_error)?
                .ok_or_else(|| no_chunk(&t, index))?;
            tx.commit().map_err(sql_error)?;
            Ok((n == 1).then_some(rec))
        })
        .await
    }

    async fn renew_lease(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let (run, t, worker) = (run.0.clone(), table.to_string(), worker.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE migration_control SET lease_until = ?1
                      WHERE run_id = ?2 AND table_name = ?3 AND chunk_index = ?4 AND phase = 'execution'
                        AND status = 'running' AND worker_id = ?5",
                    params![lease_end(lease), run, t, index, worker],
                )
                .map_err(sql_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn complete_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        worker: &str,
        result: &ChunkResult,
    ) -> Result<bool> {
        let (run, t, worker, r) = (run.0.clone(), table.clone(), worker.to_string(), *result);
        let checksum = r.checksum.map(|c| json(&c)).transpose()?;
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE migration_control
                        SET status = 'completed', records_processed = ?1, bytes = ?2, checksum = ?3, duration_ms = ?4,
                            completed_at = ?5, lease_until = NULL, error_message = NULL, error_kind = NULL
                      WHERE run_id = ?6 AND table_name = ?7 AND chunk_index = ?8 AND phase = 'execution'
                        AND status = 'running' AND worker_id = ?9",
                    params![r.rows as i64, r.bytes as i64, checksum, r.duration_ms as i64, time(Utc::now()), run, t.to_string(), index, worker],
                )
                .map_err(sql_error)?;
            if n == 0 {
                let exists: bool = c
                    .query_row(
                        "SELECT 1 FROM migration_control WHERE run_id = ?1 AND table_name = ?2 AND chunk_index = ?3 AND phase = 'execution'",
                        params![run, t.to_string(), index],
                        |_| Ok(true),
                    )
                    .optional()
                    .map_err(sql_error)?
                    .unwrap_or(false);
                if !exists {
                    return Err(no_chunk(&t, index));
                }
            }
            Ok(n == 1)
        })
        .await
    }

    async fn fail_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        error: &str,
        kind: ErrorKind,
    ) -> Result<()> {
        let (run, t, error) = (run.0.clone(), table.clone(), error.to_string());
        let kind = json(&kind)?;
        self.with(move |c| {
            c.execute(
                "UPDATE migration_control SET status = 'failed', error_message = ?1, error_kind = ?2, lease_until = NULL, completed_at = ?3
                  WHERE run_id = ?4 AND table_name = ?5 AND chunk_index = ?6 AND phase = 'execution' AND status != 'completed'",
                params![error, kind, time(Utc::now()), run, t.to_string(), index],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn skip_chunk(
        &self,
        run: &RunId,
        table: &TableName,
        index: u32,
        reason: &str,
    ) -> Result<()> {
        let (run, t, reason) = (run.0.clone(), table.to_string(), reason.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE migration_control SET status = 'skipped', error_message = ?1, lease_until = NULL, completed_at = ?2
                  WHERE run_id = ?3 AND table_name = ?4 AND chunk_index = ?5 AND phase = 'execution' AND status != 'completed'",
                params![reason, time(Utc::now()), run, t, index],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn reset_table_chunks(&self, run: &RunId, table: &TableName) -> Result<()> {
        let (run, t) = (run.0.clone(), table.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE migration_control
                    SET status = 'pending', worker_id = NULL, lease_until = NULL, records_processed = NULL, bytes = NULL,
                        checksum = NULL, error_message = NULL, error_kind = NULL, started_at = NULL, completed_at = NULL, duration_ms = NULL
                  WHERE run_id = ?1 AND table_name = ?2 AND phase = 'execution'",
                params![run, t],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn put_table(&self, run: &RunId, table: &TableRecord) -> Result<()> {
        self.upsert_table(run, table, false).await.map(|_| ())
    }

    async fn put_table_unless_completed(
        &self,
        run: &RunId,
        table: &TableRecord,
    ) -> Result<Option<TableRecord>> {
        if self.upsert_table(run, table, true).await? {
            return Ok(None);
        }
        // Completed (which only `put_table` undoes): read it back.
        Ok(self
            .tables(run)
            .await?
            .into_iter()
            .find(|r| r.table == table.table))
    }

    async fn tables(&self, run: &RunId) -> Result<Vec<TableRecord>> {
        let run = run.0.clone();
        self.with(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT table_name, table_schema, status, rows, total_rows, prepared, reason, started_at, finished_at
                       FROM migrate_tables WHERE run_id = ?1 ORDER BY table_name",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([run], |r| {
                    Ok(TableRecord {
                        table: TableName::from_columns(r.get(0)?, r.get(1)?),
                        status: enum_from(&r.get::<_, String>(2)?)?,
                        rows: r.get::<_, i64>(3)? as u64,
                        total_rows: r.get::<_, i64>(4)? as u64,
                        prepared: r.get::<_, Option<String>>(5)?.map(|s| from_json(&s)).transpose()?,
                        reason: r.get(6)?,
                        started_at: parse_time(r.get(7)?)?,
                        finished_at: parse_time(r.get(8)?)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    async fn append_event(&self, run: &RunId, event: &AuditEvent) -> Result<()> {
        let (run, e) = (run.0.clone(), event.clone());
        self.with(move |c| {
            let (t, s) = e.table.as_ref().map(TableName::to_columns).unzip();
            c.execute(
                "INSERT INTO migrate_events (run_id, at, action, table_name, table_schema, chunk_index, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run, time(e.at), e.action, t, s.flatten(), e.chunk, e.actor, e.detail],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn events(&self, run: &RunId) -> Result<Vec<AuditEvent>> {
        let run = run.0.clone();
        self.with(move |c| {
            let mut st = c
                .prepare_cached("SELECT at, action, table_name, table_schema, chunk_index, actor, detail FROM migrate_events WHERE run_id = ?1 ORDER BY id")
                .map_err(sql_error)?;
            let rows = st
                .query_map([run], |r| {
                    Ok(AuditEvent {
                        at: parse_time(r.get(0)?)?.unwrap_or_default(),
                        action: r.get(1)?,
                        table: r.get::<_, Option<String>>(2)?.map(|t| TableName::from_columns(t, r.get(3).ok().flatten())),
                        chunk: r.get(4)?,
                        actor: r.get(5)?,
                        detail: r.get(6)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
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
        let run = run.0.clone();
        self.with(move |c| {
            let mut st = c
                .prepare_cached("SELECT table_name, table_schema, chunk_index, record_key, rule, reason, error_kind, record_values, at FROM migrate_rejected WHERE run_id = ?1 AND resolved_at IS NULL ORDER BY id")
                .map_err(sql_error)?;
            let rows = st
                .query_map([run], |r| {
                    Ok(RejectedRecord {
                        table: TableName::from_columns(r.get(0)?, r.get(1)?),
                        chunk: r.get(2)?,
                        key: r.get(3)?,
                        rule: r.get(4)?,
                        reason: r.get(5)?,
                        kind: r
                            .get::<_, Option<String>>(6)?
                            .map(|s| from_json(&s))
                            .transpose()?,
                        values: r.get(7)?,
                        at: parse_time(r.get(8)?)?.unwrap_or_default(),
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    async fn rejected_count(&self, run: &RunId, table: &TableName) -> Result<u64> {
        let (run, (t, _)) = (run.0.clone(), TableName::to_columns(table));
        self.with(move |c| {
            c.query_row(
                "SELECT count(DISTINCT record_key) FROM migrate_rejected WHERE run_id = ?1 AND table_name = ?2 AND resolved_at IS NULL",
                params![run, t],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql_error)
        })
        .await
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
        let (m, tn, w) = (migration.to_string(), table.clone(), json(mark)?);
        self.with(move |c| {
            let (t, s) = TableName::to_columns(&tn);
            c.execute(
                "INSERT INTO migrate_cursors (migration, table_name, table_schema, watermark, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (migration, table_name) DO UPDATE SET watermark = excluded.watermark, updated_at = excluded.updated_at",
                params![m, t, s, w, time(Utc::now())],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn cursor(&self, migration: &str, table: &TableName) -> Result<Option<Watermark>> {
        let (m, t) = (migration.to_string(), table.to_string());
        self.with(move |c| {
            let w: Option<String> = c
                .query_row("SELECT watermark FROM migrate_cursors WHERE migration = ?1 AND table_name = ?2", params![m, t], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            w.map(|w| from_json(&w).map_err(sql_error)).transpose()
        })
        .await
    }

    async fn set_control(&self, run: &RunId, control: Control) -> Result<()> {
        let run = run.0.clone();
        let value = match control {
            Control::Run => "run",
            Control::Pause => "pause",
            Control::Cancel => "cancel",
        };
        self.with(move |c| {
            c.execute(
                "INSERT INTO migrate_control (run_id, control, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (run_id) DO UPDATE SET control = excluded.control, updated_at = excluded.updated_at",
                params![run, value, time(Utc::now())],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn control(&self, run: &RunId) -> Result<Control> {
        let run = run.0.clone();
        self.with(move |c| {
            let v: Option<String> = c
                .query_row(
                    "SELECT control FROM migrate_control WHERE run_id = ?1",
                    [run],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            Ok(match v.as_deref() {
                Some("pause") => Control::Pause,
                Some("cancel") => Control::Cancel,
                _ => Control::Run,
            })
        })
        .await
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

impl SqliteCheckpointStore {
    /// Clears what `clear` says, then upserts `records` (one per run, table, key and rule) —
    /// in one transaction; how many records were cleared.
    async fn write_rejected(
        &self,
        run: &RunId,
        clear: Clear<'_>,
        records: &[RejectedRecord],
    ) -> Result<u64> {
        let (run, recs) = (run.0.clone(), records.to_vec());
        let clear = match clear {
            Clear::Nothing => None,
            Clear::Chunk(t, c) => Some((TableName::to_columns(t).0, Some(c), Vec::new())),
            Clear::Keys(t, keys) => Some((TableName::to_columns(t).0, None, keys.to_vec())),
        };
        self.with(move |c| {
            let tx = c.transaction().map_err(sql_error)?;
            let mut cleared = 0u64;
            match &clear {
                None => {}
                Some((t, Some(chunk), _)) => {
                    cleared += tx
                        .execute(
                            "DELETE FROM migrate_rejected WHERE run_id = ?1 AND table_name = ?2 AND chunk_index = ?3 AND resolved_at IS NULL",
                            params![run, t, chunk],
                        )
                        .map_err(sql_error)? as u64;
                }
                Some((t, None, keys)) => {
                    let mut st = tx
                        .prepare("UPDATE migrate_rejected SET resolved_at = ?4 WHERE run_id = ?1 AND table_name = ?2 AND record_key = ?3 AND resolved_at IS NULL")
                        .map_err(sql_error)?;
                    for k in keys {
                        cleared += st
                            .execute(params![run, t, k, time(Utc::now())])
                            .map_err(sql_error)? as u64;
                    }
                }
            }
            {
                let mut st = tx
                    .prepare(
                        "INSERT INTO migrate_rejected (run_id, table_name, table_schema, chunk_index, record_key, rule, reason, error_kind, record_values, at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (run_id, table_name, record_key, rule) DO UPDATE SET
                             chunk_index = excluded.chunk_index, reason = excluded.reason, error_kind = excluded.error_kind,
                             record_values = excluded.record_values, at = excluded.at, resolved_at = NULL",
                    )
                    .map_err(sql_error)?;
                for r in recs {
                    let (t, s) = TableName::to_columns(&r.table);
                    let kind = r.kind.map(|k| json(&k)).transpose()?;
                    st.execute(params![run, t, s, r.chunk, r.key, r.rule, r.reason, kind, r.values, time(r.at)])
                        .map_err(sql_error)?;
                }
            }
            tx.commit().map_err(sql_error)?;
            Ok(cleared)
        })
        .await
    }
}

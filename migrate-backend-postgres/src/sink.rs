//! [`PgSink`]: creates tables, writes chunks idempotently (delete the range and COPY BINARY in
//! one transaction), upserts, checksums inside Postgres, backs up and rolls back.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use futures_util::{pin_mut, SinkExt};
use migrate_core::objects::{ConstraintKind, Identity, View};
use migrate_core::{
    BatchReader, ChunkSpec, Error, ErrorKind, KeyRange, ObjectKind, ObjectOutcome, Preflight,
    PrepareMode, PrepareOptions, Prepared, Result, Row, RowChecksum, RunId, SequenceValue, Sink,
    SinkCapabilities, TableFilter, TableInfo, TableName, Value, WriteStats, POSTGRES_COPY_BINARY,
};
use tokio_postgres::types::Type;

use crate::advisory::SessionLock;
use crate::config::PgConfig;
use crate::copy_binary::{header, TupleEncoder, TRAILER};
use crate::ddl;
use crate::deferred_key;
use crate::discovery::{discover_columns, pg_type_name, PgTable};
use crate::error::{pg_error, pool_error};
use crate::objects;
use crate::preparation;
use crate::reader::{self, CopyReader};
use crate::sql::{self, ident, keys_predicate, range_predicate};

/// Sink settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSinkOptions {
    /// Create the source's foreign keys once a table's data is complete (default true). They
    /// are created after the data, as pgcopydb does, so loading order within a table is free.
    pub create_foreign_keys: bool,
    /// `ANALYZE` each table once loaded (default true).
    pub analyze: bool,
    /// Build the primary key of each table this sink creates after its data rather than
    /// before (default true): much faster loads, at the price of a `_migrate` schema in the
    /// target holding which tables are still loading (see the `deferred_key` module). Turn it
    /// off where the target role may not create a schema.
    pub keys_after_data: bool,
    /// Create the extensions the source's columns need (`CREATE EXTENSION`) where the target
    /// server offers them (default true); when false, or when the server does not, a missing
    /// extension is a problem named at plan time.
    pub create_extensions: bool,
    /// Behaviour and access objects to copy; each one not copied is listed as such.
    pub copy: CopyExtras,
    /// Index builds at once (default 2), across every table this sink finalizes — as
    /// pgcopydb's `--index-jobs`: tables finalize while others still copy, and one table's
    /// indexes build side by side. Each build is one server backend and one pooled connection.
    pub index_jobs: usize,
}

/// Triggers, policies, grants and owners: not schema but behaviour and access, so copied only
/// when asked (a trigger firing on the target, a grant to a role of another environment).
/// Whatever is not copied is listed in plans and reports as not copied, with the option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyExtras {
    /// Triggers and their functions (created after the data, so they do not fire on it).
    pub triggers: bool,
    /// Row-level security and its policies.
    pub policies: bool,
    /// Table privileges granted to roles (a grant to a role the target lacks is listed).
    pub grants: bool,
    /// The table's owner (where the role exists in the target).
    pub owner: bool,
}

impl CopyExtras {
    /// Whether objects of `kind` are copied, and the option that decides.
    pub fn decides(&self, kind: ObjectKind) -> (bool, &'static str) {
        match kind {
            ObjectKind::Trigger => (
                self.triggers,
                "schema.triggers = true (CopyExtras::triggers)",
            ),
            ObjectKind::Policy => (
                self.policies,
                "schema.policies = true (CopyExtras::policies)",
            ),
            ObjectKind::Grant => (self.grants, "schema.grants = true (CopyExtras::grants)"),
            _ => (self.owner, "schema.owner = true (CopyExtras::owner)"),
        }
    }
}

impl Default for PgSinkOptions {
    fn default() -> Self {
        PgSinkOptions {
            create_foreign_keys: true,
            analyze: true,
            keys_after_data: true,
            create_extensions: true,
            copy: CopyExtras::default(),
            index_jobs: 2,
        }
    }
}

/// Writes to Postgres.
pub struct PgSink {
    config: PgConfig,
    pool: Pool,
    options: PgSinkOptions,
    /// Target column wire types, by table (from the target's catalog).
    targets: std::sync::Mutex<HashMap<TableName, Arc<PgTable>>>,
    /// Whether the target has the deferred-key state tables (`None`: not looked yet).
    key_state: std::sync::Mutex<Option<bool>>,
    /// Whether the role may set `session_replication_role` (`None`: not asked yet).
    replica_role: std::sync::Mutex<Option<bool>>,
    /// Build slots (`PgSinkOptions::index_jobs`): a table's finalize holds one throughout.
    index_jobs: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish()
    }
}

/// The backup of `t` taken by `run`: one per run and table, so a later run's backup never
/// overwrites the one an earlier run's rollback needs. At most 63 bytes (Postgres would cut a
/// longer name, and the suffix with it): a prefix of the name, the run's first characters and a
/// hash of the whole name, so two long names sharing a prefix get two backups.
fn backup_name(t: &TableName, run: &RunId) -> TableName {
    let mut name = String::new();
    for ch in t.name.chars() {
        if name.len() + ch.len_utf8() > 36 {
            break;
        }
        name.push(ch);
    }
    // FNV-1a: stable across builds, which the stored name does not need, but a test may.
    let hash = t.name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let run8: String = run
        .0
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    name.push_str(&format!("{BACKUP_MARK}{run8}_{:06x}", hash & 0xff_ffff));
    TableName {
        schema: t.schema.clone(),
        name,
    }
}

/// The temporary table rows are staged in where the target's columns need a cast.
const STAGE: &str = "migrate_stage";

/// How a target table takes a table's columns (see [`PgSink::wire`]).
#[derive(Debug, Default)]
struct TargetColumns {
    /// Wire types, in the order of the written table's schema.
    types: Vec<Type>,
    /// Expressions reading them back in those wire types.
    exprs: Vec<String>,
    /// The columns' own types (cast into from the staging table).
    own: Vec<Option<String>>,
    /// Whether every column takes its wire form as it is (else rows go through staging).
    direct: bool,
    /// The target table has enabled user triggers.
    triggers: bool,
}

impl TargetColumns {
    /// `INSERT INTO table … SELECT … FROM` the staging table, casting where needed, then
    /// `tail` (an `ON CONFLICT` clause). Identity columns take the source's values.
    fn insert_from_stage(&self, table: &TableInfo, tail: &str) -> String {
        let cols = column_idents(table);
        let values: Vec<String> = cols
            .iter()
            .zip(&self.own)
            .map(|(c, cast)| match cast {
                Some(t) => format!("{c}::{t}"),
                None => c.clone(),
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {STAGE}{tail}",
            sql::table(&table.name),
            cols.join(", "),
            values.join(", ")
        )
    }
}

/// `table`'s column names, quoted, in its order.
fn column_idents(table: &TableInfo) -> Vec<String> {
    table
        .schema
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect()
}

/// What every backup name holds (rollback checks it before touching a table by that name).
const BACKUP_MARK: &str = "__bk_";
/// How earlier versions named a backup (one per table, restored by renaming it back).
const LEGACY_BACKUP_MARK: &str = "__migrate_backup";

/// The name of a foreign key of `table`: the source's, or Postgres's default form.
fn fk_name(table: &TableInfo, fk: &migrate_core::ForeignKey) -> String {
    fk.name
        .clone()
        .unwrap_or_else(|| format!("{}_{}_fkey", table.name.name, fk.columns.join("_")))
}

/// Rows in table `name` (quoted).
async fn count_rows(client: &impl deadpool_postgres::GenericClient, name: &str) -> Result<u64> {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {name}"), &[])
        .await
        .map_err(|e| pg_error(e, &format!("counting the rows of {name}")))?
        .get(0);
    Ok(n.max(0) as u64)
}

use migrate_core::plan::compatible;

impl PgSink {
    /// A sink for the database at `url`.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_config(PgConfig::from_url(url)?, PgSinkOptions::default())
    }

    /// A sink from a parsed configuration.
    pub fn with_config(config: PgConfig, options: PgSinkOptions) -> Result<Self> {
        Ok(PgSink {
            pool: config.pool()?,
            index_jobs: Arc::new(tokio::sync::Semaphore::new(options.index_jobs.max(1))),
            config,
            options,
            targets: std::sync::Mutex::new(HashMap::new()),
            key_state: std::sync::Mutex::new(None),
            replica_role: std::sync::Mutex::new(None),
        })
    }

    async fn conn(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, self.config.redacted()))
    }

    async fn target_meta(
        &self,
        conn: &Object,
        name: &TableName,
        refresh: bool,
    ) -> Result<Option<Arc<PgTable>>> {
        if !refresh {
            if let Some(m) = self
                .targets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
            {
                return Ok(Some(m.clone()));
            }
        }
        let filter = TableFilter {
            include: vec![glob_escape(&name.to_string())],
            exclude: vec![],
            ..Default::default()
        };
        let found = discover_columns(conn, &filter)
            .await?
            .into_iter()
            .find(|t| &t.info.name == name)
            .map(Arc::new);
        if let Some(m) = &found {
            self.targets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), m.clone());
        }
        Ok(found)
    }

    /// How the target takes `table`'s columns, in the order of its schema: wire types, and the
    /// target's own types where a column needs a cast from its wire form.
    async fn wire(&self, conn: &Object, table: &TableInfo) -> Result<TargetColumns> {
        let meta = self
            .target_meta(conn, &table.name, false)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("target table {} does not exist", table.name))
                    .table(&table.name)
            })?;
        let mut out = TargetColumns {
            direct: true,
            triggers: meta.user_triggers,
            ..Default::default()
        };
        for c in &table.schema.columns {
            let i = meta.info.schema.index_of(&c.name).ok_or_else(|| {
                Error::schema(format!(
                    "target table {} has no column {:?}",
                    table.name, c.name
                ))
                .table(&table.name)
            })?;
            out.types.push(meta.wire[i].clone());
            out.exprs.push(meta.exprs[i].clone());
            out.own.push(Some(meta.cast_to[i].clone()));
            out.direct &= meta.direct[i];
        }
        Ok(out)
    }

    /// Differences that stop the run from writing `table` into the existing `target`.
    fn problems(table: &TableInfo, target: &TableInfo) -> Vec<String> {
        let mut out = Vec::new();
        for c in &table.schema.columns {
            match target.schema.columns.iter().find(|t| t.name == c.name) {
                None => out.push(format!(
                    "target table {} has no column {:?}",
                    table.name, c.name
                )),
                Some(t) if !compatible(&c.data_type, &t.data_type) => out.push(format!(
                    "column {:?} of {}: source type {} does not fit target type {}",
                    c.name, table.name, c.data_type, t.data_type
                )),
                _ => {}
            }
        }
        for t in &target.schema.columns {
            if !t.nullable && t.default.is_none() && table.schema.index_of(&t.name).is_none() {
                out.push(format!("target column {:?} of {} is NOT NULL without a default and the source has no such column", t.name, table.name));
            }
        }
        out
    }

    /// Whether chunk writes should look for a deferred key's markers (the state tables exist;
    /// looked up once per sink, since a resumed process may write without preparing).
    async fn has_key_state(&self, conn: &Object) -> Result<bool> {
        if !self.options.keys_after_data {
            return Ok(false);
        }
        if let Some(known) = *self.key_state.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(known);
        }
        let exists: bool = conn
            .query_one("SELECT to_regclass('_migrate.written') IS NOT NULL", &[])
            .await
            .map_err(|e| pg_error(e, "looking for the sink's state tables"))?
            .get(0);
        *self.key_state.lock().unwrap_or_else(|p| p.into_inner()) = Some(exists);
        Ok(exists)
    }

    async fn copy_into(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        target: &str,
        table: &TableInfo,
        types: &[Type],
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let cols = column_idents(table);
        let sink = tx
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {target} ({}) FROM STDIN (FORMAT binary)",
                cols.join(", ")
            ))
            .await
            .map_err(|e| pg_error(e, &format!("COPY into {}", table.name)))?;
        pin_mut!(sink);
        let mut stats = WriteStats::default();
        let sending = |e| pg_error(e, &format!("writing rows of {}", table.name));
        if passes_through(rows, table, types) {
            // The source's tuples are already what this COPY takes: forward them.
            sink.as_mut().send(header()).await.map_err(sending)?;
            while let Some(batch) = rows.next_encoded().await? {
                stats.bytes += batch.byte_size() as u64;
                stats.rows += batch.len() as u64;
                sink.as_mut()
                    .send(batch.bytes().clone())
                    .await
                    .map_err(sending)?;
            }
            sink.as_mut()
                .send(bytes::Bytes::from_static(TRAILER))
                .await
                .map_err(sending)?;
        } else {
            let mut encoder = TupleEncoder::new();
            while let Some(batch) = rows.next_batch().await? {
                stats.bytes += batch.byte_size() as u64;
                for row in batch.rows() {
                    encoder.row(row, types).map_err(|(i, e)| {
                        Error::with_source(
                            ErrorKind::Validation,
                            format!(
                                "table {}: column {:?} could not be encoded",
                                table.name, table.schema.columns[i].name
                            ),
                            e,
                        )
                    })?;
                    stats.rows += 1;
                    if encoder.should_flush() {
                        sink.as_mut().send(encoder.take()).await.map_err(sending)?;
                    }
                }
            }
            encoder.finish();
            sink.as_mut().send(encoder.take()).await.map_err(sending)?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| pg_error(e, &format!("finishing COPY into {}", table.name)))?;
        Ok(stats)
    }

    /// Keeps the target's user triggers from firing on the rows this transaction writes
    /// (`session_replication_role = replica`, as logical replication does: the source's
    /// triggers already acted on them), where the role may; otherwise they fire, and a warning
    /// says so once.
    async fn quiet_triggers(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        table: &TableInfo,
        columns: &TargetColumns,
    ) -> Result<()> {
        if !columns.triggers {
            return Ok(());
        }
        let known = *self.replica_role.lock().unwrap_or_else(|p| p.into_inner());
        let may = match known {
            Some(may) => may,
            None => {
                let fail = |e| pg_error(e, "checking the role's privileges");
                let mut may: bool = tx
                    .query_one(
                        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                        &[],
                    )
                    .await
                    .map_err(fail)?
                    .get(0);
                let version: i32 = tx
                    .query_one("SELECT current_setting('server_version_num')::int", &[])
                    .await
                    .map_err(fail)?
                    .get(0);
                if !may && version >= 150_000 {
                    may = tx
                        .query_one(
                            "SELECT has_parameter_privilege('session_replication_role', 'SET')",
                            &[],
                        )
                        .await
                        .map_err(fail)?
                        .get(0);
                }
                if !may {
                    tracing::warn!(table = %table.name, "the target table has triggers, and this role may not set session_replication_role: they fire on the rows written");
                }
                *self.replica_role.lock().unwrap_or_else(|p| p.into_inner()) = Some(may);
                may
            }
        };
        if may {
            tx.batch_execute("SET LOCAL session_replication_role = replica")
                .await
                .map_err(|e| pg_error(e, "keeping triggers from firing"))?;
        }
        Ok(())
    }

    /// Loads `rows` into a temporary table of wire-typed columns (dropped at commit), for an
    /// `INSERT … SELECT` that casts and may upsert.
    async fn stage(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        table: &TableInfo,
        columns: &TargetColumns,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let defs: Vec<String> = table
            .schema
            .columns
            .iter()
            .zip(&columns.types)
            .map(|(c, t)| format!("{} {}", ident(&c.name), pg_type_name(t)))
            .collect();
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {STAGE} ({}) ON COMMIT DROP",
            defs.join(", ")
        ))
        .await
        .map_err(|e| pg_error(e, "creating the staging table"))?;
        self.copy_into(tx, STAGE, table, &columns.types, rows).await
    }

    async fn prepare_locked(
        &self,
        conn: &mut Object,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
    ) -> Result<Prepared> {
        let name = sql::table(&table.name);
        // A table still loading was created by another run, or by a worker of this run racing
        // us: its key is built now, so that writes into it from here on clear their ranges.
        deferred_key::build(conn, &name).await?;
        deferred_key::ensure_state(conn).await?;
        *self.key_state.lock().unwrap_or_else(|p| p.into_inner()) = Some(true);
        let existing = self.target_meta(conn, &table.name, true).await?;
        if existing.is_some() {
            if let Some(p) = preparation::load(&*conn, &name, run).await? {
                return Ok(p);
            }
        }
        // UNIQUE constraints are built with the deferred key: a child's foreign key may name
        // them, and it builds its parent's key before it is created.
        let add_key = deferred_key::add_key_sql(table)
            .filter(|_| self.options.keys_after_data)
            .map(|key| {
                ddl::constraints(table)
                    .into_iter()
                    .filter(|(_, kind, _)| *kind == ConstraintKind::Unique)
                    .fold(key, |all, (_, _, sql)| format!("{all}; {sql}"))
            });
        let creates = match (&existing, options.mode) {
            (None, PrepareMode::RequireExisting) => false,
            (None, _) | (Some(_), PrepareMode::Recreate) => true,
            (Some(_), _) => false,
        };
        if creates {
            objects::shared(conn, table, self.options.create_extensions).await?;
        } else if existing.is_some() {
            objects::evolve(conn, table).await?;
        }
        let mut prepared = Prepared::default();
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "prepare"))?;
        if let Some(s) = &table.name.schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(s)))
                .await
                .map_err(|e| pg_error(e, "creating the schema"))?;
        }
        match (&existing, options.mode) {
            (None, PrepareMode::RequireExisting) => {
                return Err(Error::not_found(format!(
                    "target table {} does not exist and prepare mode requires it",
                    table.name
                ))
                .table(&table.name));
            }
            (Some(target), PrepareMode::CreateIfMissing | PrepareMode::RequireExisting) => {
                let problems = Self::problems(table, &target.info);
                if !problems.is_empty() {
                    return Err(Error::schema(problems.join("; ")).table(&table.name));
                }
                let rows = count_rows(&tx, &name).await?;
                prepared.existing_rows = Some(rows);
                let merge = options.existing_rows.decide(
                    &table.name,
                    rows,
                    !table.schema.primary_key.is_empty(),
                )?;
                if rows > 0 {
                    if merge {
                        // Upserts need the key unique in the target (ON CONFLICT).
                        let mut key: Vec<String> =
                            table.primary_key().iter().map(|k| k.to_string()).collect();
                        key.sort();
                        let unique: bool = tx
                            .query_one(
                                "SELECT EXISTS (SELECT 1 FROM pg_index i
                                   WHERE i.indrelid = $1::text::regclass AND i.indisunique
                                     AND i.indpred IS NULL AND i.indnkeyatts = cardinality($2::text[])
                                     AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                                          FROM pg_attribute a WHERE a.attrelid = i.indrelid
                                            AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1])) = $2::text[])",
                                &[&name, &key],
                            )
                            .await
                            .map_err(|e| pg_error(e, &format!("looking at the keys of {}", table.name)))?
                            .get(0);
                        if !unique {
                            return Err(Error::config(format!(
                                "target table {} holds {rows} rows but no unique key on ({}) to merge by (prepare.existing_rows = \"merge\")",
                                table.name,
                                key.join(", ")
                            ))
                            .table(&table.name));
                        }
                        prepared.merge = true;
                    } else {
                        // Chunk writes clear their ranges: no other table's rows may go with
                        // them, and this table's own foreign keys must not hold its parents'
                        // deletes up (they are set aside and come back at finalize).
                        preparation::refuse_cascades(&tx, &name, &table.name).await?;
                        preparation::set_foreign_keys_aside(&tx, &name).await?;
                    }
                    if options.backup {
                        let b = sql::table(&backup_name(&table.name, run));
                        tx.batch_execute(&format!(
                            "DROP TABLE IF EXISTS {b}; CREATE TABLE {b} AS TABLE {name}"
                        ))
                        .await
                        .map_err(|e| pg_error(e, &format!("backing up {}", table.name)))?;
                        prepared.backup = Some(backup_name(&table.name, run).to_string());
                    }
                } else if add_key.is_some() {
                    // An empty existing table loads like one this sink created: each chunk's
                    // first write skips its range DELETE — which, where the target has no index
                    // on the key (schemas created data-first, as pg_dump's pre-data section
                    // does), would scan the whole table once per chunk. Nothing is built at
                    // finalize: the table's own indexes are its owner's business.
                    deferred_key::start(&tx, &name, "", false).await?;
                }
                prepared.objects = self
                    .plan_objects(table)
                    .into_iter()
                    .filter(|o| o.kind.made_with_table())
                    .map(|o| ObjectOutcome {
                        not_created: Some(
                            "the target table existed: its definition is left as it is".into(),
                        ),
                        ..o
                    })
                    .collect();
                preparation::save(&tx, &name, run, &prepared).await?;
                tx.commit().await.map_err(|e| pg_error(e, "prepare"))?;
                return Ok(prepared);
            }
            (Some(_), PrepareMode::Recreate) => {
                if options.backup {
                    // The old table itself becomes the backup (rollback renames it back).
                    let backup = backup_name(&table.name, run);
                    tx.batch_execute(&format!(
                        "DROP TABLE IF EXISTS {}; ALTER TABLE {name} RENAME TO {}",
                        sql::table(&backup),
                        ident(&backup.name)
                    ))
                    .await
                    .map_err(|e| pg_error(e, &format!("backing up {}", table.name)))?;
                    preparation::rename_dependents(&tx, &sql::table(&backup), |n| {
                        backup_name(n, run)
                    })
                    .await?;
                    prepared.backup = Some(backup.to_string());
                } else {
                    tx.batch_execute(&format!("DROP TABLE {name} CASCADE"))
                        .await
                        .map_err(|e| pg_error(e, &format!("dropping {}", table.name)))?;
                }
            }
            (None, _) => {}
        }
        // After a recreated table's old sequences went (dropped, or renamed with its backup),
        // and taking turns with other tables that may share one.
        objects::sequences(&tx, table).await?;
        tx.batch_execute(&ddl::create_table(table, add_key.is_none())?)
            .await
            .map_err(|e| pg_error(e, &format!("creating {}", table.name)))?;
        for statement in ddl::after_create(table) {
            tx.batch_execute(&statement)
                .await
                .map_err(|e| pg_error(e, &format!("creating {}: {statement}", table.name)))?;
        }
        prepared.objects = self
            .plan_objects(table)
            .into_iter()
            .filter(|o| o.kind.made_with_table())
            .collect();
        if let Some(add_key) = &add_key {
            deferred_key::start(&tx, &name, add_key, true).await?;
        }
        prepared.created = prepared.backup.is_none();
        preparation::save(&tx, &name, run, &prepared).await?;
        tx.commit().await.map_err(|e| pg_error(e, "prepare"))?;
        self.target_meta(conn, &table.name, true).await?;
        Ok(prepared)
    }

    /// `finalize` under the table's lock: the primary key (if deferred), foreign keys,
    /// secondary indexes, `ANALYZE`. Whatever another worker already created with the same
    /// definition counts as done; a namesake with another definition is an error naming it.
    /// `ANALYZE` runs again for a late worker, after the first one's (harmless, serialized).
    async fn finalize_locked(
        &self,
        conn: &mut Object,
        table: &TableInfo,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Vec<ObjectOutcome>> {
        let name = sql::table(&table.name);
        deferred_key::build(conn, &name).await?;
        let mut out = self
            .plan_objects(table)
            .into_iter()
            .filter(|o| o.kind == ObjectKind::PrimaryKey)
            .collect::<Vec<_>>();
        out.extend(objects::constraints(conn, table).await?);
        let mut builds = Vec::new();
        for index in &table.indexes {
            // Built after the data (one sort instead of per-row maintenance). The source's own
            // definition names the same table, which is the target's name too.
            let Some(def) = &index.definition else {
                let why = "an index the source described without a definition";
                out.push(ObjectOutcome::skipped(
                    ObjectKind::Index,
                    &index.name,
                    Some(&table.name),
                    why,
                ));
                continue;
            };
            // A partitioned table's index, built on the partitions too (`ON ONLY` would leave
            // it invalid until each partition's index is attached).
            let def = def.replacen(" ON ONLY ", " ON ", 1);
            // An index lives in its table's schema.
            let qualified = sql::table(&TableName {
                schema: table.name.schema.clone(),
                name: index.name.clone(),
            });
            out.push(ObjectOutcome::created(
                ObjectKind::Index,
                &index.name,
                Some(&table.name),
            ));
            match existing_index(conn, &qualified, &name).await? {
                Some(found) => found.same_as(&def, &index.name, table)?,
                None => builds.push(IndexBuild {
                    def,
                    qualified,
                    index: index.name.clone(),
                }),
            }
        }
        self.build_indexes(conn, table, permit, builds).await?;
        // Foreign keys hold no build slot: adding one waits for the parent's locks (its index
        // builds), and a slot held meanwhile would idle.
        if self.options.create_foreign_keys {
            for fk in &table.foreign_keys {
                let parent = sql::table(&fk.referenced_table);
                // A foreign key needs the parent's key, which may still be deferred.
                deferred_key::build(conn, &parent).await?;
                let cname = fk_name(table, fk);
                let fk_outcome = |why: Option<String>| ObjectOutcome {
                    kind: ObjectKind::ForeignKey,
                    name: fk.name.clone().unwrap_or_else(|| fk.columns.join(", ")),
                    table: Some(table.name.clone()),
                    not_created: why,
                };
                if let Some(found) = existing_foreign_key(conn, &name, &cname, &parent).await? {
                    found.same_as(fk, &cname, table)?;
                    out.push(fk_outcome(None));
                    continue;
                }
                let parent_exists: bool = conn
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&parent])
                    .await
                    .map_err(|e| pg_error(e, "checking foreign keys"))?
                    .get(0);
                if !parent_exists {
                    tracing::warn!(table = %table.name, parent = %fk.referenced_table, "foreign key not created: the parent table is not in the target");
                    let why = format!(
                        "the parent table {} is not in the target",
                        fk.referenced_table
                    );
                    out.push(fk_outcome(Some(why)));
                    continue;
                }
                let cols = |c: &[String]| c.iter().map(|x| ident(x)).collect::<Vec<_>>().join(", ");
                // From Postgres, the source's own definition keeps actions and deferrability.
                let definition = match (&fk.definition, ddl::same_engine(table)) {
                    (Some(d), true) => d.clone(),
                    _ => format!(
                        "FOREIGN KEY ({}) REFERENCES {parent} ({})",
                        cols(&fk.columns),
                        cols(&fk.referenced_columns)
                    ),
                };
                let created = conn
                    .batch_execute(&format!(
                        "ALTER TABLE {name} ADD CONSTRAINT {} {definition}",
                        ident(&cname)
                    ))
                    .await;
                if let Err(e) = created {
                    // Created a moment ago by someone not taking our lock?
                    match existing_foreign_key(conn, &name, &cname, &parent).await? {
                        Some(found) => found.same_as(fk, &cname, table)?,
                        None => {
                            return Err(pg_error(
                                e,
                                &format!("creating foreign key {cname} on {}", table.name),
                            ))
                        }
                    }
                }
                out.push(fk_outcome(None));
            }
        }
        if self.options.analyze {
            conn.batch_execute(&format!("ANALYZE {name}"))
                .await
                .map_err(|e| pg_error(e, "ANALYZE"))?;
        }
        Ok(out)
    }

    /// Builds `builds` on `conn` and, side by side, on one more connection for each build
    /// slot and pooled connection free now (`PgSinkOptions::index_jobs`, shared by every table
    /// this sink finalizes). `CREATE INDEX` takes a lock that lets the others build on the same
    /// table. `permit` is the slot `conn` builds in. While a slot is held, neither slots nor
    /// connections are waited for, so finalizes never wait on each other (nor starve the pool).
    /// Every lane runs to its end before the slots are given back, even when one fails.
    async fn build_indexes(
        &self,
        conn: &Object,
        table: &TableInfo,
        permit: tokio::sync::OwnedSemaphorePermit,
        builds: Vec<IndexBuild>,
    ) -> Result<()> {
        let mut lanes: Vec<(Option<Object>, Vec<IndexBuild>)> = vec![(None, Vec::new())];
        let mut slots = vec![permit];
        let now = deadpool_postgres::Timeouts {
            wait: Some(std::time::Duration::ZERO),
            ..deadpool_postgres::Timeouts::new()
        };
        while lanes.len() < builds.len() {
            let Ok(slot) = self.index_jobs.clone().try_acquire_owned() else {
                break;
            };
            let Ok(lane) = self.pool.timeout_get(&now).await else {
                break;
            };
            slots.push(slot);
            lanes.push((Some(lane), Vec::new()));
        }
        let n = lanes.len();
        for (i, b) in builds.into_iter().enumerate() {
            lanes[i % n].1.push(b);
        }
        let name = sql::table(&table.name);
        // Definitions are qualified; only the comparison with an index found needs the
        // finalizing connection's empty search path, so it runs there.
        let lane = |own: Option<Object>, builds: Vec<IndexBuild>| {
            let name = name.clone();
            async move {
                let c = own.as_ref().unwrap_or(conn);
                for b in builds {
                    let Err(e) = c.batch_execute(&b.def).await else {
                        continue;
                    };
                    // Created a moment ago by someone not taking our lock?
                    match existing_index(conn, &b.qualified, &name).await? {
                        Some(found) => found.same_as(&b.def, &b.index, table)?,
                        None => {
                            return Err(pg_error(
                                e,
                                &format!("creating index {} on {}", b.index, table.name),
                            ))
                        }
                    }
                }
                Ok(())
            }
        };
        let results =
            futures_util::future::join_all(lanes.into_iter().map(|(own, b)| lane(own, b))).await;
        drop(slots);
        results.into_iter().collect()
    }

    async fn read_rows(&self, t: &TableInfo, where_sql: &str) -> Result<Vec<Row>> {
        let conn = self.conn().await?;
        let columns = self.wire(&conn, t).await?;
        let wire = columns.types;
        let q = format!(
            "COPY (SELECT {} FROM {} WHERE {where_sql}) TO STDOUT (FORMAT binary)",
            columns.exprs.join(", "),
            sql::table(&t.name)
        );
        let stream = conn
            .copy_out(q.as_str())
            .await
            .map_err(|e| not_found_or(e, t))?;
        let mut reader = CopyReader::new(
            conn,
            stream,
            wire,
            t.schema.clone(),
            10_000,
            t.name.to_string(),
        );
        migrate_core::collect_rows(&mut reader).await
    }
}

/// Whether `rows` can be forwarded undecoded into a COPY of `table`'s columns with the wire
/// types `types`: the reader offers COPY BINARY tuples of exactly those types, in the same
/// column order.
fn passes_through(rows: &dyn BatchReader, table: &TableInfo, types: &[Type]) -> bool {
    let Some(encoding) = rows.encoding() else {
        return false;
    };
    let oids: Vec<u32> = types.iter().map(Type::oid).collect();
    let (from, to) = (&rows.schema().columns, &table.schema.columns);
    encoding.matches(POSTGRES_COPY_BINARY, &oids)
        && from.len() == to.len()
        && from.iter().zip(to).all(|(f, t)| f.name == t.name)
}

/// An index to build in `finalize`.
struct IndexBuild {
    def: String,
    qualified: String,
    index: String,
}

/// A constraint found in the target under a foreign key's name.
struct FoundForeignKey {
    /// A foreign key onto the expected parent table.
    onto_parent: bool,
    columns: Vec<String>,
    referenced_columns: Vec<String>,
    /// As Postgres prints it.
    definition: String,
}

impl FoundForeignKey {
    /// Done when it is the foreign key `fk` would create; otherwise an error naming both.
    fn same_as(&self, fk: &migrate_core::ForeignKey, cname: &str, t: &TableInfo) -> Result<()> {
        if self.onto_parent
            && self.columns == fk.columns
            && self.referenced_columns == fk.referenced_columns
        {
            return Ok(());
        }
        Err(Error::schema(format!(
            "constraint {cname} on {} already exists as {} where the source has FOREIGN KEY ({}) REFERENCES {}({}): drop or rename it in the target",
            t.name,
            self.definition,
            fk.columns.join(", "),
            fk.referenced_table,
            fk.referenced_columns.join(", ")
        ))
        .table(&t.name))
    }
}

/// The constraint named `cname` on `table` (quoted), if there is one.
async fn existing_foreign_key(
    conn: &Object,
    table: &str,
    cname: &str,
    parent: &str,
) -> Result<Option<FoundForeignKey>> {
    let row = conn
        .query_opt(
            "SELECT c.contype = 'f' AND c.confrelid = COALESCE(to_regclass($3), 0),
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, ord)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.ord),
                    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, ord)
                            JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.ord),
                    pg_get_constraintdef(c.oid)
               FROM pg_constraint c
              WHERE c.conname = $1 AND c.conrelid = to_regclass($2)",
            &[&cname, &table, &parent],
        )
        .await
        .map_err(|e| pg_error(e, "checking foreign keys"))?;
    Ok(row.map(|r| FoundForeignKey {
        onto_parent: r.get(0),
        columns: r.get(1),
        referenced_columns: r.get(2),
        definition: r.get(3),
    }))
}

/// A relation found in the target under an index's name.
struct FoundIndex {
    /// An index of the expected table.
    on_table: bool,
    /// `CREATE INDEX …` as Postgres prints it (`None`: not an index).
    definition: Option<String>,
}

impl FoundIndex {
    /// Done when it is the index `def` creates; otherwise an error naming both.
    fn same_as(&self, def: &str, index: &str, t: &TableInfo) -> Result<()> {
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match &self.definition {
            Some(found) if self.on_table && words(found) == words(def) => Ok(()),
            Some(found) => Err(Error::schema(format!(
                "index {index} on {} cannot be created: the target already has {found} where the source has {def}; drop or rename it in the target",
                t.name
            ))
            .table(&t.name)),
            None => Err(Error::schema(format!(
                "index {index} on {} cannot be created: a relation of that name that is not an index already exists in the target",
                t.name
            ))
            .table(&t.name)),
        }
    }
}

/// The relation named `qualified` (the index's name in its table's schema, quoted), if any.
async fn existing_index(conn: &Object, qualified: &str, table: &str) -> Result<Option<FoundIndex>> {
    let row = conn
        .query_opt(
            "SELECT COALESCE(i.indrelid = to_regclass($2), false),
                    CASE WHEN c.relkind IN ('i', 'I') THEN pg_get_indexdef(c.oid) END
               FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
              WHERE c.oid = to_regclass($1)",
            &[&qualified, &table],
        )
        .await
        .map_err(|e| pg_error(e, "checking indexes"))?;
    Ok(row.map(|r| FoundIndex {
        on_table: r.get(0),
        definition: r.get(1),
    }))
}

/// `*` and `?` are glob characters in table filters; escape them in an exact name.
fn glob_escape(s: &str) -> String {
    s.replace('*', "[*]").replace('?', "[?]")
}

fn not_found_or(e: tokio_postgres::Error, t: &TableInfo) -> Error {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
        Error::with_source(
            ErrorKind::NotFound,
            format!("target table {} does not exist", t.name),
            e,
        )
        .table(&t.name)
    } else {
        pg_error(e, &format!("reading {}", t.name))
    }
}

#[async_trait]
impl Sink for PgSink {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            upsert: true,
            backup: true,
        }
    }

    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(e) => {
                return Ok(Preflight {
                    problems: vec![e.to_string()],
                    ..Default::default()
                })
            }
        };
        let mut p = Preflight {
            reachable: true,
            ..Default::default()
        };
        match self.target_meta(&conn, &table.name, true).await? {
            Some(target) => {
                p.exists = true;
                p.problems = Self::problems(table, &target.info);
                let privileges = conn
                    .query_one(
                        "SELECT has_table_privilege($1, 'INSERT') AND has_table_privilege($1, 'DELETE'),
                                has_table_privilege($1, 'SELECT')",
                        &[&sql::table(&table.name)],
                    )
                    .await
                    .map_err(|e| pg_error(e, "checking privileges"))?;
                if !privileges.get::<_, bool>(0) {
                    p.problems
                        .push(format!("no INSERT and DELETE privilege on {}", table.name));
                }
                if privileges.get::<_, bool>(1) {
                    p.rows = Some(count_rows(&conn, &sql::table(&table.name)).await?);
                }
            }
            None => {
                let schema = table.name.schema.clone().unwrap_or_else(|| "public".into());
                let ok: bool = conn
                    .query_one(
                        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'CREATE')
                                     ELSE has_database_privilege(current_database(), 'CREATE') END",
                        &[&schema],
                    )
                    .await
                    .map_err(|e| pg_error(e, "checking privileges"))?
                    .get(0);
                if !ok {
                    p.problems.push(format!(
                        "no privilege to create {} (schema {schema})",
                        table.name
                    ));
                }
                if let Err(e) = ddl::create_table(table, true) {
                    p.problems.push(e.to_string());
                }
                let create = self.options.create_extensions;
                p.problems
                    .extend(objects::missing_extensions(&conn, table, create).await?);
            }
        }
        Ok(p)
    }

    async fn prepare(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
    ) -> Result<Prepared> {
        // Workers sharing a migration may prepare the same table at once: serialize them on a
        // per-table advisory lock and decide only after taking it (a connection abandoned
        // holding it is closed, not pooled, so the lock goes with it).
        let key = format!("migrate prepare {}", table.name);
        let mut lock = SessionLock::acquire(self.conn().await?, key).await?;
        let result = self.prepare_locked(lock.conn()?, table, options, run).await;
        let released = lock.release().await;
        let prepared = result?;
        released?;
        Ok(prepared)
    }

    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let mut conn = self.conn().await?;
        let columns = self.wire(&conn, table).await?;
        let name = sql::table(&table.name);
        let markers = !table.schema.primary_key.is_empty() && self.has_key_state(&conn).await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "write_chunk"))?;
        self.quiet_triggers(&tx, table, &columns).await?;
        let first = markers && deferred_key::first_write(&tx, &name, chunk.index).await?;
        // Replace the range: whatever an earlier attempt committed there goes, in the same
        // transaction as the new rows (unless no write of this chunk was ever committed).
        let clear = if chunk.range.is_all() || table.schema.primary_key.is_empty() {
            format!("DELETE FROM {name}")
        } else {
            format!(
                "DELETE FROM {name} WHERE {}",
                range_predicate(&table.schema, &chunk.range)?
            )
        };
        if !first {
            tx.batch_execute(&clear).await.map_err(|e| {
                pg_error(
                    e,
                    &format!("clearing chunk {} of {}", chunk.index, table.name),
                )
            })?;
        }
        let stats = if columns.direct {
            self.copy_into(&tx, &name, table, &columns.types, rows)
                .await?
        } else {
            let stats = self.stage(&tx, table, &columns, rows).await?;
            tx.batch_execute(&columns.insert_from_stage(table, ""))
                .await
                .map_err(|e| pg_error(e, &format!("writing rows of {}", table.name)))?;
            stats
        };
        tx.commit().await.map_err(|e| {
            pg_error(
                e,
                &format!("committing chunk {} of {}", chunk.index, table.name),
            )
        })?;
        Ok(stats)
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        let conn = self.conn().await?;
        if self.target_meta(&conn, &table.name, false).await?.is_none() {
            return Err(
                Error::not_found(format!("target table {} does not exist", table.name))
                    .table(&table.name),
            );
        }
        let natives: Vec<Option<String>> = table
            .schema
            .columns
            .iter()
            .map(|c| c.source_type.clone())
            .collect();
        match sql::checksum_query(&table.name, &table.schema, &natives, range)? {
            Some(q) => {
                let r = conn
                    .query_one(&q, &[])
                    .await
                    .map_err(|e| not_found_or(e, table))?;
                Ok(RowChecksum {
                    count: r.get::<_, i64>(0) as u64,
                    sum_hi: sql::wrap_sum(&r.get::<_, String>(1))?,
                    sum_lo: sql::wrap_sum(&r.get::<_, String>(2))?,
                })
            }
            None => {
                drop(conn);
                let rows = self
                    .read_rows(table, &range_predicate(&table.schema, range)?)
                    .await?;
                Ok(RowChecksum::of_rows(&rows))
            }
        }
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        let Some(bucket) = sql::range_bucket(&table.schema, ranges)? else {
            return migrate_core::checksum::per_range(ranges, |r| self.checksum(table, r)).await;
        };
        let conn = self.conn().await?;
        if self.target_meta(&conn, &table.name, false).await?.is_none() {
            return Err(
                Error::not_found(format!("target table {} does not exist", table.name))
                    .table(&table.name),
            );
        }
        let columns = self.wire(&conn, table).await?;
        let q = format!(
            "COPY (SELECT {bucket}, {} FROM {}) TO STDOUT (FORMAT binary)",
            columns.exprs.join(", "),
            sql::table(&table.name)
        );
        reader::checksum_ranges(
            conn,
            &q,
            columns.types,
            table.schema.clone(),
            ranges.len(),
            table.name.to_string(),
        )
        .await
        .map_err(|e| e.table(&table.name))
    }

    async fn finalize(&self, table: &TableInfo) -> Result<Vec<ObjectOutcome>> {
        // Every worker sharing a migration verifies, so finalizes, each table; `IF NOT EXISTS`
        // and "already exists" errors do not make concurrent `CREATE INDEX` / `ADD CONSTRAINT`
        // safe (the loser of a catalog race gets a unique violation in `pg_class`). So workers
        // take turns on a per-table lock and each looks, under it, at what already exists.
        // A build slot first, then the connection: finalizes waiting for a slot hold none.
        let permit = self
            .index_jobs
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::fatal("the sink's index build slots are closed"))?;
        let key = format!("migrate finalize {}", table.name);
        let mut lock = SessionLock::acquire(self.conn().await?, key).await?;
        // Definitions found in the target are compared with the source's, both read with
        // every name qualified.
        let conn = lock.conn()?;
        // The foreign keys a replacing prepare set aside come back as they were (definitions
        // kept by earlier versions name tables as the session's search path resolves them).
        let name = sql::table(&table.name);
        deferred_key::build(conn, &name).await?;
        preparation::restore_foreign_keys(&*conn, &name).await?;
        let old = sql::empty_search_path(conn).await?;
        let mut result = self.finalize_locked(conn, table, permit).await;
        if let Err(e) = sql::restore_search_path(conn, &old).await {
            result = result.and(Err(e));
        }
        let released = lock.release().await;
        let created = result?;
        released?;
        Ok(created)
    }

    async fn unmet_requirements(&self, table: &TableInfo) -> Result<Vec<String>> {
        if table.objects.extensions.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn().await?;
        let exists: bool = conn
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&sql::table(&table.name)],
            )
            .await
            .map_err(|e| pg_error(e, "looking for the table"))?
            .get(0);
        if exists {
            return Ok(Vec::new());
        }
        objects::missing_extensions(&conn, table, self.options.create_extensions).await
    }

    fn plan_objects(&self, table: &TableInfo) -> Vec<ObjectOutcome> {
        objects::plan(table, &self.options.copy, self.options.create_foreign_keys)
    }

    async fn set_sequences(
        &self,
        table: &TableInfo,
        values: &[SequenceValue],
    ) -> Result<Vec<ObjectOutcome>> {
        let conn = self.conn().await?;
        objects::set_sequences(&conn, table, values).await
    }

    async fn after_data(
        &self,
        tables: &[TableInfo],
        views: &[View],
        dry_run: bool,
    ) -> Result<Vec<ObjectOutcome>> {
        let mut conn = self.conn().await?;
        let mut out = objects::create_views(&mut conn, views, dry_run).await?;
        if !dry_run {
            for t in tables {
                out.extend(objects::extras(&mut conn, t, &self.options.copy).await?);
            }
        }
        Ok(out)
    }

    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        let pk = table.primary_key();
        if pk.is_empty() {
            return Err(Error::config(format!(
                "table {} has no primary key: upsert needs one",
                table.name
            ))
            .table(&table.name));
        }
        let mut conn = self.conn().await?;
        let columns = self.wire(&conn, table).await?;
        // ON CONFLICT needs the key.
        deferred_key::build(&mut conn, &sql::table(&table.name)).await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "upsert"))?;
        self.quiet_triggers(&tx, table, &columns).await?;
        let stats = self.stage(&tx, table, &columns, rows).await?;
        let keys: Vec<String> = pk.iter().map(|k| ident(k)).collect();
        let updates: Vec<String> = table
            .schema
            .columns
            .iter()
            .filter(|c| !pk.contains(&c.name.as_str()))
            // Postgres refuses to update a GENERATED ALWAYS identity: it keeps its value.
            .filter(|c| table.objects.identity_of(&c.name) != Some(Identity::Always))
            .map(|c| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
            .collect();
        let action = if updates.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        let conflict = format!(" ON CONFLICT ({}) DO {action}", keys.join(", "));
        tx.batch_execute(&columns.insert_from_stage(table, &conflict))
            .await
            .map_err(|e| pg_error(e, &format!("upserting into {}", table.name)))?;
        tx.commit()
            .await
            .map_err(|e| pg_error(e, "committing the upsert"))?;
        Ok(stats)
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(500) {
            out.extend(
                self.read_rows(table, &keys_predicate(&table.schema, group)?)
                    .await?,
            );
        }
        Ok(out)
    }

    fn ddl_type(&self, table: &TableInfo, column: &migrate_core::Column) -> Option<String> {
        ddl::column_type(table, column).ok()
    }

    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        let conn = self.conn().await?;
        Ok(self
            .target_meta(&conn, &table.name, true)
            .await?
            .map(|m| m.info.clone()))
    }

    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "rollback"))?;
        let undo = |what: &str, t: &TableName| format!("rolling back {t}: {what}");
        // Children first: drop what the run created (and recreated tables, whose predecessor
        // is the backup).
        let mut emptied = Vec::new();
        for (t, p) in tables {
            let name = sql::table(&t.name);
            deferred_key::forget(&tx, &name).await?;
            preparation::forget(&tx, &name).await?;
            match (p.created, &p.backup, p.existing_rows) {
                (true, None, _) => {
                    preparation::drop_views_over(&tx, &name).await?;
                    tx.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                        .await
                        .map_err(|e| pg_error(e, &undo("dropping it", &t.name)))?
                }
                (_, Some(_), None) => {
                    preparation::drop_views_over(&tx, &name).await?;
                    tx.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                        .await
                        .map_err(|e| pg_error(e, &undo("dropping it", &t.name)))?
                }
                (false, Some(_), Some(_)) | (false, None, Some(0)) => emptied.push(name),
                _ => {} // rows that cannot be told apart: the executor refuses these
            }
        }
        // One TRUNCATE empties them all: foreign keys among them do not stand in its way, and
        // one from a table outside the rollback refuses it rather than cascading.
        if !emptied.is_empty() {
            tx.batch_execute(&format!("TRUNCATE {}", emptied.join(", ")))
                .await
                .map_err(|e| {
                    pg_error(e, &format!("rolling back: emptying {}", emptied.join(", ")))
                })?;
        }
        // Parents first: put the backed-up rows back, then the foreign keys set aside.
        for (t, p) in tables.iter().rev() {
            let Some(b) = &p.backup else { continue };
            let backup = TableName::parse(b);
            let marked =
                backup.name.contains(BACKUP_MARK) || backup.name.ends_with(LEGACY_BACKUP_MARK);
            if backup.schema != t.name.schema || !marked {
                return Err(
                    Error::fatal(format!("unexpected backup name {b} for {}", t.name))
                        .table(&t.name),
                );
            }
            let (name, b) = (sql::table(&t.name), sql::table(&backup));
            let step = match p.existing_rows {
                None => format!("ALTER TABLE {b} RENAME TO {}", ident(&t.name.name)),
                Some(_) => {
                    // Generated columns are computed again; identity values are kept.
                    let cols: String = tx
                        .query_one(
                            "SELECT coalesce(string_agg(quote_ident(attname), ', ' ORDER BY attnum), '')
                             FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0
                               AND NOT attisdropped AND attgenerated = ''",
                            &[&name],
                        )
                        .await
                        .map_err(|e| pg_error(e, &undo("reading its columns", &t.name)))?
                        .get(0);
                    format!(
                        "INSERT INTO {name} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {b}; DROP TABLE {b}"
                    )
                }
            };
            tx.batch_execute(&step)
                .await
                .map_err(|e| pg_error(e, &undo("restoring the backup", &t.name)))?;
        }
        for (t, p) in tables {
            if !p.created {
                preparation::restore_foreign_keys(&tx, &sql::table(&t.name)).await?;
            }
        }
        tx.commit().await.map_err(|e| pg_error(e, "rollback"))?;
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for (t, _) in tables {
            targets.remove(&t.name);
        }
        Ok(())
    }
}

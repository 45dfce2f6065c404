//! `SfSink`: tables created from migrate's schema with the lossless mapping of [`crate::types`],
//! each chunk written exactly once by one statement: its rows are staged in a `TEMPORARY`
//! table of the attempt's own, counted, and moved by one `MERGE` that upserts them and deletes
//! the chunk's key range's other rows — so a retry, a rewrite after a crash or an overlapping
//! lease converges on exactly the chunk's rows, and no transaction is held open across
//! requests. Checksums and lookups read the table back (the crate's `read` module); backups are
//! zero-copy clones.
//!
//! How the rows reach the staging table ([`Load`], the URL's `load=`): bound JSON texts of at
//! most [`MAX_JSON_BYTES`] each, expanded by `INSERT … FROM TABLE(FLATTEN(PARSE_JSON(?)))`;
//! or, for a chunk larger than one text (or always, with `load=stage`), the same texts
//! gzipped and `PUT` to a temporary stage under a directory of the attempt's own, then
//! `COPY INTO` a `VARIANT` table and converted by the same expressions. Each attempt's files
//! have fresh names and load into a fresh table, so `COPY`'s memory of files already loaded
//! (64 days per table) can never skip one, and no `FORCE` is needed; `PURGE` removes them once
//! loaded, and the stage dies with the session.
//!
//! Where tables land: in the endpoint's database and schema (created when missing), under
//! their own names spelled by [`crate::sql::sf_name`] (`orders` → `ORDERS`) whatever schema
//! they came from — `LEGACY_SCHEMA.ORDERS` becomes `NEW_SCHEMA.ORDERS`. What
//! `prepare` decided for a table in a run is kept in the schema's `_MIGRATE_PREPARED` table with
//! the source table's name, so a second `prepare` in the same run (another worker, a resumed
//! process) returns the same answer and takes no second backup, and a second source table of
//! the same name (`sales.orders` after `public.orders`) is refused instead of mixed in. Workers
//! preparing one table at once decide one at a time, under a lock of the table's and run's
//! (the crate's `prepared` module).
//!
//! Keys: the primary key is declared when the table is created; foreign keys once the table's
//! data is complete (`finalize`), where the parent is in the same schema. Snowflake records
//! both and enforces neither.
//!
//! Each chunk's rows are held in memory as JSON text until they are staged (about
//! `chunk_rows` × the row's JSON size, plus its gzip on the stage path): choose `chunk_rows`
//! with that in mind.

use async_trait::async_trait;
use migrate_core::{
    BatchReader, ChunkSpec, Column, DataType, EngineQuery, Error, ErrorKind, KeyRange, ObjectKind,
    ObjectOutcome, Preflight, PrepareMode, PrepareOptions, Prepared, Result, Row, RowChecksum,
    RunId, Sink, SinkCapabilities, TableInfo, TableName, Value, WriteStats,
};

use migrate_core::chunk::key_orders_alike;

use crate::catalog::Catalog;
use crate::client::{Binding, SfClient, SfSession};
use crate::endpoint::{Load, SfEndpoint};
use crate::pool::SessionPool;
use crate::prepared::{self, Ledger};
use crate::read::{self, Layout};
use crate::sql::{
    column, ident, insert_from_json, insert_from_variants, merge_sql, overwrite_sql, sf_name,
    string_literal, JsonParts, MAX_JSON_BYTES,
};
use crate::stage;
use crate::types::column_type;

/// The session's temporary stage the stage path uploads to.
const STAGE: &str = "_MIGRATE_STAGE";

/// The table that keeps what `prepare` decided, per table and run.
const PREPARED: &str = "_MIGRATE_PREPARED";

/// What a write replaces besides the rows it brings.
enum Replaces {
    /// Every row in this key-range predicate (a chunk).
    Range(String),
    /// Only the rows with the written rows' keys (an upsert).
    TheirKeys,
}

/// The rows a write brings.
enum Rows<'a> {
    /// Bound JSON texts holding this many rows.
    Texts(Vec<String>, u64),
    /// A query Snowflake runs itself (another schema or database of the same account).
    Query(&'a str),
}

/// Writes to one Snowflake schema.
#[derive(Debug)]
pub struct SfSink {
    pool: SessionPool,
    catalog: Catalog,
    /// The largest JSON text one statement binds (or one staged file holds).
    text_bytes: usize,
    load: Load,
}

impl SfSink {
    /// A sink writing into the endpoint's database and schema.
    pub fn new(endpoint: SfEndpoint) -> Result<Self> {
        let catalog = Catalog::new(&endpoint);
        let load = endpoint.load;
        Ok(SfSink {
            pool: SessionPool::new(SfClient::new(endpoint)?),
            catalog,
            text_bytes: MAX_JSON_BYTES,
            load,
        })
    }

    /// The same sink cutting a chunk's rows into JSON texts of at most `bytes` (default and
    /// ceiling: [`MAX_JSON_BYTES`]); a chunk needing more than one goes through the stage
    /// unless told otherwise ([`Load`]).
    pub fn with_text_bytes(mut self, bytes: usize) -> Self {
        self.text_bytes = bytes.clamp(1, MAX_JSON_BYTES);
        self
    }

    /// The same sink sending rows as `load` says (default: the URL's `load=`, else
    /// [`Load::Auto`]).
    pub fn with_load(mut self, load: Load) -> Self {
        self.load = load;
        self
    }

    /// The Snowflake table name for `name` (see the module docs).
    pub fn table_id(&self, name: &TableName) -> String {
        sf_name(&name.name)
    }

    fn table_sql(&self, id: &str) -> String {
        self.catalog.table_sql(id)
    }

    fn layout(&self, table: &TableInfo) -> Layout {
        Layout::folded(table, self.table_sql(&self.table_id(&table.name)))
    }

    /// How `table`'s checksums are computed — in Snowflake, or streamed and hashed here —
    /// and why (see [`crate::checksum_sql`]).
    pub async fn checksum_path(&self, table: &TableInfo) -> Result<String> {
        Ok(self.pool.sql_checksums().await?.describe(table))
    }

    /// The sessions this sink runs its statements on.
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    async fn count(&self, id: &str) -> Result<u64> {
        let r = self
            .pool
            .query(&format!("SELECT COUNT(*) FROM {}", self.table_sql(id)), &[])
            .await?;
        match r.rows.first().and_then(|row| row.first()) {
            Some(v) => migrate_core::checksum::canonical_text(v)
                .parse()
                .map_err(|_| Error::fatal(format!("Snowflake counted {id} as {v:?}"))),
            None => Err(Error::fatal(format!(
                "Snowflake counted {id} without a row"
            ))),
        }
    }

    async fn ensure_state(&self) -> Result<()> {
        // Workers starting together create these at once: the emulator fails all but one
        // (a write-write conflict), which is as good as success once the object is there.
        let schema = self
            .pool
            .query(
                &format!("CREATE SCHEMA IF NOT EXISTS {}", self.catalog.schema_sql()),
                &[],
            )
            .await;
        let table = self
            .pool
            .query(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {} (\"TARGET\" VARCHAR NOT NULL, \"RUN\" VARCHAR NOT NULL, \"PREPARED\" VARCHAR NOT NULL)",
                    self.table_sql(PREPARED)
                ),
                &[],
            )
            .await;
        match (schema, table) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(e), _) | (_, Err(e)) => match self.catalog.exists(&self.pool, PREPARED).await {
                Ok(true) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// What `prepare` recorded for target `id` in `run`, checking it was for `table`: two
    /// source tables of one name (`public.orders`, `sales.orders`) would land in one Snowflake
    /// table, and the second is refused rather than mixed into the first.
    /// A zero-copy clone of `id`, named for the run.
    fn backup_name(&self, id: &str, run: &RunId) -> String {
        let run8: String = run
            .0
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase();
        format!("{id}__MIGRATE_BACKUP_{run8}")
    }

    async fn backup(&self, id: &str, run: &RunId) -> Result<String> {
        let name = self.backup_name(id, run);
        // A backup this run already took (a prepare cut off before it was recorded) holds the
        // rows from before the run: kept, never replaced by a clone of what came after.
        if !self.catalog.exists(&self.pool, &name).await? {
            self.pool
                .query(
                    &format!(
                        "CREATE TABLE {} CLONE {}",
                        self.table_sql(&name),
                        self.table_sql(id)
                    ),
                    &[],
                )
                .await?;
        }
        Ok(name)
    }

    async fn drop_table(&self, id: &str) -> Result<()> {
        self.pool
            .query(&format!("DROP TABLE IF EXISTS {}", self.table_sql(id)), &[])
            .await
            .map(drop)
    }

    /// `CREATE TABLE` with the columns' types, NOT NULL and the primary key.
    fn create_sql(&self, table: &TableInfo, id: &str) -> Result<String> {
        let mut defs = Vec::with_capacity(table.schema.columns.len() + 1);
        for c in &table.schema.columns {
            let null = if c.nullable { "" } else { " NOT NULL" };
            defs.push(format!(
                "{} {}{null}",
                column(&c.name),
                column_type(&table.name, c)?
            ));
        }
        let keys = table.primary_key();
        if !keys.is_empty() {
            let cols: Vec<String> = keys.iter().map(|k| column(k)).collect();
            defs.push(format!("PRIMARY KEY ({})", cols.join(", ")));
        }
        Ok(format!(
            "CREATE TABLE {} ({})",
            self.table_sql(id),
            defs.join(", ")
        ))
    }

    async fn create(&self, table: &TableInfo, id: &str) -> Result<Vec<ObjectOutcome>> {
        self.pool
            .query(&self.create_sql(table, id)?, &[])
            .await
            .map_err(|e| e.table(&table.name))?;
        let mut out = Vec::new();
        if !table.primary_key().is_empty() {
            let name = table.name.to_string();
            out.push(ObjectOutcome::created(
                ObjectKind::PrimaryKey,
                name,
                Some(&table.name),
            ));
        }
        Ok(out)
    }

    /// Checks that an existing table has every column of `table` (by Snowflake's name).
    async fn check_columns(&self, table: &TableInfo, id: &str) -> Result<()> {
        let have = self.catalog.columns(&self.pool, id).await?;
        for c in &table.schema.columns {
            let name = sf_name(&c.name);
            let Some(h) = have.iter().find(|h| h.name == name) else {
                return Err(Error::schema(format!(
                    "target table {} ({}) has no column {name:?} for source column {:?}",
                    table.name,
                    self.table_sql(id),
                    c.name
                ))
                .table(&table.name));
            };
            // Snowflake rounds a value with more decimal places than its NUMBER column keeps,
            // silently (too many integer digits, or too long a text, fail loudly).
            if let (DataType::Decimal { scale: Some(s), .. }, Some(kept)) = (&c.data_type, h.scale)
            {
                if h.ty.eq_ignore_ascii_case("NUMBER") && kept < *s {
                    return Err(Error::schema(format!(
                        "target column {name} of {} keeps {kept} decimal places where source column {:?} has {s}: Snowflake would round every value; widen it (NUMBER(p, {s})) or let migrate create the table",
                        self.table_sql(id),
                        c.name
                    ))
                    .table(&table.name));
                }
            }
        }
        Ok(())
    }

    /// Declares `table`'s foreign keys whose parent is in the schema, one outcome each; one
    /// Snowflake does not declare (a parent without a primary key, a role without the
    /// privilege, an engine that cannot add them) is left out, saying why — the rows are
    /// unaffected.
    async fn declare_foreign_keys(&self, table: &TableInfo) -> Result<Vec<ObjectOutcome>> {
        let id = self.table_id(&table.name);
        let mut out = Vec::new();
        for fk in &table.foreign_keys {
            let shown = fk.name.clone().unwrap_or_else(|| fk.columns.join(", "));
            let parent = self.table_id(&fk.referenced_table);
            if parent != id && !self.catalog.exists(&self.pool, &parent).await? {
                let why = format!(
                    "its parent {} is not in schema {}",
                    fk.referenced_table, self.catalog.schema
                );
                out.push(ObjectOutcome::skipped(
                    ObjectKind::ForeignKey,
                    shown,
                    Some(&table.name),
                    why,
                ));
                continue;
            }
            let name = fk
                .name
                .clone()
                .unwrap_or_else(|| format!("{id}_{}_FKEY", fk.columns.join("_")));
            let cols: Vec<String> = fk.columns.iter().map(|c| column(c)).collect();
            let refs: Vec<String> = fk.referenced_columns.iter().map(|c| column(c)).collect();
            let sql = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                self.table_sql(&id),
                ident(&name),
                cols.join(", "),
                self.table_sql(&parent),
                refs.join(", ")
            );
            match self.pool.query(&sql, &[]).await {
                Ok(_) => out.push(ObjectOutcome::created(
                    ObjectKind::ForeignKey,
                    shown,
                    Some(&table.name),
                )),
                // A constraint of that name already there: an earlier attempt declared it.
                Err(e) if e.message().contains("already exists") => out.push(
                    ObjectOutcome::created(ObjectKind::ForeignKey, shown, Some(&table.name)),
                ),
                // Keys Snowflake does not enforce are worth a report line, never the table:
                // whatever stopped the declaration is said, and the rows are as they are.
                Err(e) => {
                    let why = format!("Snowflake did not declare it: {}", e.message());
                    out.push(ObjectOutcome::skipped(
                        ObjectKind::ForeignKey,
                        shown,
                        Some(&table.name),
                        why,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The chunk's rows as JSON texts, and what was read.
    async fn json_parts(
        &self,
        table: &TableInfo,
        rows: &mut dyn BatchReader,
    ) -> Result<(Vec<String>, WriteStats)> {
        let columns: &[Column] = &table.schema.columns;
        let mut parts = JsonParts::with_limit(&table.name, columns, self.text_bytes);
        let mut stats = WriteStats::default();
        while let Some(batch) = rows.next_batch().await? {
            stats.bytes += batch.byte_size() as u64;
            for row in batch.rows() {
                parts.push(row)?;
            }
        }
        stats.rows = parts.rows();
        Ok((parts.finish(), stats))
    }

    /// Writes `texts` (a chunk's or an upsert's rows, `rows` of them) so that the table holds
    /// them, and — for a chunk — nothing else within its key range.
    ///
    /// The texts are inserted into a staging table of this attempt's own (a `TEMPORARY` table:
    /// it lives and dies with the session), checked to hold exactly the rows sent, and moved
    /// into the table by **one statement** — a `MERGE` that upserts them and deletes the
    /// range's other rows, or `INSERT OVERWRITE` for a keyless table (always written whole).
    /// One statement is atomic on its own, so no transaction is held open across requests: a
    /// process killed mid-chunk leaves no detached transaction holding the table's lock
    /// (Snowflake keeps one until it is aborted or four hours pass), and nothing in the table
    /// changed unless that statement ran.
    async fn write_rows(
        &self,
        table: &TableInfo,
        replaces: Replaces,
        rows: Rows<'_>,
    ) -> Result<u64> {
        let session = self.pool.take().await?;
        // Unqualified (the emulator refuses a qualified temporary table): it lives in the
        // session's current schema, set in `stage_and_move` — a session that signed in before
        // the schema existed has none.
        let attempt = format!("{:016x}", fastrand::u64(..));
        let staged = ident(&format!("_MIGRATE_STG_{attempt}"));
        let written = self
            .stage_and_move(&session, table, (&staged, &attempt), replaces, rows)
            .await;
        // The staging table has done its job either way (and dies with the session anyway).
        let dropped = session
            .query(&format!("DROP TABLE IF EXISTS {staged}"), &[])
            .await;
        match (&written, dropped) {
            (Ok(_), Ok(_)) => self.pool.give_back(session).await,
            _ => session.close().await,
        }
        written.map_err(|e| e.table(&table.name))
    }

    async fn stage_and_move(
        &self,
        session: &SfSession,
        table: &TableInfo,
        (staged, attempt): (&str, &str),
        replaces: Replaces,
        rows: Rows<'_>,
    ) -> Result<u64> {
        let target = self.table_sql(&self.table_id(&table.name));
        let columns = &table.schema.columns;
        let short = |what: &str, got: u64, of: u64| {
            Error::fatal(format!(
                "table {}: Snowflake {what} {got} rows of the {of} sent",
                table.name
            ))
        };
        let defs = columns
            .iter()
            .map(|c| {
                Ok(format!(
                    "{} {}",
                    column(&c.name),
                    column_type(&table.name, c)?
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        session
            .query(&format!("USE SCHEMA {}", self.catalog.schema_sql()), &[])
            .await?;
        session
            .query(
                &format!("CREATE TEMPORARY TABLE {staged} ({})", defs.join(", ")),
                &[],
            )
            .await?;
        let rows = match rows {
            Rows::Texts(texts, sent) if self.staged(&texts) => {
                let loaded = self
                    .load_from_stage(session, table, staged, attempt, texts)
                    .await?;
                if loaded != sent {
                    return Err(short("staged", loaded, sent));
                }
                sent
            }
            Rows::Texts(texts, sent) => {
                let insert = insert_from_json(&table.name, staged, columns)?;
                let mut inserted = 0;
                for text in texts {
                    let r = session.query(&insert, &[Binding::text(text)]).await?;
                    inserted += r.affected().unwrap_or(0);
                }
                if inserted != sent {
                    return Err(short("staged", inserted, sent));
                }
                sent
            }
            // The source's rows read by Snowflake itself: as many as it staged.
            Rows::Query(select) => {
                let names: Vec<String> = columns.iter().map(|c| column(&c.name)).collect();
                let insert = format!("INSERT INTO {staged} ({}) {select}", names.join(", "));
                session.query(&insert, &[]).await?.affected().unwrap_or(0)
            }
        };
        let keys = &table.schema.primary_key;
        let (sql, counted) = match (keys.is_empty(), &replaces) {
            (false, Replaces::Range(range)) => (
                merge_sql(&target, staged, columns, keys, Some(range)),
                &["inserted", "updated"][..],
            ),
            (false, Replaces::TheirKeys) => (
                merge_sql(&target, staged, columns, keys, None),
                &["inserted", "updated"][..],
            ),
            (true, Replaces::Range(_)) => {
                (overwrite_sql(&target, staged, columns), &["inserted"][..])
            }
            (true, Replaces::TheirKeys) => {
                return Err(Error::unsupported(format!(
                    "table {} has no primary key to upsert by",
                    table.name
                )))
            }
        };
        let written = session.query(&sql, &[]).await?.counted(counted);
        match written == rows {
            true => Ok(rows),
            false => Err(short("wrote", written, rows)),
        }
    }
}

impl SfSink {
    /// What `prepare` does for `table` (Snowflake table `id`) once this worker holds the
    /// decision: create it, back it up, clear it or take it as it is.
    async fn decide(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
        id: &str,
    ) -> Result<Prepared> {
        let id = id.to_string();
        let exists = self.catalog.exists(&self.pool, &id).await?;
        let mut p = Prepared::default();
        match (exists, options.mode) {
            (false, PrepareMode::RequireExisting) => {
                return Err(Error::not_found(format!(
                    "table {} ({}) does not exist in Snowflake",
                    table.name,
                    self.table_sql(&id)
                ))
                .table(&table.name))
            }
            (false, _) => {
                p.objects = self.create(table, &id).await?;
                p.created = true;
                // A recreate cut off after its backup and drop: the table the run replaced is
                // in the backup, which rollback puts back.
                let earlier = self.backup_name(&id, run);
                if options.backup && self.catalog.exists(&self.pool, &earlier).await? {
                    p.backup = Some(earlier);
                    p.created = false;
                }
            }
            (true, PrepareMode::Recreate) => {
                if options.backup {
                    p.backup = Some(self.backup(&id, run).await?);
                }
                self.drop_table(&id).await?;
                p.objects = self.create(table, &id).await?;
                p.created = p.backup.is_none();
            }
            (true, _) => {
                self.check_columns(table, &id).await?;
                let n = self.count(&id).await?;
                p.existing_rows = Some(n);
                p.merge = options.existing_rows.decide(
                    &table.name,
                    n,
                    !table.primary_key().is_empty(),
                )?;
                if n > 0 && options.backup {
                    p.backup = Some(self.backup(&id, run).await?);
                }
                if n > 0 && !p.merge && !key_orders_alike(&table.schema) {
                    // Chunks of this key upsert rather than clear their ranges: replacing the
                    // table's rows means clearing them once, now.
                    self.pool
                        .query(&format!("DELETE FROM {}", self.table_sql(&id)), &[])
                        .await?;
                }
            }
        }
        Ok(p)
    }

    /// Whether `texts` (a chunk's rows) go through the stage.
    fn staged(&self, texts: &[String]) -> bool {
        match self.load {
            Load::Bind => false,
            Load::Stage => !texts.is_empty(),
            Load::Auto => texts.len() > 1,
        }
    }

    /// Uploads `texts` as gzipped files under the attempt's own directory of the session's
    /// temporary stage, loads them into a `VARIANT` table of the attempt's own, and converts
    /// them into `staged`; answers the rows converted.
    async fn load_from_stage(
        &self,
        session: &SfSession,
        table: &TableInfo,
        staged: &str,
        attempt: &str,
        texts: Vec<String>,
    ) -> Result<u64> {
        session
            .query(
                &format!("CREATE TEMPORARY STAGE IF NOT EXISTS {STAGE}"),
                &[],
            )
            .await?;
        let files = texts.len();
        for (i, text) in texts.into_iter().enumerate() {
            let gz = stage::gzip(&text)?;
            drop(text);
            stage::put(session, STAGE, attempt, &format!("part-{i}.json.gz"), &gz).await?;
        }
        let raw = ident(&format!("_MIGRATE_RAW_{attempt}"));
        session
            .query(&format!("CREATE TEMPORARY TABLE {raw} (V VARIANT)"), &[])
            .await?;
        let loaded = stage::copy_json(session, STAGE, attempt, &raw, files).await?;
        let insert = insert_from_variants(&table.name, staged, &table.schema.columns, &raw)?;
        let converted = session.query(&insert, &[]).await?.affected().unwrap_or(0);
        session
            .query(&format!("DROP TABLE IF EXISTS {raw}"), &[])
            .await?;
        match converted == loaded {
            true => Ok(converted),
            false => Err(Error::fatal(format!(
                "table {}: Snowflake converted {converted} of the {loaded} rows loaded from the stage",
                table.name
            ))),
        }
    }
}

#[async_trait]
impl Sink for SfSink {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            upsert: true,
            backup: true,
        }
    }

    fn plan_objects(&self, table: &TableInfo) -> Vec<ObjectOutcome> {
        migrate_core::objects::keys_only(
            table,
            "Snowflake keeps only tables, primary and foreign keys (recorded, not enforced): the snowflake sink does not create it",
        )
    }

    fn bounded_decimals(&self) -> bool {
        true
    }

    fn ddl_type(&self, table: &TableInfo, column: &migrate_core::Column) -> Option<String> {
        column_type(&table.name, column).ok()
    }

    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        let mut problems = Vec::new();
        for c in &table.schema.columns {
            if let Err(e) = column_type(&table.name, c) {
                problems.push(e.message().to_string());
            }
        }
        let id = self.table_id(&table.name);
        let exists = self
            .catalog
            .exists(&self.pool, &id)
            .await
            .map_err(|e| e.table(&table.name))?;
        let rows = match exists {
            true => Some(self.count(&id).await?),
            false => None,
        };
        Ok(Preflight {
            reachable: true,
            exists,
            problems,
            rows,
        })
    }

    async fn prepare(
        &self,
        table: &TableInfo,
        options: &PrepareOptions,
        run: &RunId,
    ) -> Result<Prepared> {
        for c in &table.schema.columns {
            column_type(&table.name, c)?;
        }
        self.ensure_state().await?;
        let id = self.table_id(&table.name);
        let ledger = Ledger {
            pool: &self.pool,
            table: self.table_sql(PREPARED),
            schema: self.catalog.schema_sql(),
            id: &id,
            run,
            source: &table.name,
        };
        // Decided already (another worker, a resumed process): that answer. Else decide
        // holding the table's lock, so no other worker decides over this one's table.
        loop {
            if let Some(p) = ledger.read().await? {
                return Ok(p);
            }
            if ledger.try_lock().await? {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let heartbeat = async {
            loop {
                tokio::time::sleep(prepared::BEAT).await;
                if let Err(e) = ledger.beat().await {
                    return Error::transient(format!(
                        "lost the lock on preparing {id} (another worker took it over): {e}"
                    ));
                }
            }
        };
        let decided = async {
            // The lock's previous holder may have decided since the read above.
            if let Some(p) = ledger.read().await? {
                return Ok(p);
            }
            let p = self.decide(table, options, run, &id).await?;
            ledger.write(&p).await?;
            Ok(p)
        };
        let decided = tokio::select! {
            r = decided => r,
            e = heartbeat => Err(e),
        };
        let _ = ledger.unlock().await;
        decided
    }

    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let written = async {
            let (texts, stats) = self.json_parts(table, rows).await?;
            // A range cut in another engine's order of the key (text, in a Postgres collation)
            // may not select here the rows it selected there: upsert by key, never clear it.
            let replaces = match chunk.range.is_all() || key_orders_alike(&table.schema) {
                true => Replaces::Range(self.layout(table).predicate(&chunk.range)?),
                false => Replaces::TheirKeys,
            };
            self.write_rows(table, replaces, Rows::Texts(texts, stats.rows))
                .await?;
            Ok(stats)
        };
        written.await.map_err(|e: Error| e.chunk(chunk.index))
    }

    async fn write_chunk_from(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        query: &EngineQuery,
    ) -> Result<Option<WriteStats>> {
        // Only a query this sink's own principal may run, on its own account.
        if query.engine != "snowflake"
            || query.location != self.pool.client().endpoint().principal()
        {
            return Ok(None);
        }
        // One engine on both sides: the range selects the same rows in both.
        let range = self.layout(table).predicate(&chunk.range)?;
        let rows = self
            .write_rows(table, Replaces::Range(range), Rows::Query(&query.select))
            .await
            .map_err(|e| e.chunk(chunk.index))?;
        Ok(Some(WriteStats { rows, bytes: 0 }))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        read::checksum(&self.pool, table, &self.layout(table), range).await
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        read::checksum_ranges(&self.pool, table, &self.layout(table), ranges).await
    }

    async fn finalize(&self, table: &TableInfo) -> Result<Vec<ObjectOutcome>> {
        self.declare_foreign_keys(table).await
    }

    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        // Staged and merged by key, like a chunk without the range to clear.
        let (texts, stats) = self.json_parts(table, rows).await?;
        self.write_rows(table, Replaces::TheirKeys, Rows::Texts(texts, stats.rows))
            .await?;
        Ok(stats)
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        read::rows_by_key(&self.pool, table, &self.layout(table), keys).await
    }

    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        let id = self.table_id(&table.name);
        if !self.catalog.exists(&self.pool, &id).await? {
            return Ok(None);
        }
        let described = self.catalog.describe(&self.pool, &id).await?;
        Ok(Some(TableInfo {
            name: table.name.clone(),
            ..described
        }))
    }

    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        for (t, p) in tables {
            let id = self.table_id(&t.name);
            let target = self.table_sql(&id);
            match (&p.backup, p.created, p.existing_rows) {
                (Some(b), _, _) => {
                    // The backed-up rows come back into the table as it is now, at once,
                    // column by name (a recreated table may order its columns differently).
                    let cols: Vec<String> = self
                        .catalog
                        .columns(&self.pool, b)
                        .await?
                        .iter()
                        .map(|c| ident(&c.name))
                        .collect();
                    let cols = cols.join(", ");
                    let statements = [
                        (format!("DELETE FROM {target}"), Vec::new()),
                        (
                            format!(
                                "INSERT INTO {target} ({cols}) SELECT {cols} FROM {}",
                                self.table_sql(b)
                            ),
                            Vec::new(),
                        ),
                    ];
                    self.pool.transaction(&statements, |_| Ok(())).await?;
                    self.drop_table(b).await?;
                }
                (None, true, _) => self.drop_table(&id).await?,
                (None, false, Some(0)) => {
                    self.pool
                        .query(&format!("DELETE FROM {target}"), &[])
                        .await?;
                }
                // Rows were merged or replaced without a backup: nothing to put back.
                (None, false, _) => {}
            }
            let forget = format!(
                "DELETE FROM {} WHERE \"TARGET\" = {}",
                self.table_sql(PREPARED),
                string_literal(&id)
            );
            self.pool
                .query(&forget, &[])
                .await
                .or_else(|e| match e.kind() {
                    ErrorKind::NotFound | ErrorKind::Schema => Ok(Default::default()),
                    _ => Err(e),
                })?;
        }
        Ok(())
    }
}

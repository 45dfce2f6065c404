//! `BqSink`: tables created from migrate's schema with the lossless mapping of [`crate::types`],
//! each chunk written exactly once through a staging table and one `MERGE` (see the crate's
//! README), checksums computed inside BigQuery (or by streaming where the canonical text does
//! not render in SQL), backups and rollback.
//!
//! Where tables land: all in the sink's dataset; a source table `schema.name` becomes `name`
//! when its schema is `public`, none, or the dataset's own name, and `schema__name` otherwise
//! (so `public.orders` and `sales.orders` do not meet). What `prepare` decided for a table in a
//! run is kept in the dataset's `_migrate_prepared` table, so a second `prepare` in the same run
//! (another worker, a resumed process) returns the same answer and takes no second backup.
//!
//! Each chunk's rows are held in memory as newline-delimited JSON until its load job is sent
//! (about `chunk_rows` × the row's JSON size): choose `chunk_rows` with that in mind.

use async_trait::async_trait;
use migrate_core::{
    BatchReader, ChunkSpec, Column, Error, ErrorKind, KeyRange, ObjectKind, ObjectOutcome,
    Preflight, PrepareMode, PrepareOptions, Prepared, Result, Row, RowChecksum, RunId, Sink,
    SinkCapabilities, TableInfo, TableName, Value, WriteStats,
};
use serde_json::{json, Value as Json};

use crate::client::{foreign_key, BqClient, BqEndpoint};
use crate::read;
use crate::sql::{string_literal, table_ref};
use crate::stage::{append_row, merge_sql, staged_columns, upsert_sql, StagedColumn};
use crate::types::{column_type, BqColumn};

/// The table that keeps what `prepare` decided, per table and run.
const PREPARED: &str = "_migrate_prepared";

/// Writes to one BigQuery dataset.
#[derive(Debug)]
pub struct BqSink {
    client: BqClient,
    dataset: String,
}

impl BqSink {
    /// A sink writing into `dataset` (created on first use) at `endpoint`.
    pub fn new(endpoint: BqEndpoint, dataset: &str) -> Result<Self> {
        Ok(BqSink {
            client: BqClient::new(endpoint)?,
            dataset: dataset.to_string(),
        })
    }

    /// The BigQuery table id for `name` (see the module docs).
    pub fn table_id(&self, name: &TableName) -> String {
        match name.schema.as_deref() {
            None | Some("public") => name.name.clone(),
            Some(s) if s == self.dataset => name.name.clone(),
            Some(s) => format!("{s}__{}", name.name),
        }
    }

    fn table_sql(&self, id: &str) -> String {
        table_ref(self.client.project(), &self.dataset, id)
    }

    /// The table's columns with their BigQuery types.
    fn layout(&self, table: &TableInfo) -> Result<Vec<(Column, BqColumn)>> {
        table
            .schema
            .columns
            .iter()
            .map(|c| Ok((c.clone(), column_type(&table.name, c)?)))
            .collect()
    }

    fn fields(&self, table: &TableInfo) -> Result<Json> {
        let fields: Vec<Json> = self
            .layout(table)?
            .iter()
            .map(|(c, b)| {
                let mut f = json!({"name": c.name, "type": b.ty.name()});
                f["mode"] = json!(match (b.repeated, c.nullable) {
                    (true, _) => "REPEATED",
                    (false, false) => "REQUIRED",
                    (false, true) => "NULLABLE",
                });
                if let Some((p, s)) =
                    b.ty.decimal_bounds()
                        .filter(|_| !matches!(b.ty, crate::types::BqType::BigNumeric(None)))
                {
                    f["precision"] = json!(p.to_string());
                    f["scale"] = json!(s.to_string());
                }
                f
            })
            .collect();
        Ok(Json::Array(fields))
    }

    async fn count(&self, id: &str) -> Result<u64> {
        let r = self
            .client
            .query(&format!("SELECT COUNT(*) FROM {}", self.table_sql(id)))
            .await?;
        r.rows
            .first()
            .and_then(|row| row.first())
            .and_then(|c| c.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::fatal(format!("BigQuery counted {id} without a number")))
    }

    async fn ensure_state(&self) -> Result<()> {
        self.client.create_dataset(&self.dataset).await?;
        let fields = json!([
            {"name": "target", "type": "STRING", "mode": "REQUIRED"},
            {"name": "run", "type": "STRING", "mode": "REQUIRED"},
            {"name": "prepared", "type": "STRING", "mode": "REQUIRED"},
        ]);
        self.client
            .create_table(&self.dataset, PREPARED, fields)
            .await
            .map(drop)
    }

    async fn recorded(&self, id: &str, run: &RunId) -> Result<Option<Prepared>> {
        let r = self
            .client
            .query(&format!(
                "SELECT prepared FROM {} WHERE target = {} AND run = {}",
                self.table_sql(PREPARED),
                string_literal(id),
                string_literal(&run.0)
            ))
            .await?;
        match r
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(|c| c.as_str())
        {
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                Error::fatal(format!(
                    "the recorded preparation of {id} does not read: {e}"
                ))
            }),
            None => Ok(None),
        }
    }

    async fn record(&self, id: &str, run: &RunId, p: &Prepared) -> Result<()> {
        let text = serde_json::to_string(p)
            .map_err(|e| Error::fatal(format!("recording the preparation of {id}: {e}")))?;
        self.client
            .query(&format!(
                "INSERT INTO {} (target, run, prepared) VALUES ({}, {}, {})",
                self.table_sql(PREPARED),
                string_literal(id),
                string_literal(&run.0),
                string_literal(&text)
            ))
            .await
            .map(drop)
    }

    async fn backup(&self, id: &str, run: &RunId) -> Result<String> {
        let run8: String = run
            .0
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let name = format!("{id}__migrate_backup_{run8}");
        self.client.delete_table(&self.dataset, &name).await?;
        self.client
            .query(&format!(
                "CREATE TABLE {} AS SELECT * FROM {}",
                self.table_sql(&name),
                self.table_sql(id)
            ))
            .await?;
        Ok(name)
    }

    /// Creates the table with its primary key, then declares its foreign keys: what
    /// `prepare` reports of the keys.
    async fn create(&self, table: &TableInfo, id: &str) -> Result<Vec<ObjectOutcome>> {
        let keys = self.keys(table);
        self.client
            .create_table_keyed(&self.dataset, id, self.fields(table)?, &keys)
            .await?;
        let mut out = Vec::new();
        if !keys.is_empty() {
            let name = table.name.to_string();
            out.push(ObjectOutcome::created(
                ObjectKind::PrimaryKey,
                name,
                Some(&table.name),
            ));
        }
        out.extend(self.declare_foreign_keys(table, id).await?);
        Ok(out)
    }

    /// Declares `table`'s foreign keys (`NOT ENFORCED`, as BigQuery has them) whose parent is
    /// in the dataset — parents are prepared before their children — one outcome each. A
    /// declaration BigQuery refuses leaves the keys out, saying why; the rows are unaffected.
    async fn declare_foreign_keys(
        &self,
        table: &TableInfo,
        id: &str,
    ) -> Result<Vec<ObjectOutcome>> {
        let mut declared = Vec::new();
        let mut out = Vec::new();
        for fk in &table.foreign_keys {
            let shown = fk.name.clone().unwrap_or_else(|| fk.columns.join(", "));
            let parent = self.table_id(&fk.referenced_table);
            if parent != id
                && self
                    .client
                    .get_table(&self.dataset, &parent)
                    .await?
                    .is_none()
            {
                let why = format!(
                    "its parent {} is not in dataset {}",
                    fk.referenced_table, self.dataset
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
                .unwrap_or_else(|| format!("{id}_{}_fkey", fk.columns.join("_")));
            let pairs: Vec<(&str, &str)> = fk
                .columns
                .iter()
                .zip(&fk.referenced_columns)
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let project = self.client.project();
            declared.push(foreign_key(&name, project, &self.dataset, &parent, &pairs));
            out.push(ObjectOutcome::created(
                ObjectKind::ForeignKey,
                shown,
                Some(&table.name),
            ));
        }
        if declared.is_empty() {
            return Ok(out);
        }
        let keys = self.keys(table);
        match self
            .client
            .set_constraints(&self.dataset, id, &keys, declared)
            .await
        {
            Ok(()) => Ok(out),
            Err(e) if matches!(e.kind(), ErrorKind::Validation | ErrorKind::Schema) => {
                let why = format!("BigQuery refused the declaration: {}", e.message());
                Ok(out
                    .into_iter()
                    .map(|o| match o.not_created {
                        None => {
                            ObjectOutcome::skipped(o.kind, o.name, o.table.as_ref(), why.clone())
                        }
                        Some(_) => o,
                    })
                    .collect())
            }
            Err(e) => Err(e),
        }
    }

    /// Streams `table`'s chunk rows into a staging table and runs `statement` (built from the
    /// staging table's SQL name) against it; the staging table is dropped afterwards.
    async fn staged<F>(
        &self,
        table: &TableInfo,
        label: &str,
        rows: &mut dyn BatchReader,
        statement: F,
    ) -> Result<WriteStats>
    where
        F: FnOnce(&str, &[StagedColumn]) -> Result<String>,
    {
        let layout = self.layout(table)?;
        let (cols, bq): (Vec<Column>, Vec<BqColumn>) = layout.into_iter().unzip();
        let staged = staged_columns(&cols, &bq);
        let mut ndjson = String::new();
        let mut stats = WriteStats::default();
        let mut index = 0usize;
        while let Some(batch) = rows.next_batch().await? {
            stats.bytes += batch.byte_size() as u64;
            for row in batch.rows() {
                append_row(&table.name, &cols, &staged, index, row, &mut ndjson)?;
                index += 1;
            }
        }
        stats.rows = index as u64;
        let id = self.table_id(&table.name);
        // A suffix no other attempt shares.
        let nonce = format!("{:08x}", fastrand::u32(..));
        let stg = format!("{}{label}_{nonce}", staging_prefix(&id));
        let fields = Json::Array(staged.iter().map(StagedColumn::field).collect());
        let sql = statement(&self.table_sql(&stg), &staged)?;
        if index == 0 {
            // No rows: the statement runs against an empty staging table all the same.
            self.client
                .create_table(&self.dataset, &stg, fields)
                .await?;
        } else {
            self.client
                .load_ndjson(&self.dataset, &stg, fields, ndjson.into_bytes())
                .await
                .map_err(|e| e.table(&table.name))?;
        }
        let done = self
            .client
            .query(&sql)
            .await
            .map_err(|e| e.table(&table.name));
        // The target committed (or not); the staging table has done its job either way.
        if let Err(e) = self.client.delete_table(&self.dataset, &stg).await {
            tracing::warn!(table = %table.name, staging = %stg, error = %e, "staging table left behind");
        }
        done.map(|_| stats)
    }

    /// Drops the staging tables of `tables` a crash left behind (between a chunk's load and
    /// its drop).
    async fn drop_staging(&self, tables: &[TableInfo]) -> Result<()> {
        let prefixes: Vec<String> = tables
            .iter()
            .map(|t| staging_prefix(&self.table_id(&t.name)))
            .collect();
        for id in self.client.list_tables(&self.dataset).await? {
            if prefixes.iter().any(|p| id.starts_with(p.as_str())) {
                self.client.delete_table(&self.dataset, &id).await?;
            }
        }
        Ok(())
    }

    fn keys<'a>(&self, table: &'a TableInfo) -> Vec<&'a str> {
        table.primary_key()
    }
}

#[async_trait]
impl Sink for BqSink {
    fn kind(&self) -> &'static str {
        "bigquery"
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            upsert: true,
            backup: true,
        }
    }

    fn ddl_type(&self, table: &TableInfo, column: &Column) -> Option<String> {
        column_type(&table.name, column).ok().map(BqColumn::ddl)
    }

    async fn describe(&self, table: &TableInfo) -> Result<Option<TableInfo>> {
        let id = self.table_id(&table.name);
        let Some(resource) = self.client.get_table(&self.dataset, &id).await? else {
            return Ok(None);
        };
        let name = TableName::new(self.dataset.clone(), id);
        crate::source::table_of(name, &resource).map(Some)
    }

    fn plan_objects(&self, table: &TableInfo) -> Vec<ObjectOutcome> {
        migrate_core::objects::keys_only(
            table,
            "BigQuery declares only tables, primary and foreign keys (NOT ENFORCED): the bigquery sink does not create it",
        )
    }

    async fn preflight(&self, table: &TableInfo) -> Result<Preflight> {
        let mut problems = Vec::new();
        for c in &table.schema.columns {
            if let Err(e) = column_type(&table.name, c) {
                problems.push(e.message().to_string());
            }
        }
        let id = self.table_id(&table.name);
        let exists = self.client.get_table(&self.dataset, &id).await;
        let exists = match exists {
            Ok(t) => t.is_some(),
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e.table(&table.name)),
        };
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
        if let Some(p) = self.recorded(&id, run).await? {
            return Ok(p);
        }
        let exists = self.client.get_table(&self.dataset, &id).await?.is_some();
        let mut p = Prepared::default();
        match (exists, options.mode) {
            (false, PrepareMode::RequireExisting) => {
                return Err(Error::not_found(format!(
                    "table {} ({}.{id}) does not exist in BigQuery",
                    table.name, self.dataset
                ))
                .table(&table.name))
            }
            (false, _) => {
                p.objects = self.create(table, &id).await?;
                p.created = true;
            }
            (true, PrepareMode::Recreate) => {
                if options.backup {
                    p.backup = Some(self.backup(&id, run).await?);
                }
                self.client.delete_table(&self.dataset, &id).await?;
                p.objects = self.create(table, &id).await?;
                p.created = p.backup.is_none();
            }
            (true, _) => {
                let n = self.count(&id).await?;
                p.existing_rows = Some(n);
                p.merge =
                    options
                        .existing_rows
                        .decide(&table.name, n, !self.keys(table).is_empty())?;
                if n > 0 && options.backup {
                    p.backup = Some(self.backup(&id, run).await?);
                }
                if n > 0 && !p.merge && !migrate_core::chunk::key_orders_alike(&table.schema) {
                    // Chunks of this key upsert rather than clear their ranges: replacing the
                    // table's rows means clearing them once, now.
                    self.client
                        .query(&format!("DELETE FROM {} WHERE TRUE", self.table_sql(&id)))
                        .await?;
                }
            }
        }
        self.record(&id, run, &p).await?;
        Ok(p)
    }

    async fn write_chunk(
        &self,
        table: &TableInfo,
        chunk: &ChunkSpec,
        rows: &mut dyn BatchReader,
    ) -> Result<WriteStats> {
        let target = self.table_sql(&self.table_id(&table.name));
        let keys = self.keys(table);
        let range = chunk.range.clone();
        // A range cut in another engine's order of the key (text, in a Postgres collation)
        // may not select here the rows it selected there: upsert by key, never clear it.
        let clear = range.is_all() || migrate_core::chunk::key_orders_alike(&table.schema);
        self.staged(
            table,
            &format!("c{}", chunk.index),
            rows,
            |stg, staged| match clear {
                true => merge_sql(&target, stg, staged, &keys, &range),
                false => upsert_sql(&target, stg, staged, &keys),
            },
        )
        .await
        .map_err(|e| e.chunk(chunk.index))
    }

    async fn checksum(&self, table: &TableInfo, range: &KeyRange) -> Result<RowChecksum> {
        let sql = self.table_sql(&self.table_id(&table.name));
        read::checksum(&self.client, table, &sql, range).await
    }

    async fn checksum_ranges(
        &self,
        table: &TableInfo,
        ranges: &[KeyRange],
    ) -> Result<Vec<RowChecksum>> {
        let sql = self.table_sql(&self.table_id(&table.name));
        read::checksum_ranges(&self.client, table, &sql, ranges).await
    }

    async fn upsert(&self, table: &TableInfo, rows: &mut dyn BatchReader) -> Result<WriteStats> {
        let target = self.table_sql(&self.table_id(&table.name));
        let keys = self.keys(table);
        self.staged(table, "upsert", rows, |stg, staged| {
            upsert_sql(&target, stg, staged, &keys)
        })
        .await
    }

    async fn fetch_rows(&self, table: &TableInfo, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let sql = self.table_sql(&self.table_id(&table.name));
        read::rows_by_key(&self.client, table, &sql, keys).await
    }

    async fn after_data(
        &self,
        tables: &[TableInfo],
        views: &[migrate_core::View],
        dry_run: bool,
    ) -> Result<Vec<migrate_core::ObjectOutcome>> {
        if !dry_run {
            self.drop_staging(tables).await?;
        }
        let why = "the bigquery sink does not create views";
        Ok(views.iter().map(|v| v.outcome(Some(why))).collect())
    }

    async fn rollback(&self, tables: &[(TableInfo, Prepared)]) -> Result<()> {
        let infos: Vec<TableInfo> = tables.iter().map(|(t, _)| t.clone()).collect();
        self.drop_staging(&infos).await?;
        for (t, p) in tables {
            let id = self.table_id(&t.name);
            let target = self.table_sql(&id);
            match (&p.backup, p.created, p.existing_rows) {
                (Some(b), _, _) => {
                    // The backed-up rows come back into the table as it is now.
                    self.client
                        .query(&format!("DELETE FROM {target} WHERE TRUE"))
                        .await?;
                    self.client
                        .query(&format!(
                            "INSERT INTO {target} SELECT * FROM {}",
                            self.table_sql(b)
                        ))
                        .await?;
                    self.client.delete_table(&self.dataset, b).await?;
                }
                (None, true, _) => {
                    self.client.delete_table(&self.dataset, &id).await?;
                }
                (None, false, Some(0)) => {
                    self.client
                        .query(&format!("DELETE FROM {target} WHERE TRUE"))
                        .await?;
                }
                // Rows were merged or replaced without a backup: nothing to put back.
                (None, false, _) => {}
            }
            self.client
                .query(&format!(
                    "DELETE FROM {} WHERE target = {}",
                    self.table_sql(PREPARED),
                    string_literal(&id)
                ))
                .await
                .or_else(|e| match e.kind() {
                    ErrorKind::NotFound | ErrorKind::Schema => Ok(Default::default()),
                    _ => Err(e),
                })?;
        }
        Ok(())
    }
}

/// The start of every staging table name of target table `id`: its length makes it
/// unambiguous (`a` and `a_b` have different prefixes).
pub fn staging_prefix(id: &str) -> String {
    format!("_migrate_stg_{}_{id}_", id.chars().count())
}

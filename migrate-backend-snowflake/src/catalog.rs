//! What a Snowflake schema holds, from its `INFORMATION_SCHEMA` and `SHOW … KEYS`: whether a
//! table exists, its columns as migrate's, its keys — shared by the sink (existing targets,
//! drift) and the source (discovery).

use std::collections::BTreeMap;

use migrate_core::{Column, Error, ForeignKey, Result, Schema, TableInfo, TableName, Value};

use crate::endpoint::SfEndpoint;
use crate::pool::SessionPool;
use crate::sql::{ident, migrate_name, string_literal};
use crate::types::from_snowflake;

/// One database and schema, as Snowflake names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The database's name.
    pub database: String,
    /// The schema's name.
    pub schema: String,
}

/// A name from a URL as Snowflake stores it: unquoted-identifier spelling (any case) is
/// upper-case, as Snowflake reads an unquoted name; anything else is kept as written.
pub fn url_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    match plain {
        true => name.to_ascii_uppercase(),
        false => name.to_string(),
    }
}

/// A column as `INFORMATION_SCHEMA.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfColumn {
    /// Snowflake's name.
    pub name: String,
    /// `DATA_TYPE`.
    pub ty: String,
    /// Digits of a `NUMBER`.
    pub precision: Option<u32>,
    /// Decimal places of a `NUMBER`.
    pub scale: Option<u32>,
    /// Characters of a `VARCHAR`.
    pub length: Option<u32>,
    /// `IS_NULLABLE`.
    pub nullable: bool,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::Null) | None => None,
        Some(v) => migrate_core::checksum::canonical_text(v).parse().ok(),
    }
}

impl Catalog {
    /// The endpoint's database and schema.
    pub fn new(endpoint: &SfEndpoint) -> Self {
        Catalog {
            database: url_name(&endpoint.database),
            schema: url_name(&endpoint.schema),
        }
    }

    /// `"DB"."SCHEMA"`.
    pub fn schema_sql(&self) -> String {
        format!("{}.{}", ident(&self.database), ident(&self.schema))
    }

    /// `"DB"."SCHEMA"."ID"`.
    pub fn table_sql(&self, id: &str) -> String {
        format!("{}.{}", self.schema_sql(), ident(id))
    }

    fn info(&self, view: &str) -> String {
        format!("{}.INFORMATION_SCHEMA.{view}", ident(&self.database))
    }

    /// Whether table `id` exists.
    pub async fn exists(&self, pool: &SessionPool, id: &str) -> Result<bool> {
        let r = pool
            .query(
                &format!(
                    "SELECT COUNT(*) FROM {} WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND TABLE_TYPE = 'BASE TABLE'",
                    self.info("TABLES"),
                    string_literal(&self.schema),
                    string_literal(id)
                ),
                &[],
            )
            .await?;
        Ok(number(r.rows.first().and_then(|row| row.first())).unwrap_or(0) > 0)
    }

    /// The schema's base tables with their row and byte estimates.
    pub async fn tables(&self, pool: &SessionPool) -> Result<Vec<(String, u64, u64)>> {
        let r = pool
            .query(
                &format!(
                    "SELECT TABLE_NAME, ROW_COUNT, BYTES FROM {} WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                    self.info("TABLES"),
                    string_literal(&self.schema)
                ),
                &[],
            )
            .await?;
        Ok(r.rows
            .iter()
            .filter_map(|row| {
                let name = text(row.first())?;
                Some((
                    name,
                    number(row.get(1)).unwrap_or(0),
                    number(row.get(2)).unwrap_or(0),
                ))
            })
            .collect())
    }

    /// Table `id`'s columns, in order.
    pub async fn columns(&self, pool: &SessionPool, id: &str) -> Result<Vec<SfColumn>> {
        let r = pool
            .query(
                &format!(
                    "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE \
                     FROM {} WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                    self.info("COLUMNS"),
                    string_literal(&self.schema),
                    string_literal(id)
                ),
                &[],
            )
            .await?;
        let u32_of = |v: Option<&Value>| number(v).and_then(|n| u32::try_from(n).ok());
        Ok(r.rows
            .iter()
            .filter_map(|row| {
                Some(SfColumn {
                    name: text(row.first())?,
                    ty: text(row.get(1))?,
                    precision: u32_of(row.get(2)),
                    scale: u32_of(row.get(3)),
                    length: u32_of(row.get(4)),
                    nullable: text(row.get(5)).as_deref() != Some("NO"),
                })
            })
            .collect())
    }

    /// The primary-key columns of every table in the schema (Snowflake's names), in key order.
    pub async fn primary_keys(&self, pool: &SessionPool) -> Result<BTreeMap<String, Vec<String>>> {
        let r = pool
            .query(
                &format!("SHOW PRIMARY KEYS IN SCHEMA {}", self.schema_sql()),
                &[],
            )
            .await?;
        let at = |name: &str| {
            r.columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        let (Some(t), Some(c), Some(seq)) =
            (at("table_name"), at("column_name"), at("key_sequence"))
        else {
            return Err(Error::fatal(
                "SHOW PRIMARY KEYS answered without its columns",
            ));
        };
        let mut keys: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for row in &r.rows {
            if let (Some(table), Some(col)) = (text(row.get(t)), text(row.get(c))) {
                let n = number(row.get(seq)).unwrap_or(0);
                keys.entry(table).or_default().push((n, col));
            }
        }
        Ok(keys
            .into_iter()
            .map(|(t, mut cols)| {
                cols.sort();
                (t, cols.into_iter().map(|(_, c)| c).collect())
            })
            .collect())
    }

    /// The foreign keys of every table in the schema whose parent is in the same schema, as
    /// migrate's (`schema` names the tables' migrate schema); rows without a parent table are
    /// skipped (the emulator answers with primary keys there).
    pub async fn foreign_keys(
        &self,
        pool: &SessionPool,
        schema: &str,
    ) -> Result<BTreeMap<String, Vec<ForeignKey>>> {
        let r = pool
            .query(
                &format!("SHOW IMPORTED KEYS IN SCHEMA {}", self.schema_sql()),
                &[],
            )
            .await?;
        let at = |name: &str| {
            r.columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        let cols = [
            "pk_database_name",
            "pk_schema_name",
            "pk_table_name",
            "pk_column_name",
            "fk_table_name",
            "fk_column_name",
            "key_sequence",
            "fk_name",
        ]
        .map(at);
        let [Some(pd), Some(ps), Some(pt), Some(pc), Some(ft), Some(fc), Some(seq), Some(name)] =
            cols
        else {
            return Err(Error::fatal(
                "SHOW IMPORTED KEYS answered without its columns",
            ));
        };
        // (child, constraint) → (parent, [(seq, child column, parent column)])
        type Pairs = (String, Vec<(u64, String, String)>);
        let mut found: BTreeMap<(String, String), Pairs> = BTreeMap::new();
        for row in &r.rows {
            let get = |i: usize| text(row.get(i)).filter(|s| !s.is_empty());
            let (Some(parent), Some(child), Some(pcol), Some(fcol)) =
                (get(pt), get(ft), get(pc), get(fc))
            else {
                continue;
            };
            // A parent in another database or schema is not one this source reads.
            if get(ps).as_deref() != Some(self.schema.as_str())
                || get(pd).as_deref() != Some(self.database.as_str())
            {
                continue;
            }
            let constraint = get(name).unwrap_or_else(|| format!("{child}_{fcol}_fkey"));
            let n = number(row.get(seq)).unwrap_or(0);
            found
                .entry((child, constraint))
                .or_insert_with(|| (parent, Vec::new()))
                .1
                .push((n, fcol, pcol));
        }
        let mut out: BTreeMap<String, Vec<ForeignKey>> = BTreeMap::new();
        for ((child, constraint), (parent, mut pairs)) in found {
            pairs.sort();
            out.entry(child).or_default().push(ForeignKey {
                name: Some(migrate_name(&constraint)),
                columns: pairs.iter().map(|p| migrate_name(&p.1)).collect(),
                referenced_table: TableName::new(schema, migrate_name(&parent)),
                referenced_columns: pairs.iter().map(|p| migrate_name(&p.2)).collect(),
                definition: None,
            });
        }
        Ok(out)
    }

    /// Table `id` as migrate sees it: columns with migrate's names and types, the primary
    /// key; an error naming the column migrate cannot read.
    pub async fn describe(&self, pool: &SessionPool, id: &str) -> Result<TableInfo> {
        let keys = self.primary_keys(pool).await?;
        let key = keys.get(id).map(Vec::as_slice).unwrap_or_default();
        Ok(self.table_info(pool, id, key).await?.0)
    }

    /// Table `id` with primary key `key` (Snowflake's names), and its columns' Snowflake
    /// names in order (migrate's names fold case: see [`crate::sql::migrate_name`]).
    pub async fn table_info(
        &self,
        pool: &SessionPool,
        id: &str,
        key: &[String],
    ) -> Result<(TableInfo, Vec<String>)> {
        let name = TableName::new(migrate_name(&self.schema), migrate_name(id));
        let mut columns = Vec::new();
        let mut names = Vec::new();
        for c in self.columns(pool, id).await? {
            let ty = from_snowflake(&c.ty, c.precision, c.scale, c.length).ok_or_else(|| {
                Error::schema(format!(
                    "table {name}, column {:?}: Snowflake type {} has no migrate type",
                    c.name, c.ty
                ))
                .table(&name)
            })?;
            let mut col = Column::new(migrate_name(&c.name), ty);
            col.nullable = c.nullable;
            columns.push(col);
            names.push(c.name);
        }
        let key: Vec<String> = key.iter().map(|k| migrate_name(k)).collect();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let schema = Schema::new(columns, &key).map_err(|e| e.table(&name))?;
        Ok((TableInfo::new(name, schema), names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names_read_as_snowflake_reads_unquoted_names() {
        assert_eq!(url_name("analytics"), "ANALYTICS");
        assert_eq!(url_name("Legacy_DB"), "LEGACY_DB");
        assert_eq!(url_name("my-db"), "my-db");
    }
}

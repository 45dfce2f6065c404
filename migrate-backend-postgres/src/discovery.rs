//! Tables, columns, keys and estimates from the Postgres catalogs — no table scans.

use std::collections::BTreeMap;

use migrate_core::objects::{GeneratedColumn, Identity};
use migrate_core::{
    Column, DataType, Error, ForeignKey, Result, Schema, TableFilter, TableInfo, TableName,
};
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::catalog;
use crate::error::pg_error;
use crate::sql::ident;
use crate::types::{array_of, map_type};

/// What the backend needs to read a table beyond its [`TableInfo`].
#[derive(Debug, Clone)]
pub struct PgTable {
    /// The table.
    pub info: TableInfo,
    /// Per column: the SELECT expression (casts for enums, domains, text-like types).
    pub exprs: Vec<String>,
    /// Per column: the wire type of that expression.
    pub wire: Vec<Type>,
    /// The table has enabled user triggers (writes keep them from firing where the role may).
    pub user_triggers: bool,
    /// Per column: its type without modifiers (`character varying`), what staged rows are cast
    /// to (the assignment into the column then checks length and scale, as COPY would).
    pub cast_to: Vec<String>,
    /// Per column: whether the column takes its wire type's binary form as it is (an enum
    /// takes text, a domain its base type); where it does not (`inet` read as text, arrays of
    /// enums), writes go through a staging table and a cast.
    pub direct: Vec<bool>,
}

/// Lists the tables passing `filter` with their columns, keys, foreign keys and estimates.
/// Every name in a definition comes with its schema (see [`crate::sql::empty_search_path`]).
pub async fn discover(client: &Client, filter: &TableFilter) -> Result<Vec<PgTable>> {
    discover_as(client, filter, true).await
}

/// [`discover`] without the schema objects beyond columns and keys (types, sequences,
/// constraints, …): what a sink needs of its own tables to write them, for a fraction of the
/// catalog queries.
pub async fn discover_columns(client: &Client, filter: &TableFilter) -> Result<Vec<PgTable>> {
    discover_as(client, filter, false).await
}

async fn discover_as(client: &Client, filter: &TableFilter, objects: bool) -> Result<Vec<PgTable>> {
    let old = crate::sql::empty_search_path(client).await?;
    let found = discover_qualified(client, filter, objects).await;
    crate::sql::restore_search_path(client, &old).await?;
    found
}

async fn discover_qualified(
    client: &Client,
    filter: &TableFilter,
    with_objects: bool,
) -> Result<Vec<PgTable>> {
    // Sizes come from the statistics where a table was ever analyzed or vacuumed (asking the
    // file system for each of 10,000 tables took half a second), else they are measured. Table
    // lists go to the catalogs as a set to join (`IN (SELECT unnest(…))`), not `= ANY(…)`.
    let rels = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.reltuples::float8,
                    CASE WHEN c.reltuples >= 0
                         THEN (c.relpages::bigint + COALESCE(tc.relpages, 0)) * current_setting('block_size')::bigint
                         ELSE pg_table_size(c.oid)::bigint END,
                    EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
                               AND t.tgenabled <> 'D')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_migrate')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
              ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "listing tables"))?;
    let mut wanted: BTreeMap<u32, (TableName, f64, i64)> = BTreeMap::new();
    let mut triggers: BTreeMap<u32, bool> = BTreeMap::new();
    for r in rels {
        let name = TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        if filter.matches(&name) {
            wanted.insert(r.get(0), (name, r.get(3), r.get(4)));
            triggers.insert(r.get(0), r.get(5));
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<u32> = wanted.keys().copied().collect();
    let cols = client
        .query(
            "SELECT a.attrelid, a.attname::text, a.attnotnull,
                    CASE WHEN a.atttypmod >= 0 THEN a.atttypmod ELSE t.typtypmod END,
                    a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid),
                    format_type(a.atttypid, a.atttypmod),
                    bt.typname::text, bt.typtype::text, bt.typcategory::text,
                    et.typname::text, et.typtype::text, t.typtype::text,
                    a.atttypid, a.attidentity::text, format_type(a.atttypid, NULL),
                    (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace
                      WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation)
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
               LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid IN (SELECT unnest($1::oid[])) AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading columns"))?;
    let pks = client
        .query(
            "SELECT i.indrelid, array_agg(a.attname::text ORDER BY k.ord)
               FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indisprimary AND i.indrelid IN (SELECT unnest($1::oid[]))
              GROUP BY i.indrelid",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading primary keys"))?;
    let fks = client
        .query(
            "SELECT con.conrelid, con.conname::text, fn.nspname::text, fc.relname::text,
                    (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY AS k(n, ord)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
                    (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY AS k(n, ord)
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n),
                    pg_get_constraintdef(con.oid)
               FROM pg_constraint con
               JOIN pg_class fc ON fc.oid = con.confrelid
               JOIN pg_namespace fn ON fn.oid = fc.relnamespace
              WHERE con.contype = 'f' AND con.conrelid IN (SELECT unnest($1::oid[]))
              ORDER BY con.conrelid, con.conname",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading foreign keys"))?;

    let idx = client
        .query(
            "SELECT i.indrelid, ic.relname::text, i.indisunique, pg_get_indexdef(i.indexrelid),
                    COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY AS k(n, ord)
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n), '{}')
               FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid IN (SELECT unnest($1::oid[])) AND NOT i.indisprimary
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                                   AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
              ORDER BY i.indrelid, ic.relname",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading indexes"))?;
    let mut idx_of: BTreeMap<u32, Vec<migrate_core::IndexDef>> = BTreeMap::new();
    for r in idx {
        idx_of
            .entry(r.get(0))
            .or_default()
            .push(migrate_core::IndexDef {
                name: r.get(1),
                unique: r.get(2),
                definition: Some(r.get(3)),
                columns: r.get(4),
            });
    }
    let mut pk_of: BTreeMap<u32, Vec<String>> =
        pks.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut fk_of: BTreeMap<u32, Vec<ForeignKey>> = BTreeMap::new();
    for r in fks {
        fk_of.entry(r.get(0)).or_default().push(ForeignKey {
            name: Some(r.get(1)),
            referenced_table: TableName::new(r.get::<_, String>(2), r.get::<_, String>(3)),
            columns: r.get(4),
            referenced_columns: r.get(5),
            definition: Some(r.get(6)),
        });
    }
    // Per table: columns, their SELECT expressions, their wire types, whether direct.
    type Cols = (Vec<Column>, Vec<String>, Vec<Type>, Vec<bool>, Vec<String>);
    let mut by_table: BTreeMap<u32, Cols> = BTreeMap::new();
    let mut generated: BTreeMap<u32, Vec<GeneratedColumn>> = BTreeMap::new();
    let mut identity: BTreeMap<u32, Vec<(String, Identity)>> = BTreeMap::new();
    let mut column_types: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut positions: BTreeMap<u32, usize> = BTreeMap::new();
    let mut collations: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for r in cols {
        let oid: u32 = r.get(0);
        let (table, _, _) = &wanted[&oid];
        let name: String = r.get(1);
        let position = {
            let p = positions.entry(oid).or_default();
            *p += 1;
            *p - 1
        };
        column_types.entry(oid).or_default().push(r.get(13));
        let typmod: i32 = r.get(3);
        let native: String = r.get(6);
        let base: String = r.get(7);
        let base_kind: String = r.get(8);
        let category: String = r.get(9);
        let was_domain = r.get::<_, String>(12) == "d";
        let unmappable = || {
            Error::schema(format!(
                "table {table}: column {name:?} has type {native}, which migrate cannot map"
            ))
        };
        let (data_type, wire, warn, direct) = if category == "A" {
            let elem: Option<String> = r.get(10);
            let elem_kind: Option<String> = r.get(11);
            let elem = elem.ok_or_else(unmappable)?;
            let is_enum = elem_kind.as_deref() == Some("e");
            let (t, w, warn) = match elem_kind.as_deref() {
                Some("c") => composite(),
                _ => map_type(&elem, -1, is_enum).ok_or_else(unmappable)?,
            };
            let aw = array_of(&w).ok_or_else(unmappable)?;
            // An array's binary form names its element type, which must be the column's own.
            let direct = warn.is_none() && elem != "citext";
            (DataType::Array(Box::new(t)), aw, warn, direct)
        } else {
            let (t, w, warn) = match base_kind.as_str() {
                "c" => composite(),
                _ => map_type(&base, typmod, base_kind == "e").ok_or_else(unmappable)?,
            };
            let direct = warn.is_none() || base_kind == "e";
            (t, w, warn, direct)
        };
        let mut col = Column::new(name, data_type);
        col.nullable = !r.get::<_, bool>(2);
        col.source_type = Some(native);
        let expression: Option<String> = r.get(5);
        if let Some(c) = r.get::<_, Option<String>>(16) {
            collations
                .entry(oid)
                .or_default()
                .push((col.name.clone(), c));
        }
        let generation: String = r.get(4);
        if !generation.is_empty() {
            // Computed by the target: never read or written as data.
            generated.entry(oid).or_default().push(GeneratedColumn {
                position,
                column: col,
                expression: expression.unwrap_or_default(),
                stored: generation == "s",
            });
            continue;
        }
        match r.get::<_, String>(14).as_str() {
            "a" => identity
                .entry(oid)
                .or_default()
                .push((col.name.clone(), Identity::Always)),
            "d" => identity
                .entry(oid)
                .or_default()
                .push((col.name.clone(), Identity::ByDefault)),
            _ => {}
        }
        if let Some(w) = warn {
            tracing::debug!(table = %table, column = %col.name, r#type = ?col.source_type, "{w}");
        }
        // Read through a cast whenever the column's own type is not the wire type.
        let plain = !was_domain && warn.is_none();
        let expr = if plain {
            ident(&col.name)
        } else {
            format!("{}::{}", ident(&col.name), pg_type_name(&wire))
        };
        col.default = expression;
        let e = by_table.entry(oid).or_default();
        e.0.push(col);
        e.1.push(expr);
        e.2.push(wire);
        e.3.push(direct);
        e.4.push(r.get(15));
    }
    let names: BTreeMap<u32, TableName> = wanted
        .iter()
        .map(|(o, (n, _, _))| (*o, n.clone()))
        .collect();
    let mut objects = match with_objects {
        true => catalog::read_objects(client, &names, &column_types).await?,
        false => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (oid, (name, reltuples, bytes)) in wanted {
        let (columns, exprs, wire, direct, cast_to) = by_table.remove(&oid).unwrap_or_default();
        let pk = pk_of.remove(&oid).unwrap_or_default();
        let pk_refs: Vec<&str> = pk.iter().map(String::as_str).collect();
        let schema = Schema::new(columns, &pk_refs).map_err(|e| e.table(&name))?;
        let mut info = TableInfo::new(name.clone(), schema);
        info.foreign_keys = fk_of.remove(&oid).unwrap_or_default();
        info.indexes = idx_of.remove(&oid).unwrap_or_default();
        info.objects = objects.remove(&oid).unwrap_or_default();
        info.objects.generated = generated.remove(&oid).unwrap_or_default();
        info.objects.identity = identity.remove(&oid).unwrap_or_default();
        info.objects.collations = collations.remove(&oid).unwrap_or_default();
        info.estimated_bytes = bytes.max(0) as u64;
        info.estimated_rows = if reltuples >= 0.0 {
            reltuples as u64
        } else if bytes < 64 << 20 {
            // Never analyzed and small: count it.
            let q = format!("SELECT count(*) FROM {}", crate::sql::table(&name));
            let n: i64 = client
                .query_one(&q, &[])
                .await
                .map_err(|e| pg_error(e, "counting rows"))?
                .get(0);
            n as u64
        } else {
            (bytes / 100).max(0) as u64
        };
        out.push(PgTable {
            info,
            exprs,
            wire,
            direct,
            cast_to,
            user_triggers: triggers.get(&oid).copied().unwrap_or(false),
        });
    }
    Ok(out)
}

/// A composite (row) type travels as its text form: `(a,"b c")`, cast back by the target.
fn composite() -> (DataType, Type, Option<&'static str>) {
    (
        DataType::text(),
        Type::TEXT,
        Some("composite migrated as its text form"),
    )
}

/// The SQL name of a wire type, for casts.
pub(crate) fn pg_type_name(t: &Type) -> String {
    match t.kind() {
        tokio_postgres::types::Kind::Array(e) => format!("{}[]", e.name()),
        _ => t.name().to_string(),
    }
}

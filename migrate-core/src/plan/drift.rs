//! Schema drift: how the target's existing tables differ from the source's, and for
//! each difference the DDL the run applies, the change it accepts as is, or why it cannot
//! proceed.

use serde::{Deserialize, Serialize};

use crate::schema::{DataType, TableInfo};

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The table.
    pub table: String,
    /// The column, for column-level differences.
    pub column: Option<String>,
    /// What differs.
    pub change: String,
    /// What the run does about it: the DDL it applies, or why the existing shape is fine.
    pub action: String,
    /// Whether the run cannot proceed for this table until someone acts.
    pub blocking: bool,
}

/// Whether values of `source` fit a `target` column without loss (same type, or a widening).
pub fn compatible(source: &DataType, target: &DataType) -> bool {
    use DataType::*;
    match (source, target) {
        (a, b) if a == b => true,
        (Int16, Int32 | Int64 | Decimal { .. })
        | (Int32, Int64 | Decimal { .. })
        | (Int64, Decimal { .. }) => true,
        (Float32, Float64) => true,
        (
            Decimal { .. },
            Decimal {
                precision: None, ..
            },
        ) => true,
        (
            Decimal {
                precision: Some(p),
                scale: s,
            },
            Decimal {
                precision: Some(q),
                scale: t,
            },
        ) => {
            s.unwrap_or(0) <= t.unwrap_or(0)
                && p.saturating_sub(s.unwrap_or(0)) <= q.saturating_sub(t.unwrap_or(0))
        }
        (Text { .. }, Text { max_len: None }) => true,
        (Text { max_len: Some(a) }, Text { max_len: Some(b) }) => a <= b,
        (Text { .. } | Json, Json) => true,
        (Array(a), Array(b)) => compatible(a, b),
        _ => false,
    }
}

/// Compares each source table with the target table of the same name (`None` when missing);
/// DDL names types as this library does (see [`drift_with`] for the target's own names).
pub fn drift(pairs: &[(TableInfo, Option<TableInfo>)]) -> Vec<Drift> {
    drift_with(pairs, &|_, c| c.data_type.to_string())
}

/// [`drift`], with the DDL it suggests naming each column's type by `type_name` (the target's
/// own type names: `jsonb`, `bytea`, `bigint` for Postgres; the table says which engine's
/// definitions it carries).
pub fn drift_with(
    pairs: &[(TableInfo, Option<TableInfo>)],
    type_name: &dyn Fn(&TableInfo, &crate::schema::Column) -> String,
) -> Vec<Drift> {
    let mut out = Vec::new();
    for (src, tgt) in pairs {
        let type_name = |c: &crate::schema::Column| type_name(src, c);
        let table = src.name.to_string();
        let Some(tgt) = tgt else {
            let cols: Vec<String> = src
                .schema
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, type_name(c)))
                .collect();
            out.push(Drift {
                table: table.clone(),
                column: None,
                change: "missing in the target".into(),
                action: format!("CREATE TABLE {table} ({})", cols.join(", ")),
                blocking: false,
            });
            continue;
        };
        for c in &src.schema.columns {
            let Some(t) = tgt.schema.columns.iter().find(|t| t.name == c.name) else {
                out.push(Drift {
                    table: table.clone(),
                    column: Some(c.name.clone()),
                    change: format!("column added in the source ({})", type_name(c)),
                    action: format!(
                        "cannot proceed: run ALTER TABLE {table} ADD COLUMN {} {} first",
                        c.name,
                        type_name(c)
                    ),
                    blocking: true,
                });
                continue;
            };
            if c.data_type != t.data_type {
                let ok = compatible(&c.data_type, &t.data_type);
                out.push(Drift {
                    table: table.clone(),
                    column: Some(c.name.clone()),
                    change: format!(
                        "type {} in the source, {} in the target",
                        type_name(c),
                        type_name(t)
                    ),
                    action: if ok {
                        "kept: the target type holds every source value".into()
                    } else {
                        format!(
                            "cannot proceed: run ALTER TABLE {table} ALTER COLUMN {} TYPE {} first",
                            c.name,
                            type_name(c)
                        )
                    },
                    blocking: !ok,
                });
            }
            if c.nullable && !t.nullable {
                out.push(Drift {
                    table: table.clone(),
                    column: Some(c.name.clone()),
                    change: "nullable in the source, NOT NULL in the target".into(),
                    action: format!("kept: rows with NULL in {} will fail (ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL to accept them)", c.name, c.name),
                    blocking: false,
                });
            }
        }
        for t in &tgt.schema.columns {
            if src.schema.index_of(&t.name).is_none() {
                let ok = t.nullable || t.default.is_some();
                out.push(Drift {
                    table: table.clone(),
                    column: Some(t.name.clone()),
                    change: "column only in the target".into(),
                    action: if ok {
                        "kept: the run leaves it NULL or its default".into()
                    } else {
                        format!("cannot proceed: it is NOT NULL without a default (ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL)", t.name)
                    },
                    blocking: !ok,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Schema, TableName};

    fn t(cols: Vec<Column>) -> TableInfo {
        TableInfo::new(
            TableName::new("public", "orders"),
            Schema::new(cols, &[]).unwrap(),
        )
    }

    #[test]
    fn lists_every_kind_of_difference_with_its_action() {
        let src = t(vec![
            Column::new("id", DataType::Int32).not_null(),
            Column::new("note", DataType::text()),
            Column::new("code", DataType::Text { max_len: Some(20) }),
            Column::new("added", DataType::Bool),
        ]);
        let mut dropped = Column::new("legacy", DataType::Int64).not_null();
        dropped.default = None;
        let tgt = t(vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new("note", DataType::text()).not_null(),
            Column::new("code", DataType::Text { max_len: Some(5) }),
            dropped,
            Column::new("spare", DataType::text()),
        ]);
        let d = drift(&[
            (src.clone(), Some(tgt)),
            (
                TableInfo::new(
                    TableName::new("public", "new_one"),
                    Schema::new(vec![Column::new("x", DataType::Date)], &[]).unwrap(),
                ),
                None,
            ),
        ]);
        let find = |col: &str| {
            d.iter()
                .find(|x| x.column.as_deref() == Some(col))
                .unwrap_or_else(|| panic!("{col}: {d:?}"))
        };
        assert!(!find("id").blocking, "int32 into int64 widens");
        assert!(
            find("code").blocking
                && find("code")
                    .action
                    .contains("ALTER COLUMN code TYPE text(20)")
        );
        assert!(find("added").blocking && find("added").action.contains("ADD COLUMN added bool"));
        assert!(
            find("legacy").blocking,
            "NOT NULL without default only in the target"
        );
        assert!(!find("spare").blocking);
        assert!(find("note").change.contains("NOT NULL in the target"));
        let missing = d.iter().find(|x| x.table == "public.new_one").unwrap();
        assert!(missing
            .action
            .starts_with("CREATE TABLE public.new_one (x date)"));
    }
}

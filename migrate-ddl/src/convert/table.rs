//! One `CREATE TABLE` → [`TableInfo`], and constraints added to it later (`ALTER TABLE … ADD
//! CONSTRAINT`). Unnamed constraints get the names Postgres would give them (`orders_pkey`,
//! `orders_sku_key`, `orders_qty_check`, `orders_customer_id_fkey`).

use std::collections::BTreeMap;
use std::sync::Arc;

use migrate_core::objects::{
    Constraint, ConstraintKind, GeneratedColumn, Identity, Partitioning, Sequence, UserType,
};
use migrate_core::{Column, ForeignKey, Schema, TableInfo, TableName, TableObjects};
use sqlparser::ast::{
    ColumnOption, CreateTable, Expr, ForeignKeyConstraint, GeneratedAs, IndexColumn,
    TableConstraint,
};

use super::types::{self, UserDef};
use super::{fold, table_name};

/// The table `ct` creates; `Err` says what cannot be converted.
pub(super) fn convert(
    ct: &CreateTable,
    users: &BTreeMap<String, UserDef>,
    user_types: &BTreeMap<String, UserType>,
) -> Result<TableInfo, String> {
    if ct.query.is_some() {
        return Err(
            "CREATE TABLE … AS cannot be converted: its columns have no declared types".into(),
        );
    }
    if ct.like.is_some() {
        return Err("CREATE TABLE … (LIKE …) cannot be converted: write its columns out".into());
    }
    if ct.inherits.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(
            "INHERITS cannot be converted: declare the inherited columns in the table".into(),
        );
    }
    let name = table_name(&ct.name);
    let mut objects = TableObjects {
        source_dialect: Some("postgres".into()),
        ..Default::default()
    };
    let (mut columns, mut key, mut foreign_keys) = (Vec::new(), Vec::new(), Vec::new());
    for (position, c) in ct.columns.iter().enumerate() {
        let col = fold(&c.name);
        let m = types::map(&c.data_type, users)
            .map_err(|e| format!("column {col}: {e} cannot be converted"))?;
        let mut column = Column::new(col.clone(), m.data_type.clone());
        column.source_type = Some(m.source_type.clone());
        if let Some(t) = m.user_type.as_ref().and_then(|u| user_types.get(u)) {
            if !objects.types.contains(t) {
                objects.types.push(t.clone());
            }
        }
        let mut generated = None;
        let mut identity = None;
        for o in &c.options {
            let named = o.name.as_ref().map(fold);
            match &o.option {
                ColumnOption::NotNull => column.nullable = false,
                ColumnOption::Null => {}
                ColumnOption::Default(e) => column.default = Some(e.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    key.push(col.clone());
                    column.nullable = false;
                }
                ColumnOption::Unique(_) => objects.constraints.push(Constraint {
                    name: named.unwrap_or_else(|| format!("{}_{col}_key", name.name)),
                    kind: ConstraintKind::Unique,
                    columns: vec![col.clone()],
                    definition: format!("UNIQUE ({})", c.name),
                }),
                ColumnOption::ForeignKey(fk) => {
                    foreign_keys.push(foreign_key(&name, named, vec![col.clone()], fk))
                }
                ColumnOption::Check(ch) => objects.constraints.push(Constraint {
                    name: named.unwrap_or_else(|| format!("{}_{col}_check", name.name)),
                    kind: ConstraintKind::Check,
                    columns: vec![col.clone()],
                    definition: format!("CHECK ({})", ch.expr),
                }),
                ColumnOption::Generated {
                    generated_as,
                    generation_expr: None,
                    ..
                } => {
                    identity = Some(match generated_as {
                        GeneratedAs::ByDefault => Identity::ByDefault,
                        _ => Identity::Always,
                    });
                    column.nullable = false;
                }
                ColumnOption::Generated {
                    generation_expr: Some(e),
                    ..
                } => generated = Some(e.to_string()),
                ColumnOption::Collation(n) => objects.collations.push((col.clone(), n.to_string())),
                other => return Err(format!("column {col}: {other} cannot be converted")),
            }
        }
        let sequence = |owned: bool| {
            let (ty, max) = match m.data_type {
                migrate_core::DataType::Int16 => ("smallint", i64::from(i16::MAX)),
                migrate_core::DataType::Int32 => ("integer", i64::from(i32::MAX)),
                _ => ("bigint", i64::MAX),
            };
            Sequence {
                name: TableName::new(
                    name.schema.clone().unwrap_or_default(),
                    format!("{}_{col}_seq", name.name),
                ),
                data_type: ty.into(),
                start: 1,
                increment: 1,
                min: 1,
                max,
                cache: 1,
                cycle: false,
                owned_by: owned.then(|| col.clone()),
                identity_of: (!owned).then(|| col.clone()),
            }
        };
        if m.serial.is_some() {
            let seq = sequence(true);
            column.nullable = false;
            let qualified = super::sql_name(&seq.name).to_string().replace('\'', "''");
            column.default = Some(format!("nextval('{qualified}'::regclass)"));
            objects.sequences.push(seq);
        }
        if let Some(kind) = identity {
            if !matches!(
                m.data_type,
                migrate_core::DataType::Int16
                    | migrate_core::DataType::Int32
                    | migrate_core::DataType::Int64
            ) {
                return Err(format!("column {col}: identity on type {}", m.source_type));
            }
            objects.sequences.push(sequence(false));
            objects.identity.push((col.clone(), kind));
        }
        match generated {
            Some(expression) => objects.generated.push(GeneratedColumn {
                position,
                column,
                expression,
                stored: true,
            }),
            None => columns.push(column),
        }
    }
    let mut table = TableInfo::new(
        name.clone(),
        Schema::new(columns, &[]).map_err(|e| e.to_string())?,
    );
    table.objects = objects;
    table.foreign_keys = foreign_keys;
    if !key.is_empty() {
        set_key(&mut table, &key)?;
    }
    for c in &ct.constraints {
        add_constraint(&mut table, c)?;
    }
    unique_names(&mut table);
    if let Some(by) = &ct.partition_by {
        table.objects.partitioning = Some(Partitioning {
            key: partition_key(by),
            partitions: Vec::new(),
        });
    }
    Ok(table)
}

/// Adds a table constraint (from the `CREATE TABLE` or a later `ALTER TABLE`).
pub(super) fn add_constraint(table: &mut TableInfo, c: &TableConstraint) -> Result<(), String> {
    let t = table.name.name.clone();
    match c {
        TableConstraint::PrimaryKey(pk) => {
            let cols = index_columns(&pk.columns)?;
            set_key(table, &cols)
        }
        TableConstraint::ForeignKey(fk) => {
            let cols: Vec<String> = fk.columns.iter().map(fold).collect();
            let name = fk.name.as_ref().map(fold);
            let fk = foreign_key(&table.name, name, cols, fk);
            table.foreign_keys.push(fk);
            Ok(())
        }
        TableConstraint::Unique(u) => {
            let cols = index_columns(&u.columns)?;
            let name = u
                .name
                .as_ref()
                .map(fold)
                .unwrap_or_else(|| format!("{t}_{}_key", cols.join("_")));
            table.objects.constraints.push(Constraint {
                name,
                kind: ConstraintKind::Unique,
                columns: cols.clone(),
                definition: format!("UNIQUE ({})", quoted(&cols)),
            });
            Ok(())
        }
        TableConstraint::Check(ch) => {
            let name = ch
                .name
                .as_ref()
                .map(fold)
                .unwrap_or_else(|| format!("{t}_check"));
            table.objects.constraints.push(Constraint {
                name,
                kind: ConstraintKind::Check,
                columns: Vec::new(),
                definition: format!("CHECK ({})", ch.expr),
            });
            Ok(())
        }
        TableConstraint::Exclude(x) => {
            table.objects.constraints.push(Constraint {
                name: x
                    .name
                    .as_ref()
                    .map(fold)
                    .unwrap_or_else(|| format!("{t}_excl")),
                kind: ConstraintKind::Exclusion,
                columns: Vec::new(),
                definition: c.to_string(),
            });
            Ok(())
        }
        other => Err(format!("constraint {other} cannot be converted")),
    }
}

fn set_key(table: &mut TableInfo, key: &[String]) -> Result<(), String> {
    let schema = Arc::make_mut(&mut table.schema);
    let mut positions = Vec::new();
    for k in key {
        let i = schema
            .index_of(k)
            .ok_or_else(|| format!("primary key column {k} is not a column of the table"))?;
        schema.columns[i].nullable = false;
        positions.push(i);
    }
    if !schema.primary_key.is_empty() && schema.primary_key != positions {
        return Err("a second primary key".into());
    }
    schema.primary_key = positions;
    Ok(())
}

fn foreign_key(
    table: &TableName,
    name: Option<String>,
    columns: Vec<String>,
    fk: &ForeignKeyConstraint,
) -> ForeignKey {
    let referenced_columns: Vec<String> = fk.referred_columns.iter().map(fold).collect();
    let mut definition = format!(
        "FOREIGN KEY ({}) REFERENCES {}",
        quoted(&columns),
        super::sql_name(&table_name(&fk.foreign_table))
    );
    if !referenced_columns.is_empty() {
        definition.push_str(&format!("({})", quoted(&referenced_columns)));
    }
    if let Some(a) = &fk.on_delete {
        definition.push_str(&format!(" ON DELETE {a}"));
    }
    if let Some(a) = &fk.on_update {
        definition.push_str(&format!(" ON UPDATE {a}"));
    }
    ForeignKey {
        name: Some(name.unwrap_or_else(|| format!("{}_{}_fkey", table.name, columns.join("_")))),
        columns,
        referenced_table: table_name(&fk.foreign_table),
        referenced_columns,
        definition: Some(definition),
    }
}

fn index_columns(cols: &[IndexColumn]) -> Result<Vec<String>, String> {
    cols.iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => Ok(fold(i)),
            other => Err(format!("key on expression {other} cannot be converted")),
        })
        .collect()
}

fn quoted(cols: &[String]) -> String {
    cols.iter()
        .map(|c| {
            match c
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                true => c.clone(),
                false => format!("\"{}\"", c.replace('"', "\"\"")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `RANGE (occurred_at)` from the parser's `RANGE(occurred_at)` call.
fn partition_key(by: &Expr) -> String {
    let s = by.to_string();
    match s.find('(') {
        Some(i) => format!("{} {}", s[..i].trim(), &s[i..]),
        None => s,
    }
}

/// Constraint names made unique as Postgres makes them (`t_check`, `t_check1`, …): two
/// unnamed CHECKs would otherwise share a name, and the second be lost.
fn unique_names(table: &mut TableInfo) {
    let mut seen = std::collections::BTreeSet::new();
    for c in &mut table.objects.constraints {
        let base = c.name.clone();
        let mut n = 0;
        while !seen.insert(c.name.clone()) {
            n += 1;
            c.name = format!("{base}{n}");
        }
    }
}

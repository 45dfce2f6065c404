//! Postgres DDL statements → migrate's tables: each `CREATE TABLE` becomes the
//! [`TableInfo`] Postgres discovery would report for it — columns in the data model's types
//! (through discovery's own mapping, [`types`]), keys, and the objects a Postgres target
//! recreates and a warehouse reports as not carried (identity, sequences behind `serial`,
//! CHECK and UNIQUE constraints, generated columns, partitioning, comments, indexes, the enum
//! and domain types columns use). A sink then creates it, and its `plan_objects` lists what
//! that target cannot carry — the per-table "dropped" report.
//!
//! Statements that are not tables are read for what tables need (`CREATE DOMAIN`, `CREATE
//! TYPE … AS ENUM`, `ALTER TABLE … ADD CONSTRAINT`, `COMMENT ON`, `CREATE INDEX`, partitions)
//! and listed as skipped otherwise, with what they were. A statement the parser cannot read
//! is an error naming its file and line, unless it is not a table definition and skipping is
//! allowed. A table that cannot be converted at all (an unknown column type, `INHERITS`,
//! `LIKE`, `AS SELECT`) is an error naming file, line, table and construct.

mod table;
pub mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;

use migrate_core::objects::{Constraint, ConstraintKind, Sequence, UserType, UserTypeKind};
use migrate_core::{Error, IndexDef, Result, TableInfo, TableName};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, CommentObject, Expr, Ident, ObjectName,
    SequenceOptions, Statement as Ast, TableConstraint, UserDefinedTypeRepresentation,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::split::Statement;
use types::UserDef;

/// How strict the reading is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// List a statement the parser cannot read as skipped instead of failing — never a
    /// `CREATE TABLE`.
    pub skip_unreadable: bool,
}

/// One converted table and where it was defined.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The table, as discovery would report it.
    pub info: TableInfo,
    /// Its file.
    pub file: PathBuf,
    /// The line of its `CREATE TABLE`.
    pub line: u64,
}

/// A statement not turned into a table, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `file:line:column`.
    pub at: String,
    /// What it is (`CREATE INDEX orders_placed_idx`).
    pub what: String,
    /// What became of it.
    pub why: String,
}

/// The tables of a set of files, in definition order, and every other statement.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// Tables in the order their `CREATE TABLE`s come.
    pub tables: Vec<TableDef>,
    /// Statements that define no table.
    pub skipped: Vec<Skipped>,
}

/// An unquoted name folded as Postgres folds it; a quoted one as written.
pub(crate) fn fold(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// `schema.table` of a name (`public` when it has none).
pub(crate) fn table_name(n: &ObjectName) -> TableName {
    let parts: Vec<String> = n.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
    match parts.as_slice() {
        [.., schema, table] => TableName::new(schema.clone(), table.clone()),
        [table] => TableName::new("public", table.clone()),
        [] => TableName::new("public", ""),
    }
}

/// `table` as a qualified name, each part quoted where Postgres would need it.
pub(crate) fn sql_name(table: &TableName) -> ObjectName {
    let part = |p: &str| {
        let plain = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit());
        match plain {
            true => Ident::new(p),
            false => Ident::with_quote('"', p),
        }
    };
    ObjectName::from(vec![
        part(table.schema.as_deref().unwrap_or("public")),
        part(&table.name),
    ])
}

/// Converts `statements` (every file's, in order).
pub fn convert(statements: &[Statement], options: &Options) -> Result<Converted> {
    let mut c = Converter::default();
    for st in statements {
        c.statement(st, options)?;
    }
    c.finish()
}

#[derive(Default)]
struct Converter {
    out: Converted,
    users: BTreeMap<String, UserDef>,
    user_types: BTreeMap<String, UserType>,
    /// Free-standing sequences (`CREATE SEQUENCE`), by name: created with the tables whose
    /// defaults draw from them.
    sequences: BTreeMap<String, Sequence>,
    /// Position in `out.tables` by name.
    by_name: BTreeMap<TableName, usize>,
}

impl Converter {
    fn skip(&mut self, st: &Statement, what: impl Into<String>, why: impl Into<String>) {
        self.out.skipped.push(Skipped {
            at: st.at(),
            what: what.into(),
            why: why.into(),
        });
    }

    fn statement(&mut self, st: &Statement, options: &Options) -> Result<()> {
        if st.text.starts_with('\\') {
            self.skip(st, first_words(&st.text), "a psql meta-command");
            return Ok(());
        }
        let parsed = match Parser::parse_sql(&PostgreSqlDialect {}, &st.text) {
            Ok(p) => p,
            Err(e) => {
                let why = located(st, &e.to_string());
                if options.skip_unreadable && !is_create_table(&st.text) {
                    self.skip(st, first_words(&st.text), format!("not read: {why}"));
                    return Ok(());
                }
                let hint = match is_create_table(&st.text) {
                    true => "",
                    false => " (not a table: allow skipping unreadable statements to go on)",
                };
                return Err(Error::validation(format!(
                    "{}: cannot read the statement: {why}{hint}",
                    st.at()
                )));
            }
        };
        for ast in parsed {
            self.one(st, ast)?;
        }
        Ok(())
    }

    fn one(&mut self, st: &Statement, ast: Ast) -> Result<()> {
        match ast {
            Ast::CreateTable(ct) => {
                if let Some(parent) = &ct.partition_of {
                    let parent = table_name(parent);
                    let name = table_name(&ct.name);
                    let bound = ct
                        .for_values
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    let Some(&i) = self.by_name.get(&parent) else {
                        return Err(Error::validation(format!(
                            "{}: table {name} is a partition of {parent}, which no earlier statement creates",
                            st.at()
                        )));
                    };
                    let parts = &mut self.out.tables[i].info.objects;
                    if let Some(p) = parts.partitioning.as_mut() {
                        p.partitions.push(migrate_core::objects::Partition {
                            name: name.clone(),
                            parent: parent.clone(),
                            bound,
                            key: ct.partition_by.as_ref().map(|k| k.to_string()),
                        });
                    }
                    self.skip(
                        st,
                        format!("CREATE TABLE {name}"),
                        format!("a partition of {parent}: its rows land in {parent}"),
                    );
                    return Ok(());
                }
                if ct.temporary {
                    self.skip(
                        st,
                        format!("CREATE TEMPORARY TABLE {}", table_name(&ct.name)),
                        "a temporary table is not part of the schema",
                    );
                    return Ok(());
                }
                let mut info = table::convert(&ct, &self.users, &self.user_types).map_err(|e| {
                    Error::validation(format!("{}: table {}: {e}", st.at(), table_name(&ct.name)))
                })?;
                // A default drawing from a sequence of its own (`nextval('invoice_seq')`).
                for c in info.schema.columns.clone() {
                    let Some(seq) = c.default.as_deref().and_then(nextval_of) else {
                        continue;
                    };
                    if let Some(s) = self.sequences.get(&seq) {
                        if !info.objects.sequences.iter().any(|x| x.name == s.name) {
                            info.objects.sequences.push(s.clone());
                        }
                    }
                }
                if self.by_name.contains_key(&info.name) {
                    return Err(Error::validation(format!(
                        "{}: table {} is created a second time",
                        st.at(),
                        info.name
                    )));
                }
                self.by_name
                    .insert(info.name.clone(), self.out.tables.len());
                self.out.tables.push(TableDef {
                    info,
                    file: st.file.clone(),
                    line: st.line,
                });
            }
            Ast::CreateType {
                name,
                representation,
            } => {
                let key = types::type_key(&name);
                let kind = match representation {
                    Some(UserDefinedTypeRepresentation::Enum { labels }) => {
                        self.users.insert(key.clone(), UserDef::Enum);
                        UserTypeKind::Enum {
                            labels: labels.iter().map(|l| l.value.clone()).collect(),
                        }
                    }
                    _ => {
                        self.skip(
                            st,
                            format!("CREATE TYPE {name}"),
                            "not an enum: a column of it cannot be converted",
                        );
                        return Ok(());
                    }
                };
                self.user_types.insert(
                    key.clone(),
                    UserType {
                        name: table_name(&name),
                        sql_name: key.clone(),
                        kind,
                        comment: None,
                    },
                );
                self.skip(
                    st,
                    format!("CREATE TYPE {name}"),
                    "read: its columns become text",
                );
            }
            Ast::CreateDomain(d) => {
                let key = types::type_key(&d.name);
                let base = types::map(&d.data_type, &self.users).map_err(|e| {
                    Error::validation(format!(
                        "{}: domain {}: {e} cannot be converted",
                        st.at(),
                        d.name
                    ))
                })?;
                let checks = d
                    .constraints
                    .iter()
                    .map(|c| match c {
                        TableConstraint::Check(ch) => Constraint {
                            name: ch
                                .name
                                .as_ref()
                                .map(fold)
                                .unwrap_or_else(|| format!("{key}_check")),
                            kind: ConstraintKind::Check,
                            columns: Vec::new(),
                            definition: format!("CHECK ({})", ch.expr),
                        },
                        other => Constraint {
                            name: format!("{key}_check"),
                            kind: ConstraintKind::Check,
                            columns: Vec::new(),
                            definition: other.to_string(),
                        },
                    })
                    .collect();
                self.users
                    .insert(key.clone(), UserDef::Domain(Box::new(d.data_type.clone())));
                self.user_types.insert(
                    key.clone(),
                    UserType {
                        name: table_name(&d.name),
                        sql_name: key.clone(),
                        kind: UserTypeKind::Domain {
                            base_sql: base.source_type.clone(),
                            base: base.data_type,
                            not_null: false,
                            default: d.default.as_ref().map(|e| e.to_string()),
                            checks,
                        },
                        comment: None,
                    },
                );
                self.skip(
                    st,
                    format!("CREATE DOMAIN {}", d.name),
                    format!("read: its columns become {}", base.source_type),
                );
            }
            Ast::CreateSequence {
                name,
                sequence_options,
                ..
            } => {
                let seq = sequence(&name, &sequence_options);
                let key = seq.name.name.clone();
                self.sequences.insert(key, seq);
                self.skip(
                    st,
                    format!("CREATE SEQUENCE {name}"),
                    "read: created with the tables whose defaults draw from it",
                );
            }
            Ast::AlterTable(alter) => {
                let name = table_name(&alter.name);
                for op in alter.operations {
                    self.alter(st, &name, op)?;
                }
            }
            Ast::Comment {
                object_type,
                object_name,
                comment,
                ..
            } => {
                let parts: Vec<String> = object_name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(fold)
                    .collect();
                let target = match object_type {
                    CommentObject::Table => Some((table_name(&object_name), None)),
                    CommentObject::Column if parts.len() >= 2 => {
                        let column = parts[parts.len() - 1].clone();
                        let table = match &parts[..parts.len() - 1] {
                            [.., s, t] => TableName::new(s.clone(), t.clone()),
                            [t] => TableName::new("public", t.clone()),
                            [] => TableName::new("public", ""),
                        };
                        Some((table, Some(column)))
                    }
                    _ => None,
                };
                match target.and_then(|(t, c)| self.by_name.get(&t).map(|i| (*i, c))) {
                    Some((i, column)) => {
                        let objects = &mut self.out.tables[i].info.objects;
                        match (column, comment) {
                            (None, c) => objects.comment = c,
                            (Some(col), Some(c)) => objects.column_comments.push((col, c)),
                            (Some(_), None) => {}
                        }
                    }
                    None => self.skip(
                        st,
                        format!("COMMENT ON {object_type} {object_name}"),
                        "not on a table or column the files create",
                    ),
                }
            }
            Ast::CreateIndex(ix) => {
                let table = table_name(&ix.table_name);
                let name = ix
                    .name
                    .as_ref()
                    .map(|n| table_name(n).name)
                    .unwrap_or_default();
                match self.by_name.get(&table) {
                    Some(&i) => {
                        let columns = ix
                            .columns
                            .iter()
                            .filter_map(|c| match &c.column.expr {
                                sqlparser::ast::Expr::Identifier(id) => Some(fold(id)),
                                _ => None,
                            })
                            .collect::<Vec<_>>();
                        let columns = match columns.len() == ix.columns.len() {
                            true => columns,
                            false => Vec::new(),
                        };
                        // Spelled with the table's schema: a target may run it with an
                        // empty search_path.
                        let mut qualified = ix.clone();
                        qualified.table_name = sql_name(&table);
                        self.out.tables[i].info.indexes.push(IndexDef {
                            name,
                            unique: ix.unique,
                            columns,
                            definition: Some(qualified.to_string()),
                        });
                    }
                    None => self.skip(
                        st,
                        format!("CREATE INDEX {name}"),
                        format!("on {table}, which the files do not create"),
                    ),
                }
            }
            Ast::Drop { names, .. }
                if names
                    .iter()
                    .any(|n| self.by_name.contains_key(&table_name(n))) =>
            {
                return Err(Error::validation(format!(
                    "{}: a DROP of a table the files create cannot be converted: remove both from the files",
                    st.at()
                )));
            }
            other => {
                let what = first_words(&other.to_string());
                self.skip(st, what, "not a table: nothing of it is created");
            }
        }
        Ok(())
    }

    fn alter(&mut self, st: &Statement, name: &TableName, op: AlterTableOperation) -> Result<()> {
        let Some(&i) = self.by_name.get(name) else {
            self.skip(
                st,
                format!("ALTER TABLE {name}"),
                "a table the files do not create",
            );
            return Ok(());
        };
        let info = &mut self.out.tables[i].info;
        let bad = |what: String| {
            Error::validation(format!(
                "{}: table {name}: {what} cannot be converted (the files would end with another table than the one created): write it into the CREATE TABLE",
                st.at()
            ))
        };
        match op {
            AlterTableOperation::AddConstraint { constraint, .. } => {
                table::add_constraint(info, &constraint)
                    .map_err(|e| Error::validation(format!("{}: table {name}: {e}", st.at())))?;
            }
            AlterTableOperation::OwnerTo { new_owner } => {
                self.skip(
                    st,
                    format!("ALTER TABLE {name} OWNER TO {new_owner}"),
                    "ownership is the target's to decide",
                );
            }
            // pg_dump's way of giving a serial column its default, and of (un)setting NOT NULL.
            AlterTableOperation::AlterColumn { column_name, op } => {
                let col = fold(&column_name);
                let schema = std::sync::Arc::make_mut(&mut info.schema);
                let Some(c) = schema.columns.iter_mut().find(|c| c.name == col) else {
                    return Err(bad(format!("ALTER COLUMN {col} (no such column)")));
                };
                match op {
                    AlterColumnOperation::SetDefault { value } => {
                        c.default = Some(value.to_string())
                    }
                    AlterColumnOperation::DropDefault => c.default = None,
                    AlterColumnOperation::SetNotNull => c.nullable = false,
                    AlterColumnOperation::DropNotNull => c.nullable = true,
                    other => return Err(bad(format!("ALTER COLUMN {col} {other}"))),
                }
                if let Some(seq) = c.default.as_deref().and_then(nextval_of) {
                    if let Some(sq) = self.sequences.get(&seq) {
                        if !info.objects.sequences.iter().any(|x| x.name == sq.name) {
                            info.objects.sequences.push(sq.clone());
                        }
                    }
                }
            }
            AlterTableOperation::AttachPartitionOf {
                partition,
                for_values,
            } => {
                let child = table_name(&partition);
                if let Some(p) = info.objects.partitioning.as_mut() {
                    p.partitions.push(migrate_core::objects::Partition {
                        name: child.clone(),
                        parent: name.clone(),
                        bound: for_values.to_string(),
                        key: None,
                    });
                }
                // The partition was created as a table of its own: it folds into its parent.
                if let Some(j) = self.by_name.remove(&child) {
                    self.out.tables.remove(j);
                    for v in self.by_name.values_mut() {
                        if *v > j {
                            *v -= 1;
                        }
                    }
                }
                self.skip(
                    st,
                    format!("ALTER TABLE {name} ATTACH PARTITION {child}"),
                    format!("{child} is a partition of {name}: its rows land in {name}"),
                );
            }
            op @ (AlterTableOperation::AddColumn { .. }
            | AlterTableOperation::DropColumn { .. }
            | AlterTableOperation::RenameColumn { .. }
            | AlterTableOperation::RenameTable { .. }) => {
                return Err(bad(first_words(&op.to_string()).to_string()));
            }
            other => {
                let what = format!("ALTER TABLE {name} {other}");
                self.skip(st, first_words(&what), "not carried by the conversion");
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Converted> {
        // A foreign key naming no columns references the parent's primary key.
        let keys: BTreeMap<TableName, Vec<String>> = self
            .out
            .tables
            .iter()
            .map(|t| {
                let key = t.info.primary_key().iter().map(|k| k.to_string()).collect();
                (t.info.name.clone(), key)
            })
            .collect();
        for t in &mut self.out.tables {
            for fk in &mut t.info.foreign_keys {
                if fk.referenced_columns.is_empty() {
                    if let Some(k) = keys.get(&fk.referenced_table) {
                        fk.referenced_columns = k.clone();
                    }
                }
            }
        }
        Ok(self.out)
    }
}

/// Whether `text` holds a `CREATE … TABLE` anywhere (a statement that failed to parse may
/// have swallowed one): such a statement is never skipped.
fn is_create_table(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_start_matches('\u{feff}').to_ascii_uppercase())
        .collect();
    words
        .iter()
        .enumerate()
        .any(|(i, w)| w == "CREATE" && words.iter().skip(i + 1).take(4).any(|x| x == "TABLE"))
}

/// The first words of a statement, for the report (`CREATE FUNCTION touch_updated_at`).
fn first_words(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(4).collect();
    let s = words.join(" ");
    match s.find('(') {
        Some(i) => s[..i].trim_end().to_string(),
        None => s,
    }
}

/// A parser message with its "at Line: N, Column: M" (relative to the statement) made the
/// file's line and column.
fn located(st: &Statement, message: &str) -> String {
    let message = message.trim_start_matches("sql parser error: ");
    let Some(at) = message.rfind(" at Line: ") else {
        return message.to_string();
    };
    let tail = &message[at + " at Line: ".len()..];
    let mut nums = tail.split(", Column: ");
    let (Some(l), Some(c)) = (nums.next(), nums.next()) else {
        return message.to_string();
    };
    let (Ok(l), Ok(c)) = (l.trim().parse::<u64>(), c.trim().parse::<u64>()) else {
        return message.to_string();
    };
    let line = st.line + l - 1;
    let column = if l == 1 { st.column + c - 1 } else { c };
    format!("{} (line {line}, column {column})", &message[..at])
}

/// The sequence `nextval('…')` in a default names (its last name part, folded).
fn nextval_of(default: &str) -> Option<String> {
    let rest = &default[default.find("nextval('")? + "nextval('".len()..];
    let name = &rest[..rest.find('\'')?];
    let last = name.rsplit('.').next().unwrap_or(name);
    Some(
        match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => last.to_lowercase(),
        },
    )
}

/// A `CREATE SEQUENCE`'s sequence, Postgres' defaults filled in.
fn sequence(name: &ObjectName, options: &[SequenceOptions]) -> Sequence {
    let number = |e: &Expr| e.to_string().replace(' ', "").parse::<i64>().ok();
    let mut s = Sequence {
        name: table_name(name),
        data_type: "bigint".into(),
        start: 1,
        increment: 1,
        min: 1,
        max: i64::MAX,
        cache: 1,
        cycle: false,
        owned_by: None,
        identity_of: None,
    };
    let mut start = None;
    for o in options {
        match o {
            SequenceOptions::DataType(t) => {
                if let Ok(m) = types::map(t, &BTreeMap::new()) {
                    s.max = match m.data_type {
                        migrate_core::DataType::Int16 => i64::from(i16::MAX),
                        migrate_core::DataType::Int32 => i64::from(i32::MAX),
                        _ => i64::MAX,
                    };
                    s.data_type = m.source_type;
                }
            }
            SequenceOptions::IncrementBy(e, _) => s.increment = number(e).unwrap_or(1),
            SequenceOptions::MinValue(Some(e)) => s.min = number(e).unwrap_or(1),
            SequenceOptions::MaxValue(Some(e)) => s.max = number(e).unwrap_or(s.max),
            SequenceOptions::StartWith(e, _) => start = number(e),
            SequenceOptions::Cache(e) => s.cache = number(e).unwrap_or(1),
            SequenceOptions::Cycle(c) => s.cycle = *c,
            _ => {}
        }
    }
    s.start = start.unwrap_or(s.min);
    s
}

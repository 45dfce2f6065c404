//! Schema objects beyond columns and keys — user types, sequences, constraints, generated
//! columns, partitions, comments, views — as discovery reads them, so that a sink can recreate
//! them (Postgres) or map them and say what it cannot carry (warehouses).
//!
//! Definitions are kept in the source's own SQL (`source_dialect` says which) for same-engine
//! targets, next to the structure a cross-engine mapping needs (an enum's labels, a domain's
//! base type, a sequence's owning column).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::{Column, DataType, TableName};

/// The objects that belong to one table (or that its columns use), beyond columns and keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableObjects {
    /// The engine whose SQL the definitions below (and the columns' `source_type`s and
    /// defaults) are written in (`"postgres"`); `None` when the source has no DDL of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dialect: Option<String>,
    /// User-defined types the columns use, dependencies first (a domain after the enum it is
    /// over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<UserType>,
    /// Sequences the columns draw from: owned by a column (`serial`), behind an identity
    /// column, or named in a default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<Sequence>,
    /// CHECK, UNIQUE and exclusion constraints (the primary and foreign keys live on
    /// [`crate::TableInfo`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Columns the target computes (never copied as data), with their place among the columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated: Vec<GeneratedColumn>,
    /// Identity columns: column name and kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<(String, Identity)>,
    /// How the table is partitioned, with its partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Partitioning>,
    /// The table's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Column comments: column name and comment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_comments: Vec<(String, String)>,
    /// Columns whose collation is not their type's default: column name and collation in the
    /// source's SQL (`pg_catalog."C"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collations: Vec<(String, String)>,
    /// Extensions the table needs: for its columns' types, or for the functions, operators
    /// and operator classes its defaults, constraints and indexes use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// User functions its defaults, generated columns, constraints and indexes call: created
    /// before the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Function>,
    /// Triggers, row-level security policies, grants and the owner: copied only when asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<ExtraObject>,
}

impl TableObjects {
    /// The user type a column's declared type names (`mood`, `mood[]`, a domain), if any.
    pub fn user_type_of(&self, column: &Column) -> Option<&UserType> {
        let native = column.source_type.as_deref()?;
        let bare = native.strip_suffix("[]").unwrap_or(native);
        self.types.iter().find(|t| t.sql_name == bare)
    }

    /// The identity of a column, if it is one.
    pub fn identity_of(&self, column: &str) -> Option<Identity> {
        self.identity
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, i)| *i)
    }

    /// Whether the table holds nothing beyond columns and keys.
    pub fn is_empty(&self) -> bool {
        *self
            == TableObjects {
                source_dialect: self.source_dialect.clone(),
                ..Default::default()
            }
    }
}

/// A user-defined type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserType {
    /// Qualified name.
    pub name: TableName,
    /// The name as column types spell it in the source's SQL (`mood`, `s2."Mood"`).
    pub sql_name: String,
    /// What it is.
    pub kind: UserTypeKind,
    /// Its comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The kinds of user-defined type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserTypeKind {
    /// An enumeration: a string from a fixed list, in sort order.
    Enum {
        /// The allowed values, in the type's order.
        labels: Vec<String>,
    },
    /// A base type with constraints.
    Domain {
        /// The base type in the source's SQL.
        base_sql: String,
        /// The base type in the data model.
        base: DataType,
        /// `NOT NULL` on the domain.
        not_null: bool,
        /// Default expression in the source's SQL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
        /// Its CHECK constraints.
        checks: Vec<Constraint>,
    },
    /// A composite (row) type: field names and types in the source's SQL.
    Composite {
        /// Fields in order.
        fields: Vec<(String, String)>,
    },
}

/// A user function a table's definition calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Qualified name (overloads share it).
    pub name: TableName,
    /// `CREATE OR REPLACE FUNCTION …` in the source's SQL.
    pub definition: String,
}

/// A sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Qualified name.
    pub name: TableName,
    /// `smallint`, `integer` or `bigint`.
    pub data_type: String,
    /// First value.
    pub start: i64,
    /// Step.
    pub increment: i64,
    /// Lowest value.
    pub min: i64,
    /// Highest value.
    pub max: i64,
    /// Values preallocated per session.
    pub cache: i64,
    /// Wraps around at the end.
    pub cycle: bool,
    /// The column that owns it (`serial`, identity), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// The identity column it is behind: created with the column, not on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_of: Option<String>,
}

/// Where a sequence stands: `nextval` returns `last_value + increment` when `is_called`,
/// else `last_value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceValue {
    /// The sequence.
    pub name: TableName,
    /// Its last value.
    pub last_value: i64,
    /// Whether `last_value` was handed out.
    pub is_called: bool,
}

/// An identity column's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
}

/// A table constraint other than the primary and foreign keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// Its name.
    pub name: String,
    /// What it checks.
    pub kind: ConstraintKind,
    /// The columns it covers (for UNIQUE; the columns named for others, where known).
    pub columns: Vec<String>,
    /// The definition in the source's SQL (`CHECK ((price >= (0)::numeric))`, `UNIQUE (sku)`).
    pub definition: String,
}

/// The kinds of [`Constraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// A row-level boolean condition.
    Check,
    /// Uniqueness of a column list.
    Unique,
    /// An exclusion constraint.
    Exclusion,
}

/// A column the target computes from others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedColumn {
    /// Its place among all the table's columns, 0-based (generated ones included).
    pub position: usize,
    /// The column (name, type, nullability).
    pub column: Column,
    /// The expression in the source's SQL.
    pub expression: String,
    /// Stored (computed on write) rather than virtual (computed on read, Postgres 18).
    #[serde(default = "yes")]
    pub stored: bool,
}

fn yes() -> bool {
    true
}

/// How a table is split into partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    /// The partition key in the source's SQL (`RANGE (at)`).
    pub key: String,
    /// Every partition, parents before their sub-partitions.
    pub partitions: Vec<Partition>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Its name.
    pub name: TableName,
    /// The table it is a partition of (the partitioned table or a sub-partitioned partition).
    pub parent: TableName,
    /// Its bound in the source's SQL (`FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`).
    pub bound: String,
    /// Its own partition key, when it is partitioned further.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A trigger, policy, grant or owner: behaviour and access rather than shape, so copied only
/// when the user asks (a trigger firing on the target, or a grant to a role of another
/// environment, is a decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (the grantee for a grant, the role for an owner).
    pub name: String,
    /// Statements that create it in the source's SQL, in order (a trigger's function first).
    pub statements: Vec<String>,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Qualified name.
    pub name: TableName,
    /// Materialized (its rows computed on the target after the data).
    pub materialized: bool,
    /// The `SELECT` in the source's SQL.
    pub definition: String,
    /// Tables and views it reads.
    pub depends_on: Vec<TableName>,
    /// Its comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Its options (`security_invoker=true`, `check_option=local`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Index definitions (materialized views).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<String>,
}

/// Every kind of schema object plans and reports name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// An extension.
    Extension,
    /// An enum type.
    Enum,
    /// A domain.
    Domain,
    /// A composite type.
    Composite,
    /// A function a table's definition calls.
    Function,
    /// A sequence.
    Sequence,
    /// A table.
    Table,
    /// A partition.
    Partition,
    /// A column default.
    Default,
    /// A generated column.
    GeneratedColumn,
    /// An identity column.
    Identity,
    /// The primary key.
    PrimaryKey,
    /// A foreign key.
    ForeignKey,
    /// A CHECK constraint.
    Check,
    /// A UNIQUE constraint.
    Unique,
    /// An exclusion constraint.
    Exclusion,
    /// A secondary index.
    Index,
    /// A comment.
    Comment,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A trigger (with its function).
    Trigger,
    /// A row-level security policy.
    Policy,
    /// A grant.
    Grant,
    /// The owner.
    Owner,
    /// A sequence's current value.
    SequenceValue,
}

impl ObjectKind {
    /// Created with the table, before its data (so left alone when the table exists): types,
    /// sequences, the table, partitions, defaults, identity and generated columns, comments.
    pub fn made_with_table(self) -> bool {
        matches!(
            self,
            ObjectKind::Extension
                | ObjectKind::Enum
                | ObjectKind::Domain
                | ObjectKind::Composite
                | ObjectKind::Function
                | ObjectKind::Sequence
                | ObjectKind::Table
                | ObjectKind::Partition
                | ObjectKind::Default
                | ObjectKind::GeneratedColumn
                | ObjectKind::Identity
                | ObjectKind::Comment
        )
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// What a sink does, or did, with one schema object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectOutcome {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (a column's objects: `table.column`).
    pub name: String,
    /// The table it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableName>,
    /// `None`: created (or to be created); otherwise why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_created: Option<String>,
}

impl ObjectOutcome {
    /// An object created (or to be).
    pub fn created(kind: ObjectKind, name: impl Into<String>, table: Option<&TableName>) -> Self {
        ObjectOutcome {
            kind,
            name: name.into(),
            table: table.cloned(),
            not_created: None,
        }
    }

    /// An object not created, and why.
    pub fn skipped(
        kind: ObjectKind,
        name: impl Into<String>,
        table: Option<&TableName>,
        reason: impl Into<String>,
    ) -> Self {
        ObjectOutcome {
            kind,
            name: name.into(),
            table: table.cloned(),
            not_created: Some(reason.into()),
        }
    }
}

impl fmt::Display for ObjectOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)?;
        match &self.not_created {
            None => Ok(()),
            Some(r) => write!(f, ": not created ({r})"),
        }
    }
}

/// Views a source found over a set of tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Views {
    /// Views that read only the tables (and each other), dependencies first.
    pub over_tables: Vec<View>,
    /// Views that read something else too: not created, with the reason.
    pub left_out: Vec<ObjectOutcome>,
}

impl View {
    /// The kind plans and reports name it by.
    pub fn kind(&self) -> ObjectKind {
        if self.materialized {
            ObjectKind::MaterializedView
        } else {
            ObjectKind::View
        }
    }

    /// Its outcome: created (`None`) or not, and why.
    pub fn outcome(&self, not_created: Option<&str>) -> ObjectOutcome {
        ObjectOutcome {
            kind: self.kind(),
            name: self.name.to_string(),
            table: None,
            not_created: not_created.map(str::to_string),
        }
    }
}

/// What a warehouse target (which declares a table's primary and foreign keys and keeps none of
/// its other objects) makes of `table`'s objects: the table and its keys created, everything
/// else skipped for `why`.
pub fn keys_only(table: &crate::TableInfo, why: &str) -> Vec<ObjectOutcome> {
    all_objects(table)
        .into_iter()
        .map(|(kind, name)| match kind {
            ObjectKind::Table | ObjectKind::PrimaryKey | ObjectKind::ForeignKey => {
                ObjectOutcome::created(kind, name, Some(&table.name))
            }
            _ => ObjectOutcome::skipped(kind, name, Some(&table.name), why),
        })
        .collect()
}

/// Every schema object of a table a sink may create, by kind and name: the table, its keys,
/// indexes and [`TableObjects`]. Column objects are named `table.column`.
pub fn all_objects(table: &crate::TableInfo) -> Vec<(ObjectKind, String)> {
    let o = &table.objects;
    let col = |c: &str| format!("{}.{c}", table.name);
    let mut out: Vec<(ObjectKind, String)> = Vec::new();
    out.extend(
        o.extensions
            .iter()
            .map(|e| (ObjectKind::Extension, e.clone())),
    );
    out.extend(o.types.iter().map(|t| {
        let kind = match t.kind {
            UserTypeKind::Enum { .. } => ObjectKind::Enum,
            UserTypeKind::Domain { .. } => ObjectKind::Domain,
            UserTypeKind::Composite { .. } => ObjectKind::Composite,
        };
        (kind, t.name.to_string())
    }));
    out.extend(
        o.functions
            .iter()
            .map(|f| (ObjectKind::Function, f.name.to_string())),
    );
    for s in o.sequences.iter().filter(|s| s.identity_of.is_none()) {
        out.push((ObjectKind::Sequence, s.name.to_string()));
    }
    out.push((ObjectKind::Table, table.name.to_string()));
    if let Some(p) = &o.partitioning {
        out.extend(
            p.partitions
                .iter()
                .map(|p| (ObjectKind::Partition, p.name.to_string())),
        );
    }
    for c in table.schema.columns.iter().filter(|c| c.default.is_some()) {
        out.push((ObjectKind::Default, col(&c.name)));
    }
    out.extend(
        o.identity
            .iter()
            .map(|(c, _)| (ObjectKind::Identity, col(c))),
    );
    out.extend(
        o.generated
            .iter()
            .map(|g| (ObjectKind::GeneratedColumn, col(&g.column.name))),
    );
    if !table.schema.primary_key.is_empty() {
        out.push((ObjectKind::PrimaryKey, table.name.to_string()));
    }
    for c in &o.constraints {
        let kind = match c.kind {
            ConstraintKind::Check => ObjectKind::Check,
            ConstraintKind::Unique => ObjectKind::Unique,
            ConstraintKind::Exclusion => ObjectKind::Exclusion,
        };
        out.push((kind, c.name.clone()));
    }
    for fk in &table.foreign_keys {
        let name = fk.name.clone().unwrap_or_else(|| fk.columns.join(", "));
        out.push((ObjectKind::ForeignKey, name));
    }
    out.extend(
        table
            .indexes
            .iter()
            .map(|i| (ObjectKind::Index, i.name.clone())),
    );
    if o.comment.is_some() {
        out.push((ObjectKind::Comment, table.name.to_string()));
    }
    out.extend(
        o.column_comments
            .iter()
            .map(|(c, _)| (ObjectKind::Comment, col(c))),
    );
    for s in &o.sequences {
        out.push((ObjectKind::SequenceValue, s.name.to_string()));
    }
    out.extend(o.extras.iter().map(|e| (e.kind, e.name.clone())));
    out
}

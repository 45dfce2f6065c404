//! Tables as discovery sees them and the planner consumes them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::objects::TableObjects;
use crate::value::Value;

/// A column type, rich enough to map Postgres, BigQuery and Snowflake types without loss.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "of", rename_all = "snake_case")]
pub enum DataType {
    /// Boolean.
    Bool,
    /// 16-bit integer (Postgres int2).
    Int16,
    /// 32-bit integer (Postgres int4).
    Int32,
    /// 64-bit integer (Postgres int8, BigQuery INT64).
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Exact decimal; `None` precision means unconstrained (Postgres bare NUMERIC).
    Decimal {
        /// Total significant digits, if constrained.
        precision: Option<u32>,
        /// Digits after the point, if constrained.
        scale: Option<u32>,
    },
    /// Text, with an optional maximum length in characters.
    Text {
        /// Maximum length in characters, if any.
        max_len: Option<u32>,
    },
    /// Raw bytes.
    Bytes,
    /// Calendar date.
    Date,
    /// Time of day, microsecond precision.
    Time,
    /// Timestamp without zone, microsecond precision.
    Timestamp,
    /// Timestamp with zone (an instant), microsecond precision.
    TimestampTz,
    /// Calendar interval.
    Interval,
    /// UUID.
    Uuid,
    /// JSON document.
    Json,
    /// One-dimensional array of the element type.
    Array(Box<DataType>),
}

impl DataType {
    /// Unbounded text.
    pub fn text() -> Self {
        DataType::Text { max_len: None }
    }

    /// Whether a value fits this type (NULL fits every type; nullability is the column's job).
    pub fn accepts(&self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => true,
            (DataType::Bool, Value::Bool(_)) => true,
            (DataType::Int16, Value::Int16(_)) => true,
            (DataType::Int32, Value::Int32(_)) => true,
            (DataType::Int64, Value::Int64(_)) => true,
            (DataType::Float32, Value::Float32(_)) => true,
            (DataType::Float64, Value::Float64(_)) => true,
            (DataType::Decimal { .. }, Value::Decimal(_)) => true,
            (DataType::Text { .. }, Value::Text(_)) => true,
            (DataType::Bytes, Value::Bytes(_)) => true,
            (DataType::Date, Value::Date(_)) => true,
            (DataType::Time, Value::Time(_)) => true,
            (DataType::Timestamp, Value::Timestamp(_)) => true,
            (DataType::TimestampTz, Value::TimestampTz(_)) => true,
            (DataType::Interval, Value::Interval(_)) => true,
            (DataType::Uuid, Value::Uuid(_)) => true,
            (DataType::Json, Value::Json(_)) => true,
            (DataType::Array(inner), Value::Array(items)) => items.iter().all(|i| inner.accepts(i)),
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int16 => f.write_str("int16"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::Decimal {
                precision: Some(p),
                scale,
            } => write!(f, "decimal({p},{})", scale.unwrap_or(0)),
            DataType::Decimal { .. } => f.write_str("decimal"),
            DataType::Text { max_len: Some(n) } => write!(f, "text({n})"),
            DataType::Text { max_len: None } => f.write_str("text"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamptz"),
            DataType::Interval => f.write_str("interval"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Json => f.write_str("json"),
            DataType::Array(inner) => write!(f, "{inner}[]"),
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    /// Column name as the source spells it.
    pub name: String,
    /// Column type.
    pub data_type: DataType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression in the source's SQL dialect, carried for same-engine targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The source's own type name (`jsonb`, `character(3)`), for same-engine targets to keep
    /// distinctions the data model does not make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

impl Column {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Column {
            name: name.into(),
            data_type,
            nullable: true,
            default: None,
            source_type: None,
        }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// The columns of a table and its primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// Columns in table order; rows hold values in this order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order; empty when the table has none.
    pub primary_key: Vec<usize>,
}

impl Schema {
    /// Builds a schema, checking that primary-key columns exist and are unique.
    pub fn new(columns: Vec<Column>, primary_key: &[&str]) -> Result<Self> {
        let mut pk = Vec::with_capacity(primary_key.len());
        for name in primary_key {
            let idx = columns
                .iter()
                .position(|c| c.name == *name)
                .ok_or_else(|| {
                    Error::schema(format!("primary key column {name:?} is not a column"))
                })?;
            if pk.contains(&idx) {
                return Err(Error::schema(format!(
                    "primary key column {name:?} listed twice"
                )));
            }
            pk.push(idx);
        }
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if !seen.insert(c.name.as_str()) {
                return Err(Error::schema(format!("column {:?} appears twice", c.name)));
            }
        }
        Ok(Schema {
            columns,
            primary_key: pk,
        })
    }

    /// Position of a column by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Names of the primary-key columns.
    pub fn primary_key_names(&self) -> Vec<&str> {
        self.primary_key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }

    /// The key of a row (values at the primary-key positions).
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.primary_key.iter().map(|&i| row[i].clone()).collect()
    }

    /// Checks a row's arity, types and nullability; the error names the column.
    pub fn check_row(&self, row: &[Value]) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(Error::validation(format!(
                "row has {} values, schema has {} columns",
                row.len(),
                self.columns.len()
            )));
        }
        for (c, v) in self.columns.iter().zip(row) {
            if v.is_null() && !c.nullable {
                return Err(Error::validation(format!(
                    "column {:?} is NOT NULL",
                    c.name
                )));
            }
            if !c.data_type.accepts(v) {
                return Err(Error::validation(format!(
                    "column {:?} of type {} cannot hold a {} value",
                    c.name,
                    c.data_type,
                    v.kind_name()
                )));
            }
        }
        Ok(())
    }
}

/// A qualified table name: `schema.table` in Postgres, `dataset.table` in BigQuery,
/// `schema.table` within a database in Snowflake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// Schema or dataset; `None` for the backend's default.
    pub schema: Option<String>,
    /// Table name.
    pub name: String,
}

impl TableName {
    /// A name in a schema.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }

    /// An unqualified name.
    pub fn bare(name: impl Into<String>) -> Self {
        TableName {
            schema: None,
            name: name.into(),
        }
    }

    /// The two columns checkpoint stores keep a name in: the qualified name (what operators read
    /// and group by) and the schema part, so names containing dots round-trip.
    pub fn to_columns(&self) -> (String, Option<String>) {
        (self.to_string(), self.schema.clone())
    }

    /// The inverse of [`TableName::to_columns`].
    pub fn from_columns(qualified: String, schema: Option<String>) -> Self {
        match schema {
            Some(s) => {
                let name = qualified
                    .strip_prefix(&format!("{s}."))
                    .map(str::to_string)
                    .unwrap_or(qualified);
                TableName {
                    schema: Some(s),
                    name,
                }
            }
            None => TableName::bare(qualified),
        }
    }

    /// Parses `schema.table` or `table`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((schema, name)) => TableName::new(schema, name),
            None => TableName::bare(s),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A foreign key: `columns` of this table reference `referenced_columns` of `referenced_table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name, if the source has one.
    pub name: Option<String>,
    /// Referencing columns (in this table).
    pub columns: Vec<String>,
    /// The parent table.
    pub referenced_table: TableName,
    /// Referenced columns in the parent.
    pub referenced_columns: Vec<String>,
    /// The whole definition in the source's SQL, with its actions (`ON DELETE CASCADE`),
    /// match type and deferrability, for same-engine targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

/// A secondary index (not the primary key), recreated after the data where the target can.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexDef {
    /// Index name.
    pub name: String,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// Indexed columns, in order (empty for expression indexes).
    pub columns: Vec<String>,
    /// The source's own definition (`CREATE INDEX …`), for same-engine targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

/// What discovery knows about a table: the planner's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Qualified name.
    pub name: TableName,
    /// Columns and primary key.
    pub schema: Arc<Schema>,
    /// Outgoing foreign keys (this table is the child).
    pub foreign_keys: Vec<ForeignKey>,
    /// Secondary indexes.
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    /// Row estimate, without a full scan.
    pub estimated_rows: u64,
    /// Size estimate in bytes.
    pub estimated_bytes: u64,
    /// Types, sequences, constraints, partitions, comments and the rest of the table's schema.
    #[serde(default, skip_serializing_if = "TableObjects::is_empty")]
    pub objects: TableObjects,
}

impl TableInfo {
    /// A table with no foreign keys and zero estimates.
    pub fn new(name: TableName, schema: Schema) -> Self {
        TableInfo {
            name,
            schema: Arc::new(schema),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            estimated_rows: 0,
            estimated_bytes: 0,
            objects: TableObjects::default(),
        }
    }

    /// Names of the primary-key columns.
    pub fn primary_key(&self) -> Vec<&str> {
        self.schema.primary_key_names()
    }

    /// Tables this one references, excluding itself (a self-reference is not a dependency).
    pub fn parents(&self) -> impl Iterator<Item = &TableName> {
        self.foreign_keys
            .iter()
            .map(|fk| &fk.referenced_table)
            .filter(move |t| **t != self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Schema {
        Schema::new(
            vec![
                Column::new("id", DataType::Int64).not_null(),
                Column::new("name", DataType::text()),
                Column::new("tags", DataType::Array(Box::new(DataType::text()))),
            ],
            &["id"],
        )
        .unwrap()
    }

    #[test]
    fn schema_errors_name_the_column() {
        let e = Schema::new(vec![Column::new("id", DataType::Int64)], &["key"]).unwrap_err();
        assert!(e.to_string().contains("\"key\""), "{e}");
        let s = people();
        let e = s
            .check_row(&[Value::Null, Value::Text("a".into()), Value::Null])
            .unwrap_err();
        assert!(e.to_string().contains("\"id\""), "{e}");
        let e = s
            .check_row(&[Value::Int64(1), Value::Int64(2), Value::Null])
            .unwrap_err();
        assert!(e.to_string().contains("\"name\""), "{e}");
        s.check_row(&[
            Value::Int64(1),
            Value::Null,
            Value::Array(vec![Value::Text("x".into())]),
        ])
        .unwrap();
    }

    #[test]
    fn self_reference_is_not_a_parent() {
        let mut t = TableInfo::new(TableName::new("public", "emp"), people());
        t.foreign_keys.push(ForeignKey {
            definition: None,
            name: None,
            columns: vec!["manager".into()],
            referenced_table: TableName::new("public", "emp"),
            referenced_columns: vec!["id".into()],
        });
        t.foreign_keys.push(ForeignKey {
            definition: None,
            name: None,
            columns: vec!["dept".into()],
            referenced_table: TableName::new("public", "dept"),
            referenced_columns: vec!["id".into()],
        });
        let parents: Vec<String> = t.parents().map(|p| p.to_string()).collect();
        assert_eq!(parents, vec!["public.dept"]);
        assert_eq!(TableName::parse("a.b"), TableName::new("a", "b"));
    }
}

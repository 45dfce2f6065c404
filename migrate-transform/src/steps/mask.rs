//! MASK: a PII column hashed with a key (equal inputs give equal outputs, so joins on it still
//! work, and without the key nobody can test a guess), redacted, or nulled.

use std::sync::Arc;

use migrate_core::{
    Batch, Column, DataType, Error, Result, Schema, Transform, TransformOutput, Value,
};

use crate::cast::to_text;
use crate::rows::{column, each_row, not_key, Outcome};

/// How a column is masked.
#[derive(Clone)]
pub enum MaskKind {
    /// HMAC-SHA256 of the value's text under a key, as 64 hex digits (NULL stays NULL).
    Hash(ring::hmac::Key),
    /// Replaced by this text (NULL stays NULL).
    Redact(String),
    /// NULL.
    Null,
}

impl std::fmt::Debug for MaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MaskKind::Hash(_) => "Hash(<key>)",
            MaskKind::Redact(_) => "Redact",
            MaskKind::Null => "Null",
        })
    }
}

impl MaskKind {
    /// A keyed hash whose key is the value of environment variable `var` (never written
    /// anywhere by this library; an unset or short key is refused, naming the variable).
    pub fn hash_from_env(var: &str) -> Result<Self> {
        let key = std::env::var(var)
            .map_err(|_| Error::config(format!("mask: the hash key variable {var} is not set")))?;
        if key.len() < 16 {
            return Err(Error::config(format!(
                "mask: the hash key in {var} is shorter than 16 bytes"
            )));
        }
        Ok(MaskKind::hash_with(key.as_bytes()))
    }

    /// A keyed hash under `key`.
    pub fn hash_with(key: &[u8]) -> Self {
        MaskKind::Hash(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key))
    }
}

/// A masked column.
#[derive(Debug, Clone)]
pub struct Mask {
    column: String,
    kind: MaskKind,
    name: String,
}

impl Mask {
    /// `column` masked as `kind` says.
    pub fn new(column: impl Into<String>, kind: MaskKind) -> Self {
        let column = column.into();
        Mask {
            name: format!("mask {column}"),
            column,
            kind,
        }
    }
}

impl Transform for Mask {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        let i = column(input, &self.name, &self.column)?;
        not_key(input, &self.name, i)?;
        let mut out = (**input).clone();
        let c = &input.columns[i];
        out.columns[i] = match self.kind {
            MaskKind::Null => Column::new(c.name.clone(), c.data_type.clone()),
            _ => Column {
                nullable: c.nullable,
                ..Column::new(c.name.clone(), DataType::text())
            },
        };
        Ok(Arc::new(out))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        let i = column(batch.schema(), &self.name, &self.column)?;
        let out = self.output_schema(batch.schema())?;
        Ok(each_row(batch, out, |row| {
            let mut r = row.clone();
            r[i] = match (&self.kind, &row[i]) {
                (_, Value::Null) | (MaskKind::Null, _) => Value::Null,
                (MaskKind::Redact(with), _) => Value::Text(with.clone()),
                (MaskKind::Hash(key), v) => {
                    let tag = ring::hmac::sign(key, to_text(v).as_bytes());
                    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                    Value::Text(hex)
                }
            };
            Outcome::Keep(r)
        }))
    }
}

//! The expression language of COMPUTE, FILTER and the row rules: SQL expressions, parsed by
//! sqlparser and type-checked against a table's columns before any row flows.
//!
//! What it holds: column names (quoted with `"…"` when they need it), literals (`42`, `1.5`,
//! `'text'`, `TRUE`, `NULL`), arithmetic (`+ - * / %`), comparisons (`= <> < <= > >=`),
//! `AND`/`OR`/`NOT`, `IS [NOT] NULL`, `[NOT] IN (…)`, `[NOT] BETWEEN`, `[NOT] LIKE`, `||`,
//! `CASE`, `CAST(x AS type)` and the functions `concat`, `lower`, `upper`, `trim`, `length`,
//! `coalesce`, `substring`, `regexp_replace`, `abs`. NULL propagates as in SQL (`concat` skips
//! NULLs, as Postgres's does); a condition that is NULL is not true. A value that breaks a rule
//! while evaluating (a division by zero, an overflow, a cast that fails) is the row's error,
//! never the run's — its message names the rule, not the value.

mod check;
mod eval;

use std::fmt;

use migrate_core::{DataType, Schema, Value};

pub(crate) use check::Node;
pub(crate) use eval::add_exact;

/// A checked expression, ready to evaluate against rows of the schema it was checked with.
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    node: Node,
    data_type: DataType,
}

/// Why an expression was refused: where in its text, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expression `{text}` at line {line}, column {column}: {message}")]
pub struct ExprError {
    /// The expression as written.
    pub text: String,
    /// Line in the expression (from 1).
    pub line: u64,
    /// Column in that line (from 1).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl Expr {
    /// Parses `text` and checks it against `schema`'s columns.
    pub fn parse(text: &str, schema: &Schema) -> Result<Expr, ExprError> {
        let (node, data_type) = check::compile(text, schema)?;
        Ok(Expr {
            text: text.to_string(),
            node,
            data_type,
        })
    }

    /// The type of the values it yields.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its value for `row` (a row of the schema it was checked with), or why the row breaks it.
    pub fn eval(&self, row: &[Value]) -> Result<Value, String> {
        eval::eval(&self.node, row)
    }

    /// Whether a condition holds for `row` (NULL does not).
    pub fn holds(&self, row: &[Value]) -> Result<bool, String> {
        Ok(matches!(self.eval(row)?, Value::Bool(true)))
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests;

//! Validation rules, run after the load against what the target holds (read back through a
//! [`Source`] over the target) and, where a rule compares, against the source:
//!
//! - ROW_COUNT: the target holds the rows the run wrote (and, for a table without
//!   transforms, as many as the source);
//! - COMPLETENESS: required columns are not NULL in any target row;
//! - ACCURACY: a per-row predicate of the expression language holds for every target row;
//! - INTEGRITY: no target row's foreign key names a parent row the target lacks (orphans);
//! - CONSISTENCY: an aggregate (count, sum, min, max) of a column is equal in source and
//!   target;
//! - CUSTOM: any [`ValidationRule`] of your own.
//!
//! Each has a [`Severity`]: a failed ERROR or CRITICAL rule fails the run, WARNING and INFO are
//! reported. A rule that could not run (a table the target lacks) is reported as not run, never
//! as passed. Findings name keys and columns, never values.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use migrate_core::checksum::canonical_text;
use migrate_core::value::KeyDisplay;
use migrate_core::{
    ChunkSpec, Error, Result, Row, Schema, Sink, Source, TableInfo, TableName, Value,
};
use serde::Serialize;

use crate::expr::{add_exact, Expr};

/// How much a failed rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Reported.
    Info,
    /// Reported.
    Warning,
    /// Fails the run.
    Error,
    /// Fails the run.
    Critical,
}

impl Severity {
    /// Whether a failed rule of this severity fails the run.
    pub fn fails_run(self) -> bool {
        self >= Severity::Error
    }

    /// Reads `info`, `warning`, `error`, `critical` (any case).
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        })
    }
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// The rule's name.
    pub rule: String,
    /// ROW_COUNT, COMPLETENESS, …
    pub kind: String,
    /// Its table, if it has one.
    pub table: Option<String>,
    /// Its severity.
    pub severity: Severity,
    /// `Some(true)` passed, `Some(false)` failed, `None` could not run (see `detail`).
    pub passed: Option<bool>,
    /// What was measured.
    pub detail: String,
    /// Keys of offending rows (at most 10).
    pub sample_keys: Vec<String>,
}

impl RuleOutcome {
    /// Whether this outcome fails the run: a failed ERROR or CRITICAL rule, or one of those
    /// that could not run.
    pub fn fails_run(&self) -> bool {
        self.severity.fails_run() && self.passed != Some(true)
    }
}

/// What a rule reads: the source, the target (its tables read back through `target`, named as
/// `sink` describes them), and the migrated tables as the source has them and as the target
/// was created (after transforms), with the rows the run wrote.
pub struct Sides<'a> {
    /// The source.
    pub source: &'a dyn Source,
    /// The target, read as a source.
    pub target: &'a dyn Source,
    /// The target's sink (to find each table's name there).
    pub sink: &'a dyn Sink,
    /// `(source table, target table, rows the run wrote, whether it has transforms)`.
    pub tables: Vec<(TableInfo, TableInfo, u64, bool)>,
}

impl Sides<'_> {
    fn find(&self, table: &TableName) -> Result<&(TableInfo, TableInfo, u64, bool)> {
        self.tables
            .iter()
            .find(|(s, ..)| &s.name == table || s.name.name == table.to_string())
            .ok_or_else(|| {
                Error::config(format!("rule: table {table} is not migrated by this run"))
            })
    }

    /// The target's table as the target describes it (its names; `None`: the target lacks
    /// it).
    async fn target_table(&self, want: &TableInfo) -> Result<Option<TableInfo>> {
        self.sink.describe(want).await
    }
}

/// `name`'s column in `schema`: exactly, else without case (warehouses fold names).
fn col(schema: &Schema, name: &str) -> Option<usize> {
    schema.index_of(name).or_else(|| {
        schema
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    })
}

/// Streams every row of `table` from `from` into `f`.
async fn each_row(
    from: &dyn Source,
    table: &TableInfo,
    mut f: impl FnMut(&Schema, &Row) -> Result<()>,
) -> Result<()> {
    let whole = ChunkSpec::whole_table(table.name.clone(), table.estimated_rows);
    let mut reader = from.read_chunk(table, &whole, 10_000).await?;
    let schema = reader.schema().clone();
    while let Some(b) = reader.next_batch().await? {
        for r in b.rows() {
            f(&schema, r)?;
        }
    }
    Ok(())
}

/// How many rows of `table` (read from `from`) are `bad`, and the keys of the first few.
async fn offending(
    from: &dyn Source,
    table: &TableInfo,
    bad: impl Fn(&Row) -> bool,
) -> Result<(u64, Vec<String>)> {
    let (mut n, mut keys) = (0u64, Vec::new());
    each_row(from, table, |s, r| {
        if bad(r) {
            n += 1;
            if keys.len() < SAMPLES {
                keys.push(KeyDisplay(&s.key_of(r)).to_string());
            }
        }
        Ok(())
    })
    .await?;
    Ok((n, keys))
}

/// A rule run after the load.
#[async_trait]
pub trait ValidationRule: Send + Sync {
    /// Its name in reports.
    fn name(&self) -> &str;
    /// ROW_COUNT, COMPLETENESS, INTEGRITY, CONSISTENCY, ACCURACY, CUSTOM.
    fn kind(&self) -> &str;
    /// How much a failure matters.
    fn severity(&self) -> Severity;
    /// The table it checks, if one.
    fn table(&self) -> Option<&TableName>;
    /// Checks; `Ok(Err(why))` when it could not run.
    async fn check(&self, sides: &Sides<'_>) -> Result<std::result::Result<Finding, String>>;
}

/// A finding: passed or not, what was measured, offending keys.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    /// Whether the rule holds.
    pub passed: bool,
    /// What was measured.
    pub detail: String,
    /// Keys of offending rows.
    pub sample_keys: Vec<String>,
}

/// Runs `rules`; one outcome each, in order (an error of the store or a backend stops).
pub async fn validate(
    rules: &[Box<dyn ValidationRule>],
    sides: &Sides<'_>,
) -> Result<Vec<RuleOutcome>> {
    let mut out = Vec::new();
    for r in rules {
        let found = r.check(sides).await?;
        let (passed, detail, sample_keys) = match found {
            Ok(f) => (Some(f.passed), f.detail, f.sample_keys),
            Err(why) => (None, format!("not run: {why}"), Vec::new()),
        };
        out.push(RuleOutcome {
            rule: r.name().to_string(),
            kind: r.kind().to_string(),
            table: r.table().map(ToString::to_string),
            severity: r.severity(),
            passed,
            detail,
            sample_keys,
        });
    }
    Ok(out)
}

/// The built-in rules.
#[derive(Debug, Clone)]
pub enum Check {
    /// The target holds the rows the run wrote.
    RowCount,
    /// These columns are never NULL in the target.
    Completeness(Vec<String>),
    /// This predicate holds for every target row.
    Accuracy(String),
    /// No target row's foreign key names a missing parent.
    Integrity,
    /// An aggregate of a column, equal in source and target.
    Consistency {
        /// count, sum, min or max.
        aggregate: Aggregate,
        /// The source's column.
        column: String,
        /// The target's column (default: the same name).
        target_column: Option<String>,
    },
}

/// An aggregate for CONSISTENCY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Non-NULL values.
    Count,
    /// Exact sum.
    Sum,
    /// Least value.
    Min,
    /// Greatest value.
    Max,
}

impl Aggregate {
    /// Reads `count`, `sum`, `min`, `max`.
    pub fn parse(s: &str) -> Option<Aggregate> {
        Some(match s.to_ascii_lowercase().as_str() {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            _ => return None,
        })
    }
}

/// A built-in rule on one table.
#[derive(Debug, Clone)]
pub struct TableRule {
    /// Its name.
    pub name: String,
    /// The table (as the source names it).
    pub table: TableName,
    /// What it checks.
    pub check: Check,
    /// How much a failure matters.
    pub severity: Severity,
}

const SAMPLES: usize = 10;

#[async_trait]
impl ValidationRule for TableRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        match self.check {
            Check::RowCount => "ROW_COUNT",
            Check::Completeness(_) => "COMPLETENESS",
            Check::Accuracy(_) => "ACCURACY",
            Check::Integrity => "INTEGRITY",
            Check::Consistency { .. } => "CONSISTENCY",
        }
    }

    fn severity(&self) -> Severity {
        self.severity
    }

    fn table(&self) -> Option<&TableName> {
        Some(&self.table)
    }

    async fn check(&self, sides: &Sides<'_>) -> Result<std::result::Result<Finding, String>> {
        let (src, want, written, transformed) = sides.find(&self.table)?;
        let Some(tgt) = sides.target_table(want).await? else {
            return Ok(Err(format!("the target has no table {}", want.name)));
        };
        Ok(Ok(match &self.check {
            Check::RowCount => {
                let mut n = 0u64;
                each_row(sides.target, &tgt, |_, _| {
                    n += 1;
                    Ok(())
                })
                .await?;
                let mut detail = format!("target {n} rows, the run wrote {written}");
                let mut passed = n == *written;
                if !transformed {
                    let mut m = 0u64;
                    each_row(sides.source, src, |_, _| {
                        m += 1;
                        Ok(())
                    })
                    .await?;
                    detail.push_str(&format!(", source {m}"));
                    passed &= n == m;
                }
                Finding {
                    passed,
                    detail,
                    sample_keys: Vec::new(),
                }
            }
            Check::Completeness(columns) => {
                let idx: Vec<usize> = columns
                    .iter()
                    .map(|c| {
                        col(&tgt.schema, c).ok_or_else(|| {
                            Error::config(format!(
                                "rule {}: the target table has no column `{c}`",
                                self.name
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                let (bad, keys) = offending(sides.target, &tgt, |r| {
                    idx.iter().any(|&i| r.get(i).is_none_or(Value::is_null))
                })
                .await?;
                Finding {
                    passed: bad == 0,
                    detail: format!("{bad} target rows with NULL in {}", columns.join(", ")),
                    sample_keys: keys,
                }
            }
            Check::Accuracy(predicate) => {
                let e = Expr::parse(predicate, &tgt.schema)
                    .map_err(|e| Error::config(format!("rule {}: {e}", self.name)))?;
                let (bad, keys) =
                    offending(sides.target, &tgt, |r| !e.holds(r).unwrap_or(false)).await?;
                Finding {
                    passed: bad == 0,
                    detail: format!("{bad} target rows for which `{predicate}` does not hold"),
                    sample_keys: keys,
                }
            }
            Check::Integrity => match integrity(sides, want, &tgt).await? {
                Ok(f) => f,
                Err(why) => return Ok(Err(why)),
            },
            Check::Consistency {
                aggregate,
                column,
                target_column,
            } => {
                let tcol = target_column.as_deref().unwrap_or(column);
                let s = aggregate_of(sides.source, src, column, *aggregate).await?;
                let t = aggregate_of(sides.target, &tgt, tcol, *aggregate).await?;
                let same = match (&s, &t) {
                    (Value::Null, Value::Null) => true,
                    (a, b) if a.is_null() || b.is_null() => false,
                    (a, b) => {
                        canonical_text(&crate::cast::cast(a, &dec()).unwrap_or(a.clone()))
                            == canonical_text(&crate::cast::cast(b, &dec()).unwrap_or(b.clone()))
                    }
                };
                Finding {
                    passed: same,
                    detail: format!(
                        "{aggregate:?}({column}) {} in the source and the target",
                        if same { "equal" } else { "differs" }
                    )
                    .to_lowercase(),
                    sample_keys: Vec::new(),
                }
            }
        }))
    }
}

fn dec() -> migrate_core::DataType {
    migrate_core::DataType::Decimal {
        precision: None,
        scale: None,
    }
}

/// An aggregate of `column` over every row of `table` read from `from`.
async fn aggregate_of(
    from: &dyn Source,
    table: &TableInfo,
    column: &str,
    agg: Aggregate,
) -> Result<Value> {
    let i = col(&table.schema, column).ok_or_else(|| {
        Error::config(format!(
            "rule: table {} has no column `{column}`",
            table.name
        ))
    })?;
    let mut acc = Value::Null;
    let mut count = 0i64;
    each_row(from, table, |_, r| {
        let v = &r[i];
        if v.is_null() {
            return Ok(());
        }
        count += 1;
        acc = match (agg, &acc) {
            (Aggregate::Count, _) => Value::Null,
            (_, Value::Null) => v.clone(),
            (Aggregate::Sum, a) => add_exact(a, v)
                .map_err(|e| Error::validation(format!("rule: sum of {column}: {e}")))?,
            (Aggregate::Min, a) if v.cmp_key(a).is_lt() => v.clone(),
            (Aggregate::Max, a) if v.cmp_key(a).is_gt() => v.clone(),
            (_, a) => a.clone(),
        };
        Ok(())
    })
    .await?;
    Ok(match agg {
        Aggregate::Count => Value::Int64(count),
        _ => acc,
    })
}

/// Orphans: child rows whose foreign key (all columns non-NULL) names no parent row.
async fn integrity(
    sides: &Sides<'_>,
    want: &TableInfo,
    tgt: &TableInfo,
) -> Result<std::result::Result<Finding, String>> {
    if want.foreign_keys.is_empty() {
        return Ok(Err(format!("table {} has no foreign keys", want.name)));
    }
    let (mut orphans, mut keys, mut checked, mut skipped) =
        (0u64, Vec::new(), Vec::new(), Vec::new());
    for fk in &want.foreign_keys {
        let Ok((_, parent, ..)) = sides.find(&fk.referenced_table) else {
            skipped.push(format!("{} (parent not migrated)", fk.referenced_table));
            continue;
        };
        let Some(parent_tgt) = sides.target_table(parent).await? else {
            skipped.push(format!(
                "{} (parent missing in the target)",
                fk.referenced_table
            ));
            continue;
        };
        let pcols: Vec<usize> = fk
            .referenced_columns
            .iter()
            .filter_map(|c| col(&parent_tgt.schema, c))
            .collect();
        let ccols: Vec<usize> = fk
            .columns
            .iter()
            .filter_map(|c| col(&tgt.schema, c))
            .collect();
        if pcols.len() != fk.referenced_columns.len() || ccols.len() != fk.columns.len() {
            skipped.push(format!(
                "{} (columns renamed by transforms)",
                fk.referenced_table
            ));
            continue;
        }
        let text = |r: &Row, cols: &[usize]| {
            cols.iter()
                .map(|&i| canonical_text(&r[i]))
                .collect::<Vec<_>>()
                .join("\u{1f}")
        };
        let mut parents = HashSet::new();
        each_row(sides.target, &parent_tgt, |_, r| {
            parents.insert(text(r, &pcols));
            Ok(())
        })
        .await?;
        each_row(sides.target, tgt, |s, r| {
            if ccols.iter().all(|&i| !r[i].is_null()) && !parents.contains(&text(r, &ccols)) {
                orphans += 1;
                if keys.len() < SAMPLES {
                    keys.push(KeyDisplay(&s.key_of(r)).to_string());
                }
            }
            Ok(())
        })
        .await?;
        checked.push(fk.referenced_table.to_string());
    }
    if checked.is_empty() {
        return Ok(Err(format!(
            "no foreign key could be checked: {}",
            skipped.join(", ")
        )));
    }
    let mut detail = format!(
        "{orphans} orphaned rows; foreign keys to {} checked",
        checked.join(", ")
    );
    if !skipped.is_empty() {
        detail.push_str(&format!("; not checked: {}", skipped.join(", ")));
    }
    Ok(Ok(Finding {
        passed: orphans == 0,
        detail,
        sample_keys: keys,
    }))
}

//! A table's transforms from the configuration — `[[transform."schema.table"]]` steps in order,
//! `[[mapping."schema.table"]]` column mappings, `[rejects]` limits — read and checked as far
//! as the file alone allows (kinds, keys, types, policies) when it is loaded, and against the
//! table's columns when the run starts, before anything is written. Every error names the
//! file, the key and its line.

use std::collections::BTreeMap;
use std::sync::Arc;

use migrate_core::executor::RejectLimits;
use migrate_core::{
    Batch, Column, DataType, Error, Result, Schema, Source, TableFilter, TableName, Transform,
    TransformOutput, Value,
};
use migrate_transform::cast::parse_type;
use migrate_transform::{
    Chain, ColumnMapping, Compute, Convert, Filter, Lookup, Map, Mappings, Mask, MaskKind, OnError,
    OnMiss, Reference,
};
use serde::Deserialize;

/// `[rejects]` and `[rejects.tables."schema.table"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectsSection {
    stop_on_first_error: Option<bool>,
    max_rows: Option<u64>,
    max_ratio: Option<f64>,
    keep_values: Option<bool>,
    #[serde(default)]
    tables: BTreeMap<String, LimitsSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    stop_on_first_error: Option<bool>,
    max_rows: Option<u64>,
    max_ratio: Option<f64>,
}

impl LimitsSection {
    fn limits(&self) -> std::result::Result<RejectLimits, String> {
        if self.stop_on_first_error == Some(true) && self.max_rows.is_some() {
            return Err("give stop_on_first_error or max_rows, not both".into());
        }
        if let Some(r) = self.max_ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("max_ratio {r} is not between 0 and 1"));
            }
        }
        Ok(RejectLimits {
            max_rows: match self.stop_on_first_error {
                Some(true) => Some(0),
                _ => self.max_rows,
            },
            max_ratio: self.max_ratio,
        })
    }
}

/// The `[rejects]` section as the executor's settings: whether values are kept, and the limits
/// by table (`*` for every table not named).
pub(crate) fn rejects(
    r: &RejectsSection,
    bad: &dyn Fn(&str, String) -> Error,
) -> Result<(bool, BTreeMap<String, RejectLimits>)> {
    let mut out = BTreeMap::new();
    let all = LimitsSection {
        stop_on_first_error: r.stop_on_first_error,
        max_rows: r.max_rows,
        max_ratio: r.max_ratio,
    };
    let all = all.limits().map_err(|e| bad("rejects", e))?;
    if all != RejectLimits::default() {
        out.insert("*".to_string(), all);
    }
    for (t, l) in &r.tables {
        let l = l
            .limits()
            .map_err(|e| bad(&format!("rejects.tables.\"{t}\""), e))?;
        out.insert(t.clone(), l);
    }
    Ok((r.keep_values.unwrap_or(false), out))
}

/// One step as written, with where it was written (`file: line N: transform."t"[i]`).
#[derive(Debug, Clone)]
pub struct StepSpec {
    at: String,
    step: Step,
}

#[derive(Debug, Clone)]
enum Step {
    Map {
        select: Option<Vec<String>>,
        rename: Vec<(String, String)>,
    },
    Convert {
        column: String,
        to: DataType,
        on_error: OnError,
    },
    Compute {
        column: String,
        expr: String,
        data_type: Option<DataType>,
    },
    Filter(String),
    Lookup {
        on: Vec<String>,
        adds: Vec<Column>,
        from: RefSource,
        on_miss: OnMiss,
    },
    Mask {
        column: String,
        how: MaskHow,
    },
    Mappings(Vec<ColumnMapping>),
}

/// Where a lookup's reference data comes from.
#[derive(Debug, Clone)]
enum RefSource {
    Inline(Vec<(Vec<Value>, Vec<Value>)>),
    Table {
        table: TableName,
        key: Vec<String>,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone)]
enum MaskHow {
    Hash(String),
    Redact(String),
    Null,
}

/// Reads one `[[transform."t"]]` entry (or, with `mapping`, the table's mappings).
struct Reader<'a> {
    table: &'a toml::Table,
    at: String,
    used: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn err(&self, key: &str, why: impl std::fmt::Display) -> Error {
        Error::config(format!("{}.{key}: {why}", self.at))
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        self.used.push(key);
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(key, format!("{other} is not a string"))),
        }
    }

    fn required(&mut self, key: &'static str) -> Result<String> {
        self.string(key)?
            .ok_or_else(|| self.err(key, "missing (this kind of step needs it)"))
    }

    fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        self.used.push(key);
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(key, format!("{other} is not a string"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.err(key, format!("{other} is not a list of strings"))),
        }
    }

    fn data_type(&mut self, key: &'static str) -> Result<Option<DataType>> {
        match self.string(key)? {
            None => Ok(None),
            Some(t) => parse_type(&t)
                .map(Some)
                .ok_or_else(|| self.err(key, format!("{t:?} is not a type"))),
        }
    }

    fn table_of_strings(&mut self, key: &'static str) -> Result<Vec<(String, String)>> {
        self.used.push(key);
        match self.table.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(self.err(key, format!("{k} = {other} is not a string"))),
                })
                .collect(),
            Some(other) => Err(self.err(key, format!("{other} is not a table"))),
        }
    }

    /// Refuses keys this kind of step does not read.
    fn done(self) -> Result<()> {
        for k in self.table.keys() {
            if k != "kind" && !self.used.contains(&k.as_str()) {
                return Err(self.err(k, "not a key of this kind of step"));
            }
        }
        Ok(())
    }
}

/// A TOML value as a literal.
fn literal(v: &toml::Value) -> Option<Value> {
    Some(match v {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Int64(*i),
        toml::Value::Float(f) => Value::Float64(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        _ => return None,
    })
}

fn policy<T>(r: &mut Reader<'_>, key: &'static str, default: T, names: &[(&str, T)]) -> Result<T>
where
    T: Clone,
{
    match r.string(key)? {
        None => Ok(default),
        Some(s) => names
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                r.err(key, format!("{s:?} is not one of {}", all.join(", ")))
            }),
    }
}

/// Reads `[[transform."t"]]` step `t` (at `at`).
pub(crate) fn step(t: &toml::Table, at: String) -> Result<StepSpec> {
    let mut r = Reader {
        table: t,
        at: at.clone(),
        used: Vec::new(),
    };
    let kind = r.required("kind")?;
    let step = match kind.as_str() {
        "map" => {
            let select = r.strings("select")?;
            let rename = r.table_of_strings("rename")?;
            if let Some(sel) = &select {
                if let Some((old, _)) = rename.iter().find(|(old, _)| !sel.contains(old)) {
                    return Err(r.err(
                        "rename",
                        format!("`{old}` is not among select: it would be dropped, not renamed"),
                    ));
                }
            }
            Step::Map { select, rename }
        }
        "convert" => Step::Convert {
            column: r.required("column")?,
            to: r
                .data_type("to")?
                .ok_or_else(|| r.err("to", "missing (the type to convert to)"))?,
            on_error: policy(
                &mut r,
                "on_error",
                OnError::Reject,
                &[
                    ("reject", OnError::Reject),
                    ("null", OnError::Null),
                    ("fail", OnError::Fail),
                ],
            )?,
        },
        "compute" => Step::Compute {
            column: r.required("column")?,
            expr: r.required("expr")?,
            data_type: r.data_type("type")?,
        },
        "filter" => Step::Filter(r.required("condition")?),
        "lookup" => {
            let on = r
                .strings("on")?
                .ok_or_else(|| r.err("on", "missing (the row's columns to match)"))?;
            let adds = r
                .strings("add")?
                .ok_or_else(|| r.err("add", "missing (the names of the columns added)"))?;
            let types = r.strings("types")?;
            let adds: Vec<Column> = match types {
                None => adds
                    .into_iter()
                    .map(|a| Column::new(a, DataType::text()))
                    .collect(),
                Some(ts) if ts.len() == adds.len() => adds
                    .into_iter()
                    .zip(ts)
                    .map(|(a, t)| {
                        parse_type(&t)
                            .map(|t| Column::new(a, t))
                            .ok_or_else(|| r.err("types", format!("{t:?} is not a type")))
                    })
                    .collect::<Result<_>>()?,
                Some(_) => return Err(r.err("types", "one type per added column")),
            };
            let from = match (r.string("from")?, r.table.get("data")) {
                (Some(table), None) => RefSource::Table {
                    table: TableName::parse(&table),
                    key: r
                        .strings("key")?
                        .ok_or_else(|| r.err("key", "missing (the reference table's key columns)"))?,
                    values: r.strings("values")?.ok_or_else(|| {
                        r.err("values", "missing (the reference table's columns to add)")
                    })?,
                },
                (None, Some(toml::Value::Table(d))) => {
                    r.used.push("data");
                    if on.len() != 1 || adds.len() != 1 {
                        return Err(r.err(
                            "data",
                            "inline data maps one column to one column; use from = \"schema.table\" for more",
                        ));
                    }
                    let pairs = d
                        .iter()
                        .map(|(k, v)| {
                            literal(v)
                                .map(|v| (vec![Value::Text(k.clone())], vec![v]))
                                .ok_or_else(|| r.err("data", format!("{k}: not a plain value")))
                        })
                        .collect::<Result<_>>()?;
                    RefSource::Inline(pairs)
                }
                _ => {
                    return Err(r.err(
                        "from",
                        "give either from = \"schema.table\" (with key and values) or data = { … }",
                    ))
                }
            };
            match &from {
                RefSource::Table { key, .. } if key.len() != on.len() => {
                    return Err(r.err("key", format!("{} key columns for {} `on` columns", key.len(), on.len())))
                }
                RefSource::Table { values, .. } if values.len() != adds.len() => {
                    return Err(r.err("values", format!("{} values for {} added columns", values.len(), adds.len())))
                }
                _ => {}
            }
            r.used.push("default");
            let on_miss_text = r.string("on_miss")?;
            if r.table.contains_key("default") && on_miss_text.as_deref() != Some("default") {
                return Err(r.err("default", "is used only with on_miss = \"default\""));
            }
            let on_miss = match on_miss_text.as_deref() {
                None | Some("reject") => OnMiss::Reject,
                Some("null") => OnMiss::Null,
                Some("default") => match r.table.get("default") {
                    Some(toml::Value::Array(d)) => OnMiss::Default(
                        d.iter()
                            .map(|v| literal(v).ok_or_else(|| r.err("default", "not a plain value")))
                            .collect::<Result<_>>()?,
                    ),
                    _ => return Err(r.err("default", "on_miss = \"default\" needs default = [ … ]")),
                },
                Some(other) => {
                    return Err(r.err(
                        "on_miss",
                        format!("{other:?} is not one of reject, null, default"),
                    ))
                }
            };
            Step::Lookup {
                on,
                adds,
                from,
                on_miss,
            }
        }
        "mask" => {
            let column = r.required("column")?;
            let how = match r.required("how")?.as_str() {
                "hash" => MaskHow::Hash(r.string("key_env")?.unwrap_or_else(|| "MIGRATE_MASK_KEY".into())),
                "redact" => MaskHow::Redact(r.string("with")?.unwrap_or_else(|| "***".into())),
                "null" => MaskHow::Null,
                other => {
                    return Err(r.err("how", format!("{other:?} is not one of hash, redact, null")))
                }
            };
            if let MaskHow::Hash(var) = &how {
                // Checked now: a missing key would otherwise surface only when the run starts.
                MaskKind::hash_from_env(var).map_err(|e| r.err("key_env", e.message()))?;
            }
            Step::Mask { column, how }
        }
        "aggregate" => {
            return Err(r.err(
                "kind",
                "aggregate is not a row transform: chunks are copied row by row and rewritten by key range; aggregate in the target after the load",
            ))
        }
        other => {
            return Err(r.err(
                "kind",
                format!("{other:?} is not one of map, convert, compute, filter, lookup, mask"),
            ))
        }
    };
    r.done()?;
    Ok(StepSpec { at, step })
}

/// Reads a table's `[[mapping."t"]]` entries as one step.
pub(crate) fn mappings(entries: &[(toml::Table, String)], at: String) -> Result<StepSpec> {
    let mut out = Vec::new();
    for (t, at) in entries {
        let mut r = Reader {
            table: t,
            at: at.clone(),
            used: vec!["required", "default"],
        };
        let required = match t.get("required") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => return Err(r.err("required", "not true or false")),
        };
        let default = match t.get("default") {
            None => None,
            Some(v) => Some(literal(v).ok_or_else(|| r.err("default", "not a plain value"))?),
        };
        let m = ColumnMapping {
            source: r.string("source")?,
            expr: r.string("expr")?,
            target: r.required("target")?,
            data_type: r.data_type("type")?,
            required,
            default,
        };
        if m.source.is_some() == m.expr.is_some() {
            return Err(r.err("source", "give either source or expr"));
        }
        r.done()?;
        out.push(m);
    }
    Ok(StepSpec {
        at,
        step: Step::Mappings(out),
    })
}

/// Builds a table's steps (reading reference tables from `source` once) as one chain.
pub async fn chain(source: &dyn Source, steps: &[StepSpec]) -> Result<Chain> {
    let mut chain = Chain::new();
    for s in steps {
        let t: Arc<dyn Transform> = match &s.step {
            Step::Map { select, rename } => match select {
                Some(cols) => {
                    let cols: Vec<(String, String)> = cols
                        .iter()
                        .map(|c| {
                            let to = rename
                                .iter()
                                .find(|(old, _)| old == c)
                                .map_or_else(|| c.clone(), |(_, new)| new.clone());
                            (c.clone(), to)
                        })
                        .collect();
                    Arc::new(Map::columns(cols))
                }
                None => Arc::new(Map::rename(rename.clone())),
            },
            Step::Convert {
                column,
                to,
                on_error,
            } => Arc::new(Convert::new(column.clone(), to.clone(), *on_error)),
            Step::Compute {
                column,
                expr,
                data_type,
            } => Arc::new(Compute::expr(
                column.clone(),
                expr.clone(),
                data_type.clone(),
            )),
            Step::Filter(c) => Arc::new(Filter::new(c.clone())),
            Step::Lookup {
                on,
                adds,
                from,
                on_miss,
            } => {
                let data = match from {
                    RefSource::Inline(pairs) => Reference::from_pairs(pairs.clone()),
                    RefSource::Table { table, key, values } => {
                        let filter = TableFilter {
                            include: vec![table.to_string()],
                            exclude: Vec::new(),
                            allow_unmatched: true,
                        };
                        let info = source
                            .discover(&filter)
                            .await?
                            .into_iter()
                            .find(|t| &t.name == table)
                            .ok_or_else(|| {
                                Error::config(format!(
                                    "{}.from: the source has no table {table}",
                                    s.at
                                ))
                            })?;
                        let key: Vec<&str> = key.iter().map(String::as_str).collect();
                        let values: Vec<&str> = values.iter().map(String::as_str).collect();
                        Reference::from_source(source, &info, &key, &values)
                            .await
                            .map_err(|e| Error::config(format!("{}: {}", s.at, e.message())))?
                    }
                };
                Arc::new(Lookup::new(
                    on.clone(),
                    adds.clone(),
                    Arc::new(data),
                    on_miss.clone(),
                ))
            }
            Step::Mask { column, how } => {
                let kind = match how {
                    MaskHow::Hash(var) => MaskKind::hash_from_env(var)?,
                    MaskHow::Redact(with) => MaskKind::Redact(with.clone()),
                    MaskHow::Null => MaskKind::Null,
                };
                Arc::new(Mask::new(column.clone(), kind))
            }
            Step::Mappings(m) => Arc::new(Mappings::new(m.clone())),
        };
        chain.push(Arc::new(Located {
            inner: t,
            at: s.at.clone(),
        }));
    }
    Ok(chain)
}

/// A step that names where it was configured in the errors it gives before the run.
struct Located {
    inner: Arc<dyn Transform>,
    at: String,
}

impl Transform for Located {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        self.inner
            .output_schema(input)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", self.at, e.message())))
    }

    fn apply(&self, batch: Batch) -> Result<TransformOutput> {
        self.inner.apply(batch)
    }
}

/// One `[[rule]]` entry, checked as far as the file allows.
pub(crate) fn rule(t: &toml::Table, at: String) -> Result<migrate_transform::rules::TableRule> {
    use migrate_transform::rules::{Aggregate, Check, Severity, TableRule};
    let mut r = Reader {
        table: t,
        at,
        used: Vec::new(),
    };
    let kind = r.required("kind")?.to_ascii_uppercase();
    let table = TableName::parse(&r.required("table")?);
    let severity = match r.string("severity")? {
        None => Severity::Error,
        Some(s) => Severity::parse(&s).ok_or_else(|| {
            r.err(
                "severity",
                format!("{s:?} is not one of info, warning, error, critical"),
            )
        })?,
    };
    let check = match kind.as_str() {
        "ROW_COUNT" => Check::RowCount,
        "COMPLETENESS" => Check::Completeness(
            r.strings("columns")?
                .ok_or_else(|| r.err("columns", "missing (the columns that must not be NULL)"))?,
        ),
        "ACCURACY" => Check::Accuracy(r.required("predicate")?),
        "INTEGRITY" => Check::Integrity,
        "CONSISTENCY" => {
            let agg = r.required("aggregate")?;
            Check::Consistency {
                aggregate: Aggregate::parse(&agg).ok_or_else(|| {
                    r.err("aggregate", format!("{agg:?} is not one of count, sum, min, max"))
                })?,
                column: r.required("column")?,
                target_column: r.string("target_column")?,
            }
        }
        "CUSTOM" => {
            return Err(r.err(
                "kind",
                "CUSTOM rules are Rust code (migrate_transform::rules::ValidationRule), not configuration",
            ))
        }
        other => {
            return Err(r.err(
                "kind",
                format!("{other:?} is not one of row_count, completeness, accuracy, integrity, consistency"),
            ))
        }
    };
    let name = r
        .string("name")?
        .unwrap_or_else(|| format!("{} {table}", kind.to_ascii_lowercase()));
    r.done()?;
    Ok(TableRule {
        name,
        table,
        check,
        severity,
    })
}

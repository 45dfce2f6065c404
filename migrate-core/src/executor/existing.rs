//! Rows already in the target: what the run will do to each table that holds some before the
//! run first writes it, and the refusal, before anything is written, when the configuration
//! does not say (`prepare.existing_rows`, default `fail`).

use std::collections::{BTreeMap, BTreeSet};

use super::config::{ExecutorConfig, Mode};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{TableInfo, TableName};
use crate::sink::{ExistingRows, Preflight, PrepareMode, Prepared, Sink};

/// Which target tables hold rows this migration wrote, and so what the run may do to them
/// without being told: a table an earlier run created, found empty, or replaced holds only the
/// migration's rows, and is replaced again (full runs); a table an earlier run merged into still
/// holds rows of its own, and is merged again. Incremental runs upsert into every table the
/// migration loaded. Every other table follows `prepare.existing_rows`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ownership {
    /// The run upserts (incremental or stream).
    pub(crate) incremental: bool,
    /// What earlier runs did to each table they prepared.
    pub(crate) tables: BTreeMap<TableName, ExistingRows>,
}

impl Ownership {
    /// Records what an earlier run's preparation of `table` makes it.
    pub(crate) fn add(&mut self, table: TableName, prepared: &Prepared) {
        let policy = if prepared.merge {
            ExistingRows::Merge
        } else {
            ExistingRows::Replace
        };
        self.tables.insert(table, policy);
    }

    /// Whether earlier runs of the migration wrote `table`.
    pub(crate) fn owns(&self, table: &TableName) -> bool {
        self.tables.contains_key(table)
    }

    /// The policy for `table`'s existing rows.
    pub(crate) fn policy(&self, cfg: &ExecutorConfig, table: &TableName) -> ExistingRows {
        match self.tables.get(table) {
            Some(_) if self.incremental => ExistingRows::Merge,
            Some(p) => *p,
            None => cfg.prepare.existing_rows,
        }
    }
}

/// What the run will do to a target table, in words, and the problem that stops it, if any.
pub(crate) fn action(
    p: &Preflight,
    table: &TableInfo,
    policy: ExistingRows,
    cfg: &ExecutorConfig,
) -> (String, Option<String>) {
    let backed_up = if cfg.prepare.backup {
        ", backed up first"
    } else {
        ""
    };
    match (p.exists, p.rows) {
        (false, _) => ("create it".into(), None),
        (true, _) if cfg.prepare.mode == PrepareMode::Recreate => {
            (format!("drop and create it again{backed_up}"), None)
        }
        (true, Some(0)) => ("load into the empty table".into(), None),
        (true, rows) => {
            let held = rows.map_or("rows (not counted)".to_string(), |n| format!("{n} rows"));
            match policy {
                ExistingRows::Fail => (
                    format!("refuse: it holds {held}"),
                    Some(refusal(&[(String::new(), rows)])),
                ),
                ExistingRows::Replace => (format!("replace its {held}{backed_up}"), None),
                ExistingRows::Merge if table.schema.primary_key.is_empty() => (
                    format!("refuse: it holds {held} and has no key to merge by"),
                    Some(format!(
                        "target table {} holds {held} and has no primary key: prepare.existing_rows = \"merge\" needs one",
                        table.name
                    )),
                ),
                ExistingRows::Merge => (
                    format!("merge by key into its {held}, keeping rows only the target has{backed_up}"),
                    None,
                ),
            }
        }
    }
}

/// The refusal for tables that hold rows under `existing_rows = fail`: every table with its
/// count, and the settings that decide.
fn refusal(tables: &[(String, Option<u64>)]) -> String {
    let list: Vec<String> = tables
        .iter()
        .map(|(t, n)| {
            let held = n.map_or("rows".to_string(), |n| format!("{n} rows"));
            if t.is_empty() {
                format!("the target table holds {held}")
            } else {
                format!("{t} ({held})")
            }
        })
        .collect();
    let what = if tables.len() == 1 && tables[0].0.is_empty() {
        list[0].clone()
    } else {
        format!("target tables already hold rows: {}", list.join(", "))
    };
    format!(
        "{what}; nothing was written. Say what to do with them: prepare.existing_rows = \"replace\" (the source's rows replace them) or \"merge\" (upsert by key, rows only the target has are kept), with prepare.backup = true to be able to roll back; or empty the tables; or, if an earlier run of this migration wrote them, run it again with refresh"
    )
}

/// Counts the rows of every target table in `tables` and refuses the run, naming them all,
/// when any holds rows the policy says not to touch. `settled` is re-read for tables that hold
/// rows, so that rows another worker of the same run wrote meanwhile (it prepared the table
/// before writing) are not mistaken for someone else's.
pub(crate) async fn check<'a, F, Fut>(
    sink: &dyn Sink,
    cfg: &ExecutorConfig,
    owners: &Ownership,
    tables: impl Iterator<Item = &'a TableInfo>,
    settled: F,
) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<BTreeSet<TableName>>>,
{
    let mut held = Vec::new();
    if matches!(cfg.mode, Mode::Incremental(_) | Mode::Stream { .. })
        && cfg.prepare.existing_rows == ExistingRows::Replace
    {
        return Err(Error::config(
            "prepare.existing_rows = \"replace\" needs a full run: incremental runs upsert and never delete (use \"merge\")",
        ));
    }
    if cfg.prepare.mode == PrepareMode::Recreate && cfg.prepare.existing_rows == ExistingRows::Merge
    {
        return Err(Error::config(
            "prepare.existing_rows = \"merge\" keeps the target's rows, but prepare mode recreate drops the table: choose one",
        ));
    }
    // Tables the run would refuse: held rows under `fail` (named together), and the other
    // problems `action` finds (a keyless table to merge into).
    let mut other = Vec::new();
    let mut missing = Vec::new();
    for t in tables {
        missing.extend(
            sink.unmet_requirements(t)
                .await
                .map_err(|e| e.table(&t.name).operation("preflight"))?,
        );
        let policy = owners.policy(cfg, &t.name);
        let keyless_merge = policy == ExistingRows::Merge && t.schema.primary_key.is_empty();
        if policy != ExistingRows::Fail && !keyless_merge {
            continue;
        }
        let p = match sink.preflight(t).await {
            Ok(p) => p,
            // Unreachable or forbidden: prepare reports it with its own error.
            Err(e) if e.kind() != ErrorKind::Config => continue,
            Err(e) => return Err(e.table(&t.name).operation("preflight")),
        };
        match action(&p, t, policy, cfg).1 {
            Some(_) if policy == ExistingRows::Fail => held.push((t.name.clone(), p.rows)),
            Some(problem) => other.push((t.name.clone(), problem)),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::schema(format!(
            "{}; nothing was written",
            missing.join("; ")
        )));
    }
    if held.is_empty() && other.is_empty() {
        return Ok(());
    }
    let settled = settled().await?;
    let held: Vec<(String, Option<u64>)> = held
        .into_iter()
        .filter(|(t, _)| !settled.contains(t))
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    let mut problems: Vec<String> = other
        .into_iter()
        .filter(|(t, _)| !settled.contains(t))
        .map(|(_, p)| p)
        .collect();
    if !held.is_empty() {
        problems.insert(0, refusal(&held));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::config(problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(rows: Option<u64>) -> Preflight {
        Preflight {
            reachable: true,
            exists: true,
            rows,
            ..Default::default()
        }
    }

    #[test]
    fn every_policy_says_what_it_does_and_only_fail_refuses() {
        let t = crate::testing::fixture_tables(None, 1).swap_remove(0).table;
        let mut cfg = ExecutorConfig::default();
        let (a, p) = action(&existing(Some(3)), &t, ExistingRows::Fail, &cfg);
        assert!(a.contains("refuse") && a.contains("3 rows"), "{a}");
        let p = p.unwrap_or_default();
        assert!(
            p.contains("prepare.existing_rows") && p.contains("prepare.backup"),
            "{p}"
        );
        cfg.prepare.backup = true;
        let (a, p) = action(&existing(Some(3)), &t, ExistingRows::Replace, &cfg);
        assert!(
            a.contains("replace its 3 rows, backed up first") && p.is_none(),
            "{a}"
        );
        let (a, p) = action(&existing(Some(3)), &t, ExistingRows::Merge, &cfg);
        assert!(a.contains("merge by key") && p.is_none(), "{a}");
        let keyless = crate::testing::keyless_table(None, 1).table;
        let (a, p) = action(&existing(Some(3)), &keyless, ExistingRows::Merge, &cfg);
        assert!(a.contains("no key") && p.is_some(), "{a}");
        let (a, p) = action(&existing(Some(0)), &t, ExistingRows::Fail, &cfg);
        assert!(a.contains("empty") && p.is_none(), "{a}");
        let (a, _) = action(&Preflight::default(), &t, ExistingRows::Fail, &cfg);
        assert_eq!(a, "create it");
    }

    #[test]
    fn the_migrations_own_rows_are_replaced_merged_or_upserted_as_before() {
        let (a, b, c) = (
            TableName::parse("public.a"),
            TableName::parse("public.b"),
            TableName::parse("public.c"),
        );
        let cfg = ExecutorConfig::default();
        let mut o = Ownership::default();
        assert_eq!(o.policy(&cfg, &a), ExistingRows::Fail);
        let created = Prepared {
            created: true,
            ..Default::default()
        };
        let merged = Prepared {
            existing_rows: Some(5),
            merge: true,
            ..Default::default()
        };
        o.add(a.clone(), &created);
        o.add(b.clone(), &merged);
        assert_eq!(o.policy(&cfg, &a), ExistingRows::Replace);
        assert_eq!(
            o.policy(&cfg, &b),
            ExistingRows::Merge,
            "target-only rows stay"
        );
        assert_eq!(o.policy(&cfg, &c), ExistingRows::Fail);
        o.incremental = true;
        assert_eq!(o.policy(&cfg, &a), ExistingRows::Merge);
    }
}

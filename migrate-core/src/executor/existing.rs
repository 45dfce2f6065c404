//! Rows already in the target: what the run will do to each table that holds some before the
//! run first writes it, and the refusal, before anything is written, when the configuration
//! does not say (`prepare.existing_rows`, default `fail`).

use std::collections::BTreeSet;

use super::config::{ExecutorConfig, Mode};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::TableInfo;
use crate::schema::TableName;
use crate::sink::{ExistingRows, Preflight, Sink};

/// Which tables' rows belong to this migration, and so whose rows the run may rewrite without
/// being told: with `refresh`, every table; otherwise the tables an earlier run of the same
/// migration prepared (a forced new run, or an incremental run after a full one).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ownership {
    pub(crate) refresh: bool,
    pub(crate) tables: BTreeSet<TableName>,
}

impl Ownership {
    /// The policy for `table`'s existing rows: the migration's own rows are replaced (full runs)
    /// or upserted (incremental runs); anyone else's follow the configuration.
    pub(crate) fn policy(&self, cfg: &ExecutorConfig, table: &TableName) -> ExistingRows {
        let incremental = matches!(cfg.mode, Mode::Incremental(_) | Mode::Stream { .. });
        if self.refresh || self.tables.contains(table) {
            if incremental {
                ExistingRows::Merge
            } else {
                ExistingRows::Replace
            }
        } else {
            cfg.prepare.existing_rows
        }
    }
}

/// What the run will do to a target table, in words, and the problem that stops it, if any.
pub(crate) fn action(
    p: &Preflight,
    policy: ExistingRows,
    backup: bool,
) -> (String, Option<String>) {
    let backed_up = if backup { ", backed up first" } else { "" };
    match (p.exists, p.rows) {
        (false, _) => ("create it".into(), None),
        (true, Some(0)) => ("load into the empty table".into(), None),
        (true, rows) => {
            let held = rows.map_or("rows (not counted)".to_string(), |n| format!("{n} rows"));
            match policy {
                ExistingRows::Fail => (
                    format!("refuse: it holds {held}"),
                    Some(refusal(&[(String::new(), rows)])),
                ),
                ExistingRows::Replace => (format!("replace its {held}{backed_up}"), None),
                ExistingRows::Merge => (
                    format!(
                        "merge by key into its {held}, keeping rows only the target has{backed_up}"
                    ),
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
    for t in tables {
        let policy = owners.policy(cfg, &t.name);
        if matches!(cfg.mode, Mode::Incremental(_) | Mode::Stream { .. })
            && policy == ExistingRows::Replace
        {
            return Err(Error::config(
                "prepare.existing_rows = \"replace\" needs a full run: incremental runs upsert and never delete (use \"merge\")",
            ));
        }
        if policy != ExistingRows::Fail {
            continue;
        }
        let p = match sink.preflight(t).await {
            Ok(p) => p,
            // Unreachable or forbidden: prepare reports it with its own error.
            Err(e) if e.kind() != ErrorKind::Config => continue,
            Err(e) => return Err(e.table(&t.name).operation("preflight")),
        };
        if p.exists && p.rows != Some(0) {
            held.push((t.name.clone(), p.rows));
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    let settled = settled().await?;
    let held: Vec<(String, Option<u64>)> = held
        .into_iter()
        .filter(|(t, _)| !settled.contains(t))
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    Err(Error::config(refusal(&held)))
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
        let (a, p) = action(&existing(Some(3)), ExistingRows::Fail, false);
        assert!(a.contains("refuse") && a.contains("3 rows"), "{a}");
        let p = p.unwrap_or_default();
        assert!(
            p.contains("prepare.existing_rows") && p.contains("prepare.backup"),
            "{p}"
        );
        let (a, p) = action(&existing(Some(3)), ExistingRows::Replace, true);
        assert!(
            a.contains("replace its 3 rows, backed up first") && p.is_none(),
            "{a}"
        );
        let (a, p) = action(&existing(Some(3)), ExistingRows::Merge, false);
        assert!(a.contains("merge by key") && p.is_none(), "{a}");
        let (a, p) = action(&existing(Some(0)), ExistingRows::Fail, false);
        assert!(a.contains("empty") && p.is_none(), "{a}");
        let (a, _) = action(&Preflight::default(), ExistingRows::Fail, false);
        assert_eq!(a, "create it");
    }

    #[test]
    fn the_migrations_own_rows_are_replaced_or_upserted() {
        let t = TableName::parse("public.a");
        let mut cfg = ExecutorConfig::default();
        let mut o = Ownership::default();
        assert_eq!(o.policy(&cfg, &t), ExistingRows::Fail);
        o.tables.insert(t.clone());
        assert_eq!(o.policy(&cfg, &t), ExistingRows::Replace);
        cfg.mode = Mode::Incremental(Default::default());
        assert_eq!(o.policy(&cfg, &t), ExistingRows::Merge);
        let other = TableName::parse("public.b");
        cfg.prepare.existing_rows = ExistingRows::Merge;
        assert_eq!(o.policy(&cfg, &other), ExistingRows::Merge);
    }
}

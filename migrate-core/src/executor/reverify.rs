//! Verification on demand, after a run ([`Migration::verify`]): every table's rows in the
//! source and the target compared by count and canonical checksum over the key ranges the
//! latest run used (the whole table where it has none), and the outcome recorded in that run's
//! audit log so its stored report shows it.

use serde::{Deserialize, Serialize};

use super::{LaterVerification, Migration, VERIFY_EVENT};
use crate::checkpoint::AuditEvent;
use crate::checksum::one_per_range;
use crate::chunk::KeyRange;
use crate::error::{ErrorKind, Result};
use crate::schema::TableName;

/// How one table compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Counts and checksums match.
    Match,
    /// They differ (see `mismatched_chunks`).
    Mismatch,
    /// The target has no such table.
    Missing,
    /// Transforms change the rows on the way: source and target are not comparable.
    NotCompared,
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCheck {
    /// The table.
    pub table: TableName,
    /// Rows in the source.
    pub source_count: u64,
    /// Rows in the target (`None`: missing, or not compared).
    pub target_count: Option<u64>,
    /// The outcome.
    pub result: CheckOutcome,
    /// Key ranges (chunk numbers of the latest run) whose rows differ; empty when the whole
    /// table was compared as one range.
    pub mismatched_chunks: Vec<u32>,
}

/// What [`Migration::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Every compared table matched and none is missing.
    pub passed: bool,
    /// Per table, in discovery order.
    pub tables: Vec<TableCheck>,
    /// The run whose audit log records this verification (`None`: the migration has no run).
    pub recorded_in: Option<String>,
}

impl VerifyReport {
    /// A table of the results and the verdict, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut m = String::from(
            "| Table | Source rows | Target rows | Result |\n|-------|-------------|-------------|--------|\n",
        );
        for t in &self.tables {
            let result = match t.result {
                CheckOutcome::Match => "match".to_string(),
                CheckOutcome::Mismatch if t.mismatched_chunks.is_empty() => "MISMATCH".into(),
                CheckOutcome::Mismatch => format!(
                    "MISMATCH in chunks {}",
                    t.mismatched_chunks
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                CheckOutcome::Missing => "MISSING in target".into(),
                CheckOutcome::NotCompared => "not compared (transformed)".into(),
            };
            let target = t.target_count.map_or("-".to_string(), |n| n.to_string());
            m.push_str(&format!(
                "| {} | {} | {target} | {result} |\n",
                t.table, t.source_count
            ));
        }
        m.push_str(&format!(
            "\nverification {}\n",
            if self.passed { "PASSED" } else { "FAILED" }
        ));
        m
    }
}

/// [`Migration::verify`].
pub(crate) async fn verify(m: &Migration) -> Result<VerifyReport> {
    let cfg = &m.config;
    let tables = m.discover_tables().await?;
    let latest = m.store.latest_run(&cfg.migration).await?;
    let chunks = match &latest {
        Some(r) => m.store.chunks(&r.id).await?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for t in &tables {
        if m.transforms
            .iter()
            .any(|(on, _)| on.as_ref().is_none_or(|n| *n == t.name))
        {
            let source = m.source.checksum(t, &KeyRange::all()).await?;
            out.push(TableCheck {
                table: t.name.clone(),
                source_count: source.count,
                target_count: None,
                result: CheckOutcome::NotCompared,
                mismatched_chunks: Vec::new(),
            });
            continue;
        }
        // The run's own ranges (they tile the key space), else the whole table; each side
        // read once for all of them.
        let mut own: Vec<&crate::checkpoint::ChunkRecord> =
            chunks.iter().filter(|c| c.table == t.name).collect();
        own.sort_by_key(|c| c.index);
        // A key the two engines order differently: each would sort rows into the ranges its
        // own way, so only the whole table compares.
        if !super::verify::ranges_compare_alike(m.source.kind(), m.sink.kind(), &t.schema) {
            own.clear();
        }
        let ranges: Vec<KeyRange> = match own.is_empty() {
            true => vec![KeyRange::all()],
            false => own.iter().map(|c| c.range.clone()).collect(),
        };
        let (source_count, target_count, mismatched, missing);
        let targets = match m.sink.checksum_ranges(t, &ranges).await {
            Ok(c) => Some(one_per_range(c, &ranges, "sink")?),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e.table(&t.name).operation("verify target")),
        };
        match targets {
            // The target has no table: count the whole source for the record.
            None => {
                source_count = m.source.checksum(t, &KeyRange::all()).await?.count;
                (target_count, mismatched, missing) = (0, Vec::new(), true);
            }
            Some(targets) => {
                let sources = m.source.checksum_ranges(t, &ranges).await?;
                let sources = one_per_range(sources, &ranges, "source")?;
                source_count = sources.iter().map(|s| s.count).sum();
                target_count = targets.iter().map(|s| s.count).sum();
                mismatched = (0..ranges.len())
                    .filter(|&i| sources[i] != targets[i])
                    .map(|i| own.get(i).map(|c| c.index))
                    .collect::<Vec<Option<u32>>>();
                missing = false;
            }
        }
        let whole_differs = mismatched.contains(&None);
        let mismatched: Vec<u32> = mismatched.into_iter().flatten().collect();
        let result = if missing {
            CheckOutcome::Missing
        } else if mismatched.is_empty() && !whole_differs {
            CheckOutcome::Match
        } else {
            CheckOutcome::Mismatch
        };
        out.push(TableCheck {
            table: t.name.clone(),
            source_count,
            target_count: (!missing).then_some(target_count),
            result,
            mismatched_chunks: mismatched,
        });
    }
    let passed = out
        .iter()
        .all(|t| matches!(t.result, CheckOutcome::Match | CheckOutcome::NotCompared));
    let mut report = VerifyReport {
        passed,
        tables: out,
        recorded_in: None,
    };
    if let Some(run) = latest {
        let later = LaterVerification {
            at: chrono::Utc::now(),
            passed,
            failures: report
                .tables
                .iter()
                .filter(|t| matches!(t.result, CheckOutcome::Mismatch | CheckOutcome::Missing))
                .map(|t| {
                    format!(
                        "{}: {:?} (source {} rows, target {})",
                        t.table,
                        t.result,
                        t.source_count,
                        t.target_count.map_or("-".to_string(), |n| n.to_string())
                    )
                })
                .collect(),
        };
        let detail = serde_json::to_string(&later).unwrap_or_default();
        m.store
            .append_event(&run.id, &AuditEvent::new(VERIFY_EVENT, detail))
            .await?;
        report.recorded_in = Some(run.id.to_string());
    }
    Ok(report)
}

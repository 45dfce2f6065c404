//! Resource-aware planning: before anything moves, estimate each table's time from
//! its size and the bandwidth, order tables by dependency into phases, find the critical path,
//! size chunks from the memory budget, judge feasibility against the time window, and defer
//! what does not fit — DEFERRABLE tables first, then IMPORTANT, never CRITICAL, and never a
//! table that a kept table depends on.
//!
//! [`plan`] is a pure function of its inputs, so it is easy to test and cheap to re-run.

mod drift;
mod manifest;
mod markdown;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dag::DependencyGraph;
use crate::error::{Error, Result};
use crate::schema::{TableInfo, TableName};

pub use drift::{compatible, drift, drift_with, Drift};
pub use manifest::{Manifest, ManifestTable};

/// How much a table matters when time is short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    /// Deferred first when the window is short.
    Deferrable,
    /// Deferred only after every deferrable table.
    #[default]
    Important,
    /// Never deferred: if critical work alone does not fit, the plan is infeasible.
    Critical,
}

impl std::str::FromStr for Priority {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Ok(Priority::Critical),
            "important" => Ok(Priority::Important),
            "deferrable" => Ok(Priority::Deferrable),
            other => Err(Error::config(format!(
                "unknown priority {other:?} (use critical, important or deferrable)"
            ))),
        }
    }
}

/// Any case is accepted (`critical`, `CRITICAL`, `Critical`); written in upper case.
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.message()))
    }
}

/// The limits a migration must respect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// The time window.
    #[serde(with = "crate::config_serde::duration")]
    pub window: Duration,
    /// Memory for rows in flight, in bytes.
    pub memory_budget: u64,
    /// Average bandwidth to aim for, in bytes per second.
    pub bandwidth_target: u64,
    /// Never exceed this, in bytes per second (defaults to the target).
    pub bandwidth_cap: Option<u64>,
    /// Chunks in flight at once.
    pub parallelism: usize,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            window: Duration::from_secs(4 * 3600),
            memory_budget: 512 << 20,
            bandwidth_target: 50_000_000,
            bandwidth_cap: None,
            parallelism: 2,
        }
    }
}

/// One table as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTable {
    /// The table.
    pub name: TableName,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Tables it depends on (within the migration).
    pub depends_on: Vec<TableName>,
    /// Priority.
    pub priority: Priority,
    /// Measured throughput from earlier runs, bytes per second, if the store has history.
    pub measured_bytes_per_sec: Option<f64>,
}

impl PlanTable {
    /// From discovery.
    pub fn from_info(t: &TableInfo, priority: Priority) -> Self {
        PlanTable {
            name: t.name.clone(),
            rows: t.estimated_rows,
            bytes: t.estimated_bytes,
            depends_on: t.parents().cloned().collect(),
            priority,
            measured_bytes_per_sec: None,
        }
    }
}

/// YES / TIGHT / NO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Feasibility {
    /// Fits with at least 25 % of the window to spare.
    Yes,
    /// Fits, with less than 25 % to spare.
    Tight,
    /// Does not fit even with every allowed deferral.
    No,
}

/// A table's place in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTable {
    /// The table.
    pub table: TableName,
    /// Priority.
    pub priority: Priority,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Estimated seconds for this table alone.
    pub estimated_secs: f64,
    /// Phase (1-based dependency level).
    pub phase: usize,
    /// Expected elapsed seconds when it is done (go/no-go checkpoint).
    pub done_by_secs: f64,
    /// Rows per chunk for this table under the memory budget.
    pub chunk_rows: u64,
}

/// A table left for a later run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deferral {
    /// The table.
    pub table: String,
    /// Why.
    pub reason: String,
}

/// A group of tables that can run once the previous phases are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// 1-based.
    pub number: usize,
    /// Tables in it, in execution order.
    pub tables: Vec<String>,
    /// Planned seconds for the phase.
    pub planned_secs: f64,
}

/// A go/no-go mark: by this elapsed time, these tables should be done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Label (`after customers`, `75% of window`).
    pub label: String,
    /// Elapsed seconds.
    pub at_secs: f64,
    /// Tables expected to be complete by then.
    pub expected_done: Vec<String>,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Whether the kept work fits the window.
    pub feasible: bool,
    /// YES / TIGHT / NO.
    pub feasibility: Feasibility,
    /// Kept tables in execution order.
    pub order: Vec<String>,
    /// Deferred tables, with reasons.
    pub deferred: Vec<Deferral>,
    /// Estimated seconds for the kept work.
    pub estimated_secs: f64,
    /// The window in seconds.
    pub window_secs: f64,
    /// Window minus estimate (negative: the shortfall).
    pub margin_secs: f64,
    /// Seconds the critical work alone needs.
    pub critical_secs: f64,
    /// The dependency chain that takes longest, and its seconds.
    pub critical_path: Vec<String>,
    /// Seconds along the critical path.
    pub critical_path_secs: f64,
    /// Bytes per chunk so that chunks in flight fit the memory budget with headroom.
    pub chunk_bytes: u64,
    /// Phases in dependency order.
    pub phases: Vec<Phase>,
    /// Kept tables with their estimates.
    pub tables: Vec<PlannedTable>,
    /// Go/no-go checkpoints.
    pub checkpoints: Vec<Checkpoint>,
    /// The constraints planned against.
    pub constraints: Constraints,
    /// Contingency notes.
    pub contingency: Vec<String>,
    /// What the constraints did not come from the operator: the assumptions a caller planned
    /// with in their place (no window: the estimate is informational and feasibility is not
    /// judged; no bandwidth: an assumed rate). Rendered instead of presenting them as given.
    #[serde(default)]
    pub assumed: Assumed,
}

/// Constraints the operator did not give (see [`Plan::assumed`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assumed {
    /// No time window was given.
    pub no_window: bool,
    /// No bandwidth was given: the rate is an assumption.
    pub no_bandwidth: bool,
}

/// Share of the memory budget chunks may use (the rest is headroom for decoding and writing).
const MEMORY_HEADROOM: f64 = 0.5;

fn secs_for(t: &PlanTable, c: &Constraints) -> f64 {
    let bw = c
        .bandwidth_target
        .min(c.bandwidth_cap.unwrap_or(u64::MAX))
        .max(1) as f64;
    let rate = t.measured_bytes_per_sec.map_or(bw, |m| m.min(bw)).max(1.0);
    t.bytes as f64 / rate
}

/// Seconds along the longest dependency chain through `tables`, and that chain. Each table
/// keeps only its best predecessor (the chain is rebuilt at the end), so this is linear in the
/// number of tables and edges, however deep the graph.
fn critical_path(
    tables: &BTreeMap<TableName, &PlanTable>,
    dag: &DependencyGraph,
    c: &Constraints,
) -> (f64, Vec<TableName>) {
    let mut best: BTreeMap<&TableName, (f64, Option<&TableName>)> = BTreeMap::new();
    let mut end: Option<(&TableName, f64)> = None;
    for name in dag.order() {
        let Some(t) = tables.get(name) else { continue };
        let parents = dag.parents(name);
        let (before, via) = parents
            .iter()
            .filter_map(|p| best.get_key_value(p).map(|(k, v)| (v.0, *k)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or((0.0, None), |(secs, k)| (secs, Some(k)));
        let secs = before + secs_for(t, c);
        best.insert(name, (secs, via));
        if end.is_none_or(|(_, s)| secs > s) {
            end = Some((name, secs));
        }
    }
    let Some((last, secs)) = end else {
        return (0.0, Vec::new());
    };
    let mut path = vec![last.clone()];
    let mut at = last;
    while let Some((_, Some(prev))) = best.get(at) {
        path.push((*prev).clone());
        at = prev;
    }
    path.reverse();
    (secs, path)
}

/// Elapsed time for a set of tables: bandwidth-bound (all bytes share the bandwidth) but never
/// shorter than the longest dependency chain.
fn elapsed(
    tables: &BTreeMap<TableName, &PlanTable>,
    dag: &DependencyGraph,
    c: &Constraints,
) -> (f64, Vec<TableName>, f64) {
    let total: f64 = tables.values().map(|t| secs_for(t, c)).sum();
    let (cp_secs, cp) = critical_path(tables, dag, c);
    (total.max(cp_secs), cp, cp_secs)
}

/// Plans `tables` against `constraints`.
pub fn plan<'a_plan>(tables: &'a_plan [PlanTable], constraints: &Constraints) -> Result<Plan> {
    let c = constraints;
    if let Some(cap) = c.bandwidth_cap {
        if c.bandwidth_target > cap {
            return Err(Error::config(format!(
                "bandwidth target {} B/s exceeds the hard cap {cap} B/s",
                c.bandwidth_target
            )));
        }
    }
    let infos: Vec<TableInfo> = tables
        .iter()
        .map(|t| {
            let schema = crate::schema::Schema {
                columns: vec![],
                primary_key: vec![],
            };
            let mut i = TableInfo::new(t.name.clone(), schema);
            i.foreign_keys = t
                .depends_on
                .iter()
                .map(|p| crate::schema::ForeignKey {
                    definition: None,
                    name: None,
                    columns: vec![],
                    referenced_table: p.clone(),
                    referenced_columns: vec![],
                })
                .collect();
            i
        })
        .collect();
    let dag = DependencyGraph::build(&infos, &[])?;
    let by_name: BTreeMap<TableName, &PlanTable> =
        tables.iter().map(|t| (t.name.clone(), t)).collect();
    let window = c.window.as_secs_f64();

    // Critical work alone.
    let critical: BTreeMap<TableName, &PlanTable> = by_name
        .iter()
        .filter(|(_, t)| t.priority == Priority::Critical)
        .map(|(n, t)| (n.clone(), *t))
        .collect();
    let (critical_secs, _, _) = elapsed(&critical, &dag, c);

    // Defer until it fits: deferrable before important, largest first, and only tables no kept
    // table depends on. Candidates wait in an ordered set and a parent joins it when its last
    // kept child goes; the bandwidth-bound total is kept as a running sum and the critical
    // path only recomputed once the total fits (it can only exceed the window then).
    let mut kept = by_name.clone();
    let mut deferred = Vec::new();
    let mut kept_children: BTreeMap<&TableName, usize> = by_name
        .keys()
        .map(|n| {
            (
                n,
                dag.children(n)
                    .iter()
                    .filter(|ch| by_name.contains_key(*ch))
                    .count(),
            )
        })
        .collect();
    type Key<'a> = (Priority, std::cmp::Reverse<u64>, &'a TableName);
    let eligible = |t: &'a_plan PlanTable| -> Key<'a_plan> {
        (t.priority, std::cmp::Reverse(t.bytes), &t.name)
    };
    let mut candidates: BTreeSet<Key<'_>> = by_name
        .values()
        .filter(|t| t.priority != Priority::Critical && kept_children[&t.name] == 0)
        .map(|t| eligible(t))
        .collect();
    let mut total: f64 = kept.values().map(|t| secs_for(t, c)).sum();
    loop {
        let est = if total > window {
            total
        } else {
            let (est, _, _) = elapsed(&kept, &dag, c);
            if est <= window {
                break;
            }
            est
        };
        let Some(key) = candidates.pop_first() else {
            break;
        };
        let name = key.2.clone();
        let t = kept
            .remove(&name)
            .ok_or_else(|| Error::fatal("planner lost a table"))?;
        total -= secs_for(t, c);
        for p in dag.parents(&name) {
            if let Some((pk, n)) = kept_children.get_key_value(&p).map(|(k, n)| (*k, *n)) {
                let n = n.saturating_sub(1);
                kept_children.insert(pk, n);
                if n == 0 {
                    if let Some(pt) = kept.get(&p) {
                        if pt.priority != Priority::Critical {
                            candidates.insert(eligible(pt));
                        }
                    }
                }
            }
        }
        let reason = format!(
            "{} table of {:.0} MB ({:.1} s): the kept work needs {:.1} s of the {:.1} s window",
            match t.priority {
                Priority::Deferrable => "deferrable",
                Priority::Important => "important",
                Priority::Critical => "critical",
            },
            t.bytes as f64 / 1e6,
            secs_for(t, c),
            est,
            window
        );
        deferred.push(Deferral {
            table: name.to_string(),
            reason,
        });
    }
    // A table whose parent was deferred cannot run either (only possible when the parent had
    // to go because of its own children already deferred — kept for safety).
    let (estimated, cp, cp_secs) = elapsed(&kept, &dag, c);
    let margin = window - estimated;
    // A plan that defers every table moves nothing it was asked to: not a plan that fits.
    let nothing_kept = kept.is_empty() && !tables.is_empty();
    let feasibility = if estimated > window || nothing_kept {
        Feasibility::No
    } else if margin < 0.25 * window {
        Feasibility::Tight
    } else {
        Feasibility::Yes
    };

    // Chunks: chunk bytes × chunks in flight ≤ budget × headroom.
    let chunk_bytes =
        ((c.memory_budget as f64 * MEMORY_HEADROOM) / c.parallelism.max(1) as f64) as u64;
    // Phases by dependency level.
    let mut level: BTreeMap<TableName, usize> = BTreeMap::new();
    for name in dag.order() {
        if !kept.contains_key(name) {
            continue;
        }
        let l = dag
            .parents(name)
            .iter()
            .filter_map(|p| level.get(p))
            .max()
            .map_or(1, |l| l + 1);
        level.insert(name.clone(), l);
    }
    let mut order: Vec<TableName> = dag
        .order()
        .iter()
        .filter(|n| kept.contains_key(*n))
        .cloned()
        .collect();
    order.sort_by_key(|n| level[n]);
    let mut done_by = 0.0;
    let mut planned = Vec::new();
    for n in &order {
        let t = kept[n];
        let secs = secs_for(t, c);
        done_by += secs;
        let avg_row = t.bytes.checked_div(t.rows).unwrap_or(1).max(1);
        planned.push(PlannedTable {
            table: n.clone(),
            priority: t.priority,
            rows: t.rows,
            bytes: t.bytes,
            estimated_secs: secs,
            phase: level[n],
            done_by_secs: done_by,
            chunk_rows: (chunk_bytes / avg_row).clamp(1, t.rows.max(1)),
        });
    }
    // One pass each: a 10,000-table schema must plan in well under a second, so nothing here
    // may be quadratic in the number of tables (phases of a long chain, or checkpoints that
    // each list every table done before them, were).
    let mut by_phase: BTreeMap<usize, Vec<&PlannedTable>> = BTreeMap::new();
    for p in &planned {
        by_phase.entry(p.phase).or_default().push(p);
    }
    let phases: Vec<Phase> = by_phase
        .into_iter()
        .map(|(number, ts)| Phase {
            number,
            tables: ts.iter().map(|p| p.table.to_string()).collect(),
            planned_secs: ts.iter().map(|p| p.estimated_secs).sum(),
        })
        .collect();
    // Go/no-go marks at fixed shares of the estimate and of the window (a table's own finish
    // time is `done_by_secs` in `tables`). `planned` is in finishing order.
    let expected_by = |at: f64| -> Vec<String> {
        let n = planned.partition_point(|q| q.done_by_secs <= at + 1e-9);
        planned[..n].iter().map(|q| q.table.to_string()).collect()
    };
    let serial_secs = planned.last().map_or(0.0, |p| p.done_by_secs);
    let mut checkpoints: Vec<Checkpoint> = [0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|share| Checkpoint {
            label: format!("{:.0}% of the estimate", share * 100.0),
            at_secs: share * serial_secs,
            expected_done: expected_by(share * serial_secs),
        })
        .collect();
    let mark = 0.75 * window;
    checkpoints.push(Checkpoint {
        label: "75% of window".into(),
        at_secs: mark,
        expected_done: expected_by(mark),
    });
    let mut contingency = vec![
        "If falling behind: the executor re-estimates the finish from measured throughput and defers not-yet-started deferrable tables, then important ones; critical work continues.".to_string(),
        "If memory is short: lower the memory budget; chunks and batches shrink with it (slower, never unsafe).".to_string(),
    ];
    if nothing_kept {
        contingency.push(format!(
            "Infeasible: no table fits the {window:.1} s window, so every table is deferred and nothing would move — widen the window or raise bandwidth."
        ));
    } else if feasibility == Feasibility::No {
        contingency.push(format!(
            "Infeasible: critical work alone needs {:.1} s of a {:.1} s window — widen the window by at least {:.1} s or raise bandwidth.",
            critical_secs,
            window,
            (estimated - window).max(0.0)
        ));
    }
    Ok(Plan {
        feasible: feasibility != Feasibility::No,
        feasibility,
        order: order.iter().map(|n| n.to_string()).collect(),
        deferred,
        estimated_secs: estimated,
        window_secs: window,
        margin_secs: margin,
        critical_secs,
        critical_path: cp.iter().map(|n| n.to_string()).collect(),
        critical_path_secs: cp_secs,
        chunk_bytes,
        phases,
        tables: planned,
        checkpoints,
        constraints: constraints.clone(),
        assumed: Assumed::default(),
        contingency,
    })
}

/// Measured throughput per table from the migration's latest run in `store`: bytes written
/// over the summed durations of its completed chunks. Tables without history are absent.
pub async fn measured_rates(
    store: &dyn crate::checkpoint::CheckpointStore,
    migration: &str,
) -> Result<BTreeMap<TableName, f64>> {
    let Some(run) = store.latest_run(migration).await? else {
        return Ok(BTreeMap::new());
    };
    let mut acc: BTreeMap<TableName, (u64, u64)> = BTreeMap::new();
    for c in store.chunks(&run.id).await? {
        if let (crate::checkpoint::ChunkStatus::Completed, Some(ms)) = (c.status, c.duration_ms) {
            let e = acc.entry(c.table).or_insert((0, 0));
            e.0 += c.bytes;
            e.1 += ms;
        }
    }
    Ok(acc
        .into_iter()
        .filter(|(_, (b, ms))| *b > 0 && *ms > 0)
        .map(|(t, (b, ms))| (t, b as f64 * 1000.0 / ms as f64))
        .collect())
}

/// Tables a plan keeps.
pub fn kept(plan: &Plan) -> BTreeSet<String> {
    plan.order.iter().cloned().collect()
}

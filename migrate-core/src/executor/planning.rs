//! Planning before a run: the resource-aware plan (one rule for the run and for
//! [`Migration::plan`]) and the target's preflight.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ExecutorConfig, Migration, Mode};
use crate::error::Result;
use crate::plan::{self, Assumed, Constraints, Plan, PlanTable};
use crate::report::MigrationReport;
use crate::schema::{TableInfo, TableName};

/// The rate assumed when no bandwidth is given (100 MB/s), stated in the plan as assumed.
pub const ASSUMED_BANDWIDTH: u64 = 100_000_000;

/// The window assumed when none is given: long enough that nothing is deferred for time; the
/// plan says feasibility was not judged.
const UNBOUNDED: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The resource-aware plan of `tables` under `cfg`, with throughput measured by earlier runs
/// (`history`, bytes per second): one set of defaults for the run and for `plan()`.
pub(crate) fn resource_plan<'a>(
    tables: impl Iterator<Item = &'a TableInfo>,
    cfg: &ExecutorConfig,
    history: &BTreeMap<TableName, f64>,
) -> Result<Plan> {
    let tables: Vec<PlanTable> = tables
        .map(|t| PlanTable {
            measured_bytes_per_sec: history.get(&t.name).copied(),
            ..PlanTable::from_info(t, cfg.priority(&t.name))
        })
        .collect();
    let constraints = Constraints {
        window: cfg.window.unwrap_or(UNBOUNDED),
        memory_budget: cfg.memory_budget,
        bandwidth_target: cfg.throttle_rate().unwrap_or(ASSUMED_BANDWIDTH),
        bandwidth_cap: cfg.bandwidth_cap,
        parallelism: cfg.parallelism,
    };
    let mut p = plan::plan(&tables, &constraints)?;
    p.assumed = Assumed {
        no_window: cfg.window.is_none(),
        no_bandwidth: cfg.throttle_rate().is_none(),
    };
    Ok(p)
}

/// What [`Migration::plan`] found: the plan, the target's side, and whether a run would go
/// ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    /// The resource-aware plan: order, phases, deferrals, estimates (feasibility judged only
    /// against a window the operator gave).
    pub plan: Plan,
    /// The dry run: each target table's reachability, privileges, row count and what the run
    /// will do to it, schema drift, and the schema objects it will and will not create.
    pub preflight: MigrationReport,
    /// A run would start and fit: feasible (or no window given) and nothing in the preflight
    /// stops it.
    pub ready: bool,
}

impl PlanReport {
    /// The plan and the preflight as one JSON document (the plan's fields at the top; a plan
    /// without a window has no feasibility).
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::to_value(&self.plan).unwrap_or_default();
        json["drift"] = serde_json::to_value(&self.preflight.drift).unwrap_or_default();
        json["preflight"] = serde_json::to_value(&self.preflight.preflight).unwrap_or_default();
        json["schema_objects"] =
            serde_json::to_value(&self.preflight.schema_objects).unwrap_or_default();
        if self.plan.assumed.no_window {
            for key in ["feasible", "feasibility", "window_secs", "margin_secs"] {
                json[key] = serde_json::Value::Null;
            }
        }
        json["ready"] = serde_json::Value::Bool(self.ready);
        json
    }

    /// The plan, then the target's preflight (drift, dry run, schema objects), in Markdown.
    pub fn to_markdown(&self) -> String {
        let md = self.preflight.to_markdown();
        let preflight = match md.find("## Schema Drift").or_else(|| md.find("## Dry Run")) {
            Some(i) => format!("## Target Preflight\n\n{}", &md[i..]),
            None => "## Target Preflight\n\nall target tables reachable and compatible\n".into(),
        };
        format!("{}\n{preflight}", self.plan.to_markdown())
    }
}

/// [`Migration::plan`].
pub(crate) async fn plan(m: &Migration) -> Result<PlanReport> {
    let cfg = &m.config;
    let tables = m.discover_tables().await?;
    if let Some(inc) = cfg.mode.incremental() {
        // The dry run below does not run the incremental checks: every table lacking the
        // cursor column or a primary key is named now, not at the run.
        inc.check_tables(&tables)?;
    }
    let history = plan::measured_rates(&*m.store, &cfg.migration).await?;
    let plan = resource_plan(tables.iter(), cfg, &history)?;
    let dry = ExecutorConfig {
        mode: Mode::DryRun,
        ..cfg.clone()
    };
    let preflight = m.clone().with_config(dry).run().await?;
    let ready = (plan.feasible || cfg.window.is_none())
        && preflight.status == crate::checkpoint::RunStatus::Completed;
    Ok(PlanReport {
        plan,
        preflight,
        ready,
    })
}

//! The plan as Markdown, for an operator to review before a run.

use std::fmt::Write as _;

use super::{Feasibility, Plan, Priority};

fn dur(secs: f64) -> String {
    // No "-0.0 sec": a margin that rounds to nothing is nothing.
    let secs = if secs.abs() < 0.05 { 0.0 } else { secs };
    if secs < 120.0 {
        format!("{secs:.1} sec")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// The one spelling priorities are written in (the JSON's).
fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Critical => "CRITICAL",
        Priority::Important => "IMPORTANT",
        Priority::Deferrable => "DEFERRABLE",
    }
}

impl Plan {
    /// The plan as pretty JSON (`feasible`, `order` and `deferred` are stable keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The plan as Markdown.
    pub fn to_markdown(&self) -> String {
        let c = &self.constraints;
        let mb = |b: u64| b as f64 / 1e6;
        let mut m = String::new();
        let _ = writeln!(m, "# Migration Plan\n\n## Resource Calculations\n");
        let _ = writeln!(
            m,
            "### Time Estimates (at {:.0} MB/s{})\n",
            c.bandwidth_target as f64 / 1e6,
            if self.assumed.no_bandwidth {
                ", assumed: no bandwidth was given"
            } else {
                ""
            }
        );
        let _ = writeln!(m, "| Table | Size (MB) | Est. Time | Priority |\n|-------|-----------|-----------|----------|");
        for t in &self.tables {
            let _ = writeln!(
                m,
                "| {} | {:.0} | {} | {} |",
                t.table,
                mb(t.bytes),
                dur(t.estimated_secs),
                priority_name(t.priority)
            );
        }
        for d in &self.deferred {
            let _ = writeln!(m, "| {} | — | deferred | — |", d.table);
        }
        let _ = writeln!(m, "\n### Total Critical Path Time\n");
        let _ = writeln!(
            m,
            "- Critical path: {} — {}",
            self.critical_path.join(" → "),
            dur(self.critical_path_secs)
        );
        let _ = writeln!(m, "- Critical tables alone: {}", dur(self.critical_secs));
        let _ = writeln!(
            m,
            "- All kept work (bandwidth-bound): {}",
            dur(self.estimated_secs)
        );
        let _ = writeln!(m, "\n### Memory Planning\n");
        let _ = writeln!(
            m,
            "- Chunk size: {:.0} MB ({} chunks in flight within {:.0} MB, 50% headroom)",
            mb(self.chunk_bytes),
            c.parallelism,
            mb(c.memory_budget)
        );
        for t in &self.tables {
            let _ = writeln!(m, "- {}: ~{} rows per chunk", t.table, t.chunk_rows);
        }
        let _ = writeln!(m, "\n### Feasibility Assessment\n");
        let critical_mb: f64 = self
            .tables
            .iter()
            .filter(|t| t.priority == Priority::Critical)
            .map(|t| mb(t.bytes))
            .sum();
        let _ = writeln!(m, "- Critical tables total: {critical_mb:.0} MB");
        let _ = writeln!(m, "- Time needed: {}", dur(self.estimated_secs));
        let verdict = match self.feasibility {
            Feasibility::Yes => "YES",
            Feasibility::Tight => "TIGHT",
            Feasibility::No => "NO",
        };
        if self.assumed.no_window {
            let _ = writeln!(m, "- Time available: no window was given");
            let _ = writeln!(
                m,
                "- Feasibility: not judged (set constraints.window to plan against one)"
            );
        } else {
            let _ = writeln!(m, "- Time available: {}", dur(self.window_secs));
            let _ = if self.order.is_empty() && !self.deferred.is_empty() {
                writeln!(m, "- Feasibility: {verdict} (every table deferred)")
            } else if self.margin_secs >= 0.0 {
                writeln!(
                    m,
                    "- Feasibility: {verdict} (margin {})",
                    dur(self.margin_secs)
                )
            } else {
                writeln!(
                    m,
                    "- Feasibility: {verdict} (short by {})",
                    dur(-self.margin_secs)
                )
            };
        }
        let _ = writeln!(m, "\n## Execution Order\n");
        for p in &self.phases {
            let _ = writeln!(m, "### Phase {} ({})\n", p.number, dur(p.planned_secs));
            for name in &p.tables {
                if let Some(t) = self.tables.iter().find(|t| &t.table.to_string() == name) {
                    let _ = writeln!(
                        m,
                        "1. {name} ({:.0} MB) — done by {}",
                        mb(t.bytes),
                        dur(t.done_by_secs)
                    );
                }
            }
            let _ = writeln!(m);
        }
        if !self.deferred.is_empty() {
            let _ = writeln!(m, "### Deferred to Follow-up\n");
            for d in &self.deferred {
                let _ = writeln!(m, "- {} — {}", d.table, d.reason);
            }
            let _ = writeln!(m);
        }
        let _ = writeln!(m, "## Contingency Plans\n");
        for line in &self.contingency {
            let _ = writeln!(m, "- {line}");
        }
        let _ = writeln!(m, "\n### Go/No-Go Checkpoints\n");
        for cp in &self.checkpoints {
            let _ = writeln!(
                m,
                "- {} — {}: {} done",
                cp.label,
                dur(cp.at_secs),
                cp.expected_done.len()
            );
        }
        m
    }
}

//! The time window: the plan made before the run and the tables deferred during it.

use super::{Coordinator, TState};
use crate::checkpoint::TableStatus;
use crate::error::Result;
use crate::schema::TableName;

impl Coordinator {
    /// With a window, plans the tables this run still has to load (a follow-up run plans only
    /// what is left) against the constraints.
    pub(super) fn make_plan(&self) -> Result<Option<crate::plan::Plan>> {
        let cfg = &self.ctx.cfg;
        // Without a window there is nothing to defer: the run loads everything.
        if cfg.window.is_none() {
            return Ok(None);
        }
        let pending = self
            .tables
            .values()
            .filter(|t| self.runs[&t.info.name].state() != TState::Done(TableStatus::Completed))
            .map(|t| &t.info);
        Ok(Some(crate::executor::planning::resource_plan(
            pending,
            cfg,
            &self.history,
        )?))
    }

    /// Defers the tables the plan could not fit (only those with nothing loaded yet: a table
    /// half-loaded by an earlier execution is finished rather than abandoned).
    pub(super) async fn apply_plan(&mut self) -> Result<()> {
        let Some(plan) = self.plan.clone() else {
            return Ok(());
        };
        for d in &plan.deferred {
            let name = TableName::parse(&d.table);
            let Some(name) = self
                .runs
                .keys()
                .find(|n| n.to_string() == d.table || **n == name)
                .cloned()
            else {
                continue;
            };
            if self.runs[&name].done_before.0 == 0 {
                self.defer_table(&name, format!("planned: {}", d.reason))
                    .await?;
            }
        }
        Ok(())
    }

    /// Re-estimates the finish from measured throughput; while it passes the window, defers a
    /// table that has not started, by the plan's policy: deferrable before important, larger
    /// first, never critical, never one a kept table depends on.
    pub(super) async fn reestimate(&mut self) -> Result<()> {
        let Some(window) = self.ctx.cfg.window else {
            return Ok(());
        };
        let elapsed = self
            .started
            .elapsed()
            .saturating_sub(self.paused_total)
            .as_secs_f64();
        if elapsed < 0.2 || self.bytes_written == 0 {
            return Ok(());
        }
        loop {
            let rate = self.bytes_written as f64 / elapsed;
            let remaining: u64 = self
                .runs
                .iter()
                .filter(|(_, r)| !matches!(r.state(), TState::Done(_)))
                .map(|(n, r)| {
                    let est = self.tables[n].info.estimated_bytes.max(r.done_before.2);
                    est.saturating_sub(
                        r.done_before.2 + self.bytes_by_table.get(n).copied().unwrap_or(0),
                    )
                })
                .sum();
            let projected = elapsed + remaining as f64 / rate.max(1.0);
            if projected <= window.as_secs_f64() {
                return Ok(());
            }
            let candidate = self
                .runs
                .iter()
                .filter(|(n, r)| {
                    let untouched = r.in_flight == 0
                        && r.done_before.0 == 0
                        && !self.bytes_by_table.contains_key(*n);
                    matches!(r.state(), TState::Waiting | TState::Running) && untouched
                })
                .filter(|(n, _)| self.ctx.cfg.priority(n) != crate::plan::Priority::Critical)
                .filter(|(n, _)| {
                    self.dag.children(n).iter().all(|c| {
                        matches!(
                            self.runs[c].state(),
                            TState::Done(TableStatus::Deferred | TableStatus::Skipped)
                        )
                    })
                })
                .min_by_key(|(n, _)| {
                    (
                        self.ctx.cfg.priority(n),
                        std::cmp::Reverse(self.tables[*n].info.estimated_bytes),
                    )
                })
                .map(|(n, _)| n.clone());
            let Some(name) = candidate else { return Ok(()) };
            let reason = format!(
                "measured {:.2} MB/s projects the finish at {:.1} s, past the {:.1} s window",
                rate / 1e6,
                projected,
                window.as_secs_f64()
            );
            self.defer_table(&name, reason).await?;
        }
    }
}

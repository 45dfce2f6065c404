//! Progress as the executor sees it, published on a `watch` channel for any front end to render
//! (the library never draws to a terminal).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::checkpoint::TableStatus;
use crate::schema::TableName;

/// Where the run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing tables.
    #[default]
    Discovery,
    /// Chunking and ordering.
    Planning,
    /// Checking the target (dry run) or creating tables.
    Preparing,
    /// Moving rows.
    Loading,
    /// Comparing source and target.
    Verifying,
    /// Finished (whatever the outcome).
    Done,
}

/// One table's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableProgress {
    /// The table.
    pub table: TableName,
    /// Status.
    pub status: TableStatus,
    /// Rows written (completed chunks plus the current attempts of running ones).
    pub rows_done: u64,
    /// Rows expected.
    pub rows_total: u64,
    /// Bytes written.
    pub bytes_done: u64,
    /// Chunks completed.
    pub chunks_done: u64,
    /// Chunks in the plan.
    pub chunks_total: u64,
}

/// A snapshot of the whole run's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Phase.
    pub phase: Phase,
    /// Paused by the handle or the store flag.
    pub paused: bool,
    /// Seconds since the executor started.
    pub elapsed_secs: f64,
    /// Rows written so far.
    pub rows_done: u64,
    /// Rows expected in total.
    pub rows_total: u64,
    /// Bytes written so far.
    pub bytes_done: u64,
    /// Bytes expected in total.
    pub bytes_total: u64,
    /// Rows written by earlier executions of this run (a resumed run starts with them done).
    pub rows_before: u64,
    /// Bytes written by earlier executions of this run.
    pub bytes_before: u64,
    /// Rows per second written by this execution.
    pub rows_per_sec: f64,
    /// Megabytes (10^6) per second written by this execution.
    pub mb_per_sec: f64,
    /// Seconds left at the measured rate, once there is a rate.
    pub eta_secs: Option<f64>,
    /// Chunks completed / total.
    pub chunks_done: u64,
    /// Chunks in the plan.
    pub chunks_total: u64,
    /// Tables with a chunk in flight.
    pub active_tables: Vec<TableName>,
    /// Per-table detail, in dependency order.
    pub tables: Vec<TableProgress>,
    /// Retries taken.
    pub retries: u64,
    /// Calls made to the source, sink and store.
    pub api_calls: u64,
    /// Bytes reserved in the memory budget now.
    pub in_flight_bytes: u64,
}

/// Progress plus indexes: table → position in `tables`, table → chunks in flight.
type State = (
    Progress,
    BTreeMap<TableName, usize>,
    BTreeMap<TableName, u32>,
);

/// Accumulates progress and publishes snapshots (at most every 100 ms unless forced).
pub(crate) struct Tracker {
    state: Mutex<State>,
    started: Instant,
    last: Mutex<Instant>,
    tx: watch::Sender<Progress>,
}

impl Tracker {
    pub(crate) fn new() -> (Tracker, watch::Receiver<Progress>) {
        let (tx, rx) = watch::channel(Progress::default());
        let now = Instant::now();
        (
            Tracker {
                state: Mutex::new((Progress::default(), BTreeMap::new(), BTreeMap::new())),
                started: now,
                last: Mutex::new(now),
                tx,
            },
            rx,
        )
    }

    fn with<R>(
        &self,
        f: impl FnOnce(
            &mut Progress,
            &mut BTreeMap<TableName, usize>,
            &mut BTreeMap<TableName, u32>,
        ) -> R,
    ) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (p, idx, active) = &mut *g;
        f(p, idx, active)
    }

    pub(crate) fn set_tables(&self, tables: Vec<TableProgress>) {
        self.with(|p, idx, _| {
            *idx = tables
                .iter()
                .enumerate()
                .map(|(i, t)| (t.table.clone(), i))
                .collect();
            p.rows_total = tables.iter().map(|t| t.rows_total).sum();
            p.chunks_total = tables.iter().map(|t| t.chunks_total).sum();
            p.rows_done = tables.iter().map(|t| t.rows_done).sum();
            p.bytes_done = tables.iter().map(|t| t.bytes_done).sum();
            // What is done when the tables are set comes from earlier executions: rates
            // measure this execution's work against this execution's time.
            p.rows_before = p.rows_done;
            p.bytes_before = p.bytes_done;
            p.chunks_done = tables.iter().map(|t| t.chunks_done).sum();
            p.tables = tables;
        });
        self.publish(true);
    }

    pub(crate) fn set_bytes_total(&self, bytes: u64) {
        self.with(|p, _, _| p.bytes_total = bytes);
    }

    pub(crate) fn phase(&self, phase: Phase) {
        self.with(|p, _, _| p.phase = phase);
        self.publish(true);
    }

    pub(crate) fn paused(&self, paused: bool) {
        self.with(|p, _, _| p.paused = paused);
        self.publish(true);
    }

    /// Rows and bytes moved (negative after a failed attempt rolls its rows back).
    pub(crate) fn rows(&self, table: &TableName, rows: i64, bytes: i64) {
        self.with(|p, idx, _| {
            p.rows_done = p.rows_done.saturating_add_signed(rows);
            p.bytes_done = p.bytes_done.saturating_add_signed(bytes);
            if let Some(t) = idx.get(table).and_then(|&i| p.tables.get_mut(i)) {
                t.rows_done = t.rows_done.saturating_add_signed(rows);
                t.bytes_done = t.bytes_done.saturating_add_signed(bytes);
            }
        });
        self.publish(false);
    }

    pub(crate) fn chunk_started(&self, table: &TableName) {
        self.with(|p, _, active| {
            *active.entry(table.clone()).or_insert(0) += 1;
            p.active_tables = active.keys().cloned().collect();
        });
    }

    pub(crate) fn chunk_ended(&self, table: &TableName, completed: bool) {
        self.with(|p, idx, active| {
            if let Some(n) = active.get_mut(table) {
                *n -= 1;
                if *n == 0 {
                    active.remove(table);
                }
            }
            p.active_tables = active.keys().cloned().collect();
            if completed {
                p.chunks_done += 1;
                if let Some(t) = idx.get(table).and_then(|&i| p.tables.get_mut(i)) {
                    t.chunks_done += 1;
                }
            }
        });
        self.publish(true);
    }

    pub(crate) fn table_status(&self, table: &TableName, status: TableStatus) {
        self.with(|p, idx, _| {
            if let Some(t) = idx.get(table).and_then(|&i| p.tables.get_mut(i)) {
                t.status = status;
            }
        });
        self.publish(true);
    }

    pub(crate) fn retry(&self) {
        self.with(|p, _, _| p.retries += 1);
    }

    pub(crate) fn api_calls(&self, n: u64) {
        self.with(|p, _, _| p.api_calls += n);
    }

    pub(crate) fn in_flight(&self, bytes: u64) {
        self.with(|p, _, _| p.in_flight_bytes = bytes);
    }

    pub(crate) fn snapshot(&self) -> Progress {
        let elapsed = self.started.elapsed();
        self.with(|p, _, _| {
            compute_rates(p, elapsed);
            p.clone()
        })
    }

    pub(crate) fn publish(&self, force: bool) {
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.elapsed() < Duration::from_millis(100) {
                return;
            }
            *last = Instant::now();
        }
        let snap = self.snapshot();
        self.tx.send_replace(snap);
    }
}

fn compute_rates(p: &mut Progress, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    p.elapsed_secs = secs;
    if secs > 0.0 {
        p.rows_per_sec = p.rows_done.saturating_sub(p.rows_before) as f64 / secs;
        p.mb_per_sec = p.bytes_done.saturating_sub(p.bytes_before) as f64 / 1e6 / secs;
    }
    p.eta_secs = (p.rows_per_sec > 0.0 && p.rows_total >= p.rows_done)
        .then(|| (p.rows_total - p.rows_done) as f64 / p.rows_per_sec);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_measure_this_executions_work_against_its_own_time() {
        // A resumed run: 1000 rows (10 MB) done before, 200 rows (2 MB) in this execution's 2 s.
        let mut p = Progress {
            rows_before: 1000,
            bytes_before: 10_000_000,
            rows_done: 1200,
            bytes_done: 12_000_000,
            rows_total: 1400,
            ..Default::default()
        };
        compute_rates(&mut p, Duration::from_secs(2));
        assert_eq!(p.rows_per_sec, 100.0);
        assert_eq!(p.mb_per_sec, 1.0);
        assert_eq!(p.eta_secs, Some(2.0));
    }
}

//! Progress as the executor sees it, published on a `watch` channel for any front end to render
//! (the library never draws to a terminal).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
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
    /// Moving rows (finished tables' indexes and verification may run alongside).
    Loading,
    /// Every row is moved; indexes, constraints and foreign keys are being built.
    Finalizing,
    /// Every row is moved and built upon; comparing source and target.
    Verifying,
    /// Finished (whatever the outcome).
    Done,
}

/// Where one table is in this execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TablePhase {
    /// Not started (waiting for its parents or a worker).
    #[default]
    Waiting,
    /// Its target table is being created or checked.
    Preparing,
    /// Chunks are being copied.
    Copying,
    /// Every chunk is copied; indexes, constraints and foreign keys are being built.
    Finalizing,
    /// Built; its ranges are being compared.
    Verifying,
    /// Reached its final status.
    Done,
}

/// Seconds a table spent in each phase in this execution (a phase in progress counts up to
/// now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Creating or checking the target table.
    pub prepare: f64,
    /// From its first chunk to its last.
    pub copy: f64,
    /// Indexes, constraints, foreign keys, sequences.
    pub finalize: f64,
    /// Comparing ranges and the sample.
    pub verify: f64,
}

impl PhaseSeconds {
    fn slot(&mut self, phase: TablePhase) -> Option<&mut f64> {
        match phase {
            TablePhase::Preparing => Some(&mut self.prepare),
            TablePhase::Copying => Some(&mut self.copy),
            TablePhase::Finalizing => Some(&mut self.finalize),
            TablePhase::Verifying => Some(&mut self.verify),
            TablePhase::Waiting | TablePhase::Done => None,
        }
    }
}

/// One table's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableProgress {
    /// The table.
    pub table: TableName,
    /// Status.
    pub status: TableStatus,
    /// Phase in this execution.
    pub phase: TablePhase,
    /// Time spent per phase in this execution.
    pub phase_seconds: PhaseSeconds,
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
    /// Seconds left, once there is a rate: the rows still to copy at the measured copy rate,
    /// plus each unfinished table's finalize and verification at the rates measured on the
    /// tables that went through them (estimated from the copy rate until one has), spread over
    /// the tables that go through them side by side (the run's parallelism).
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

/// Progress plus what updating it needs.
#[derive(Default)]
struct State {
    progress: Progress,
    /// Table → position in `progress.tables`.
    index: BTreeMap<TableName, usize>,
    /// Table → chunks in flight.
    active: BTreeMap<TableName, u32>,
    /// Table → when its current phase started.
    since: BTreeMap<TableName, Instant>,
    /// Whether tables are verified after the copy (for the estimate).
    verifying: bool,
    /// Tables finalized and verified side by side at most (for the estimate).
    lanes: usize,
}

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
                state: Mutex::new(State::default()),
                started: now,
                last: Mutex::new(now),
                tx,
            },
            rx,
        )
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The run's tables; `verifying`: whether they are verified after the copy; `lanes`: how
    /// many are finalized and verified side by side at most.
    pub(crate) fn set_tables(&self, tables: Vec<TableProgress>, verifying: bool, lanes: usize) {
        self.with(|s| {
            s.verifying = verifying;
            s.lanes = lanes.max(1);
            s.index = tables
                .iter()
                .enumerate()
                .map(|(i, t)| (t.table.clone(), i))
                .collect();
            let p = &mut s.progress;
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
        self.with(|s| s.progress.bytes_total = bytes);
    }

    pub(crate) fn phase(&self, phase: Phase) {
        self.with(|s| s.progress.phase = phase);
        self.publish(true);
    }

    /// Moves `table` into `phase`, adding the time since its last change to the phase it
    /// leaves; once the copy started, the run's phase follows the least advanced unfinished
    /// table.
    pub(crate) fn table_phase(&self, table: &TableName, phase: TablePhase) {
        let now = Instant::now();
        self.with(|s| {
            let Some(t) = s
                .index
                .get(table)
                .and_then(|&i| s.progress.tables.get_mut(i))
            else {
                return;
            };
            if let Some(since) = s.since.insert(table.clone(), now) {
                if let Some(slot) = t.phase_seconds.slot(t.phase) {
                    *slot += now.duration_since(since).as_secs_f64();
                }
            }
            t.phase = phase;
            let p = &mut s.progress;
            if matches!(
                p.phase,
                Phase::Loading | Phase::Finalizing | Phase::Verifying
            ) {
                let unfinished = |t: &&TableProgress| {
                    matches!(t.status, TableStatus::Pending | TableStatus::Running)
                        && t.phase < TablePhase::Done
                };
                // Tables with chunks still to copy (waiting ones included) keep the run loading.
                let loading = p
                    .tables
                    .iter()
                    .filter(unfinished)
                    .any(|t| t.phase <= TablePhase::Copying && t.chunks_done < t.chunks_total);
                let after = p
                    .tables
                    .iter()
                    .filter(unfinished)
                    .map(|t| t.phase)
                    .filter(|ph| *ph >= TablePhase::Finalizing)
                    .min();
                p.phase = match (loading, after) {
                    (true, _) => Phase::Loading,
                    (false, Some(TablePhase::Finalizing)) => Phase::Finalizing,
                    (false, Some(TablePhase::Verifying)) => Phase::Verifying,
                    // Every table settled: what follows (views, grants) keeps the last phase.
                    _ => p.phase,
                };
            }
        });
        self.publish(true);
    }

    pub(crate) fn paused(&self, paused: bool) {
        self.with(|s| s.progress.paused = paused);
        self.publish(true);
    }

    /// Rows and bytes moved (negative after a failed attempt rolls its rows back).
    pub(crate) fn rows(&self, table: &TableName, rows: i64, bytes: i64) {
        self.with(|s| {
            let p = &mut s.progress;
            p.rows_done = p.rows_done.saturating_add_signed(rows);
            p.bytes_done = p.bytes_done.saturating_add_signed(bytes);
            if let Some(t) = s.index.get(table).and_then(|&i| p.tables.get_mut(i)) {
                t.rows_done = t.rows_done.saturating_add_signed(rows);
                t.bytes_done = t.bytes_done.saturating_add_signed(bytes);
            }
        });
        self.publish(false);
    }

    /// A chunk of `table` started: its copy phase starts with its first chunk (a table
    /// whose parents are done but that waits for a worker is still waiting).
    pub(crate) fn chunk_started(&self, table: &TableName) {
        let first = self.with(|s| {
            *s.active.entry(table.clone()).or_insert(0) += 1;
            s.progress.active_tables = s.active.keys().cloned().collect();
            s.index
                .get(table)
                .and_then(|&i| s.progress.tables.get(i))
                .is_some_and(|t| t.phase < TablePhase::Copying)
        });
        if first {
            self.table_phase(table, TablePhase::Copying);
        }
    }

    pub(crate) fn chunk_ended(&self, table: &TableName, completed: bool) {
        self.with(|s| {
            if let Some(n) = s.active.get_mut(table) {
                *n -= 1;
                if *n == 0 {
                    s.active.remove(table);
                }
            }
            let p = &mut s.progress;
            p.active_tables = s.active.keys().cloned().collect();
            if completed {
                p.chunks_done += 1;
                if let Some(t) = s.index.get(table).and_then(|&i| p.tables.get_mut(i)) {
                    t.chunks_done += 1;
                }
            }
        });
        self.publish(true);
    }

    pub(crate) fn table_status(&self, table: &TableName, status: TableStatus) {
        self.with(|s| {
            if let Some(t) = s
                .index
                .get(table)
                .and_then(|&i| s.progress.tables.get_mut(i))
            {
                t.status = status;
            }
        });
        self.publish(true);
    }

    pub(crate) fn retry(&self) {
        self.with(|s| s.progress.retries += 1);
    }

    pub(crate) fn api_calls(&self, n: u64) {
        self.with(|s| s.progress.api_calls += n);
    }

    pub(crate) fn in_flight(&self, bytes: u64) {
        self.with(|s| s.progress.in_flight_bytes = bytes);
    }

    pub(crate) fn snapshot(&self) -> Progress {
        let elapsed = self.started.elapsed();
        let now = Instant::now();
        self.with(|s| {
            let mut p = s.progress.clone();
            // The phase each table is in counts up to now.
            for t in &mut p.tables {
                if let (Some(since), Some(slot)) =
                    (s.since.get(&t.table), t.phase_seconds.slot(t.phase))
                {
                    *slot += now.duration_since(*since).as_secs_f64();
                }
            }
            compute_rates(&mut p, elapsed, s.verifying, s.lanes);
            p
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

fn compute_rates(p: &mut Progress, elapsed: Duration, verifying: bool, lanes: usize) {
    let secs = elapsed.as_secs_f64();
    p.elapsed_secs = secs;
    if secs > 0.0 {
        p.rows_per_sec = p.rows_done.saturating_sub(p.rows_before) as f64 / secs;
        p.mb_per_sec = p.bytes_done.saturating_sub(p.bytes_before) as f64 / 1e6 / secs;
    }
    p.eta_secs = (p.rows_per_sec > 0.0).then(|| {
        let copy = p.rows_total.saturating_sub(p.rows_done) as f64 / p.rows_per_sec;
        copy + after_copy_secs(p, verifying) / lanes.max(1) as f64
    });
}

impl Progress {
    /// Seconds of finalize and verification still ahead of the unfinished tables, one after
    /// another, at the rates measured so far (see [`Progress::eta_secs`]); `rows_per_sec` must
    /// be set.
    pub fn after_copy_secs(&self, verifying: bool) -> f64 {
        after_copy_secs(self, verifying)
    }
}

/// Rows per second a phase went through, measured on the tables that finished it in this
/// execution; `None` before one has.
fn measured_rate(p: &Progress, past: TablePhase, secs: fn(&PhaseSeconds) -> f64) -> Option<f64> {
    let (rows, time) = p
        .tables
        .iter()
        .filter(|t| {
            t.phase > past && t.status != TableStatus::Failed && secs(&t.phase_seconds) > 0.0
        })
        .fold((0u64, 0.0), |(r, s), t| {
            (r + t.rows_done, s + secs(&t.phase_seconds))
        });
    (time > 0.0 && rows > 0).then(|| rows as f64 / time)
}

/// Seconds of finalize and verification still ahead of the unfinished tables. Until a table
/// has gone through a phase, its rate is guessed from the copy rate (building indexes and
/// reading a table back both take a fraction of copying it). A phase that has run longer than
/// its estimate still counts a quarter of its elapsed time: it is not done, so never 0 s.
fn after_copy_secs(p: &Progress, verifying: bool) -> f64 {
    let finalize =
        measured_rate(p, TablePhase::Finalizing, |s| s.finalize).unwrap_or(p.rows_per_sec * 2.0);
    let verify =
        measured_rate(p, TablePhase::Verifying, |s| s.verify).unwrap_or(p.rows_per_sec * 3.0);
    let left = |rows: u64, rate: f64, spent: f64| {
        let whole = rows as f64 / rate.max(1.0);
        (whole - spent).max(spent * 0.25)
    };
    p.tables
        .iter()
        .filter(|t| {
            t.phase < TablePhase::Done
                && matches!(t.status, TableStatus::Pending | TableStatus::Running)
        })
        .map(|t| {
            let rows = t.rows_total.max(t.rows_done);
            let s = &t.phase_seconds;
            let f = match t.phase {
                TablePhase::Finalizing => left(rows, finalize, s.finalize),
                ph if ph < TablePhase::Finalizing => left(rows, finalize, 0.0),
                _ => 0.0,
            };
            let v = match t.phase {
                _ if !verifying => 0.0,
                TablePhase::Verifying => left(rows, verify, s.verify),
                ph if ph < TablePhase::Verifying => left(rows, verify, 0.0),
                _ => 0.0,
            };
            f + v
        })
        .sum()
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
        compute_rates(&mut p, Duration::from_secs(2), false, 1);
        assert_eq!(p.rows_per_sec, 100.0);
        assert_eq!(p.mb_per_sec, 1.0);
        assert_eq!(p.eta_secs, Some(2.0));
    }

    fn table(name: &str, phase: TablePhase, rows: u64, secs: PhaseSeconds) -> TableProgress {
        TableProgress {
            table: TableName::parse(name),
            status: match phase {
                TablePhase::Done => TableStatus::Completed,
                _ => TableStatus::Running,
            },
            phase,
            phase_seconds: secs,
            rows_done: rows,
            rows_total: rows,
            bytes_done: 0,
            chunks_done: 0,
            chunks_total: 0,
        }
    }

    #[test]
    fn the_eta_counts_the_finalize_and_verification_still_ahead() {
        // Every row copied: the ETA is what the last table's index build and comparison need
        // at the rates the first table went through them (1000 rows: 1 s and 0.5 s).
        let done = PhaseSeconds {
            copy: 2.0,
            finalize: 1.0,
            verify: 0.5,
            ..Default::default()
        };
        let building = PhaseSeconds {
            copy: 4.0,
            finalize: 0.5,
            ..Default::default()
        };
        let mut p = Progress {
            rows_done: 3000,
            rows_total: 3000,
            tables: vec![
                table("a", TablePhase::Done, 1000, done),
                table("b", TablePhase::Finalizing, 2000, building),
            ],
            ..Default::default()
        };
        compute_rates(&mut p, Duration::from_secs(6), true, 1);
        // b: 2 s of finalize at 1000 rows/s, 0.5 s spent; then 1 s of verification.
        let eta = p.eta_secs.unwrap();
        assert!((eta - 2.5).abs() < 1e-9, "{eta}");
        // Without verification only the finalize is ahead.
        compute_rates(&mut p, Duration::from_secs(6), false, 1);
        assert!((p.eta_secs.unwrap() - 1.5).abs() < 1e-9);
        // A build running past its estimate still counts a quarter of its time: never 0 s.
        p.tables[1].phase_seconds.finalize = 8.0;
        compute_rates(&mut p, Duration::from_secs(6), false, 1);
        assert!((p.eta_secs.unwrap() - 2.0).abs() < 1e-9);
    }
}

//! What the CLI shows: progress (bars on a terminal, plain lines otherwise, JSON lines on
//! request) and the operator progress report.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use migrate_core::executor::{PhaseSeconds, Progress as Snapshot, TablePhase, TableProgress};
use migrate_core::{CheckpointStore, ChunkStatus, Error, RunStatus, TableStatus};
use serde::Serialize;
use tokio::sync::watch;

/// Renders progress until [`Progress::finish`].
pub struct Progress {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn eta(p: &Snapshot) -> String {
    p.eta_secs.map_or("-".into(), |s| {
        if s < 120.0 {
            format!("{s:.0}s")
        } else {
            format!("{:.1}m", s / 60.0)
        }
    })
}

/// The run's phase and, once tables are past their copy, which ones are being built upon or
/// compared: so an operator sees work going on while the row count sits at its total.
fn phases(p: &Snapshot) -> String {
    let of = |ph: TablePhase| {
        p.tables
            .iter()
            .filter(|t| t.phase == ph)
            .map(|t| t.table.to_string())
            .collect::<Vec<_>>()
    };
    let mut s = format!("{:?}", p.phase).to_lowercase();
    for (ph, what) in [
        (TablePhase::Finalizing, "indexes"),
        (TablePhase::Verifying, "verifying"),
    ] {
        let tables = of(ph);
        if !tables.is_empty() {
            s.push_str(&format!("  {what}: {}", tables.join(", ")));
        }
    }
    s
}

impl Progress {
    /// Starts rendering `rx`: JSON lines when `json`, bars when `tty`, else a plain line every
    /// few seconds. Everything goes to stderr except JSON lines (stdout, for piping).
    pub fn start(mut rx: watch::Receiver<Snapshot>, json: bool, tty: bool) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let bar = (tty && !json).then(|| {
                let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            let every = if json {
                Duration::from_secs(1)
            } else if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
                let p = rx.borrow_and_update().clone();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "progress", "progress": p})
                    );
                } else if let Some(b) = &bar {
                    b.set_length(p.rows_total.max(p.rows_done));
                    b.set_position(p.rows_done);
                    let active: Vec<String> =
                        p.active_tables.iter().map(|t| t.to_string()).collect();
                    b.set_message(format!(
                        "{:.1} MB  {:.1} MB/s  ETA {}  chunks {}/{}{}\n  {}{}",
                        p.bytes_done as f64 / 1e6,
                        p.mb_per_sec,
                        eta(&p),
                        p.chunks_done,
                        p.chunks_total,
                        if p.paused { "  PAUSED" } else { "" },
                        phases(&p),
                        if active.is_empty() {
                            String::new()
                        } else {
                            format!("\n  active: {}", active.join(", "))
                        }
                    ));
                } else if p.chunks_total > 0 {
                    eprintln!(
                        "{:>5.1}%  {}/{} rows  {}/{} chunks  {:.1} MB/s  ETA {}{}  {}",
                        if p.rows_total > 0 {
                            p.rows_done as f64 * 100.0 / p.rows_total as f64
                        } else {
                            0.0
                        },
                        p.rows_done,
                        p.rows_total,
                        p.chunks_done,
                        p.chunks_total,
                        p.mb_per_sec,
                        eta(&p),
                        if p.paused { " (paused)" } else { "" },
                        phases(&p)
                    );
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        Progress { stop, task }
    }

    /// Stops rendering.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A run's progress in the operator progress report's terms.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Execution id.
    pub run: String,
    /// Run status.
    pub status: String,
    /// Tables in the run.
    pub tables_total: usize,
    /// Tables completed.
    pub tables_completed: usize,
    /// Tables with work in progress.
    pub in_progress: Vec<String>,
    /// What each table in progress is doing: `copying`, `finalizing` (indexes, constraints,
    /// foreign keys) or `verifying`.
    pub phases: Vec<(String, String)>,
    /// Completed tables with when they finished.
    pub completed: Vec<(String, Option<DateTime<Utc>>)>,
    /// Failed tables with their errors.
    pub failed: Vec<(String, String)>,
    /// Deferred tables with reasons.
    pub deferred: Vec<(String, String)>,
    /// Chunks completed.
    pub chunks_done: usize,
    /// Chunks in the plan.
    pub chunks_total: usize,
    /// Rows written.
    pub rows_done: u64,
    /// Seconds left: the rows still to copy at the rate chunks were copied, plus the finalize
    /// and verification of unfinished tables at the rates tables went through them.
    pub eta_secs: Option<f64>,
    /// Chunk attempts (reads and writes issued), shown as the report's API calls.
    pub chunk_attempts: u64,
}

/// Builds the status of `migration`'s latest run from the store.
/// `verifying`: whether the configuration verifies tables after their copy (for the ETA).
pub async fn status(
    store: &dyn CheckpointStore,
    migration: &str,
    verifying: bool,
) -> Result<Option<Status>, Error> {
    let Some(run) = store.latest_run(migration).await? else {
        return Ok(None);
    };
    let tables = store.tables(&run.id).await?;
    let chunks = store.chunks(&run.id).await?;
    let done: Vec<_> = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Completed)
        .collect();
    let rows_done: u64 = done.iter().map(|c| c.rows).sum();
    let ms: u64 = done.iter().filter_map(|c| c.duration_ms).sum();
    let left: u64 = chunks
        .iter()
        .filter(|c| !matches!(c.status, ChunkStatus::Completed | ChunkStatus::Skipped))
        .map(|c| c.estimated_rows)
        .sum();
    let rate = if ms > 0 {
        rows_done as f64 * 1000.0 / ms as f64
    } else {
        0.0
    };
    let by = |s: TableStatus| tables.iter().filter(move |t| t.status == s);
    // Only a running run is processing tables and heading for a finish.
    let live = run.status == RunStatus::Running;
    let events = store.events(&run.id).await?;
    let progress = stored_progress(&tables, &chunks, &events, rate);
    let phases: Vec<(String, String)> = progress
        .tables
        .iter()
        .filter(|t| live && t.status == TableStatus::Running)
        .map(|t| (t.table.to_string(), format!("{:?}", t.phase).to_lowercase()))
        .collect();
    let after_copy = progress.after_copy_secs(verifying);
    Ok(Some(Status {
        run: run.id.to_string(),
        status: run.status.as_str().to_string(),
        tables_total: tables.len(),
        tables_completed: by(TableStatus::Completed).count(),
        in_progress: by(TableStatus::Running)
            .filter(|_| live)
            .map(|t| t.table.to_string())
            .collect(),
        completed: by(TableStatus::Completed)
            .map(|t| (t.table.to_string(), t.finished_at))
            .collect(),
        failed: by(TableStatus::Failed)
            .map(|t| (t.table.to_string(), t.reason.clone().unwrap_or_default()))
            .collect(),
        deferred: by(TableStatus::Deferred)
            .map(|t| (t.table.to_string(), t.reason.clone().unwrap_or_default()))
            .collect(),
        chunks_done: done.len(),
        chunks_total: chunks.len(),
        rows_done,
        phases,
        eta_secs: (live && rate > 0.0).then(|| left as f64 / rate + after_copy),
        chunk_attempts: chunks.iter().map(|c| u64::from(c.attempts)).sum(),
    }))
}

/// Each table's phase and time per phase as the store's audit trail tells them: a table's
/// `table.finalizing` and `table.verifying` events start those phases, its end (or now) ends
/// the last one.
fn stored_progress(
    tables: &[migrate_core::TableRecord],
    chunks: &[migrate_core::ChunkRecord],
    events: &[migrate_core::AuditEvent],
    rows_per_sec: f64,
) -> Snapshot {
    let now = Utc::now();
    let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds().max(0) as f64 / 1e3;
    let tables = tables
        .iter()
        .map(|t| {
            let mine = |a: &str| {
                events
                    .iter()
                    .filter(|e| e.table.as_ref() == Some(&t.table) && e.action == a)
                    .map(|e| e.at)
                    .max()
            };
            // A verification before the latest finalize belongs to an earlier attempt.
            let fin = mine("table.finalizing");
            let ver = mine("table.verifying").filter(|v| fin.is_some_and(|f| *v >= f));
            let end = match t.status {
                TableStatus::Running | TableStatus::Pending => now,
                _ => t.finished_at.unwrap_or(now),
            };
            let mut phase_seconds = PhaseSeconds::default();
            if let Some(f) = fin {
                phase_seconds.finalize = secs(f, ver.unwrap_or(end));
            }
            if let Some(v) = ver {
                phase_seconds.verify = secs(v, end);
            }
            let phase = match (t.status, fin, ver) {
                (TableStatus::Running, _, Some(_)) => TablePhase::Verifying,
                (TableStatus::Running, Some(_), None) => TablePhase::Finalizing,
                (TableStatus::Running, None, None) => TablePhase::Copying,
                (TableStatus::Pending, ..) => TablePhase::Waiting,
                _ => TablePhase::Done,
            };
            let rows_done = chunks
                .iter()
                .filter(|c| c.table == t.table && c.status == ChunkStatus::Completed)
                .map(|c| c.rows)
                .sum();
            TableProgress {
                table: t.table.clone(),
                status: t.status,
                phase,
                phase_seconds,
                rows_done,
                rows_total: t.total_rows,
                bytes_done: 0,
                chunks_done: 0,
                chunks_total: 0,
            }
        })
        .collect();
    Snapshot {
        rows_per_sec,
        tables,
        ..Default::default()
    }
}

impl Status {
    /// The operator progress report as text (`MIGRATION PROGRESS` …).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "MIGRATION PROGRESS\n==================\nRun: {} ({})\nCurrent Status: {} of {} tables completed\n",
            self.run, self.status, self.tables_completed, self.tables_total
        );
        s.push_str(&format!(
            "Current Tables Being Processed: {}\n",
            if self.phases.is_empty() {
                "-".into()
            } else {
                self.phases
                    .iter()
                    .map(|(t, p)| format!("{t} ({p})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        s.push_str("Tables Successfully Migrated:\n");
        for (t, at) in &self.completed {
            s.push_str(&format!(
                "  - {t} ({})\n",
                at.map_or("-".into(), |a| a.to_rfc3339())
            ));
        }
        s.push_str("Failed Tables:\n");
        for (t, e) in &self.failed {
            s.push_str(&format!("  - {t}: {e}\n"));
        }
        if !self.deferred.is_empty() {
            s.push_str("Deferred Tables:\n");
            for (t, r) in &self.deferred {
                s.push_str(&format!("  - {t}: {r}\n"));
            }
        }
        s.push_str(&format!(
            "Chunks: {} of {} completed, {} rows\n",
            self.chunks_done, self.chunks_total, self.rows_done
        ));
        s.push_str(&format!(
            "Estimated Time Remaining: {}\n",
            self.eta_secs.map_or("-".into(), |e| format!("{e:.0}s"))
        ));
        s.push_str(&format!(
            "API Calls Made: {} chunk attempts\n",
            self.chunk_attempts
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::{AuditEvent, ChunkRecord, ChunkSpec, TableName, TableRecord};

    #[test]
    fn status_reads_each_running_tables_phase_and_time_from_the_audit_trail() {
        let name = |n: &str| TableName::parse(n);
        let record = |n: &str, status| TableRecord {
            status,
            ..TableRecord::pending(name(n), 1000)
        };
        let tables = [
            record("public.done", TableStatus::Completed),
            record("public.building", TableStatus::Running),
            record("public.copying", TableStatus::Running),
        ];
        let copied = |n: &str| {
            let mut c = ChunkRecord::pending(&ChunkSpec::whole_table(name(n), 1000));
            c.status = ChunkStatus::Completed;
            c.rows = 1000;
            c
        };
        let chunks = [copied("public.done"), copied("public.building")];
        let ago = |s: i64| Utc::now() - chrono::Duration::seconds(s);
        let event = |action: &str, table: &str, at| AuditEvent {
            at,
            ..AuditEvent::new(action, "").on(&name(table), None)
        };
        let events = [
            event("table.finalizing", "public.done", ago(30)),
            event("table.verifying", "public.done", ago(20)),
            event("table.finalizing", "public.building", ago(5)),
        ];
        let mut tables = tables.to_vec();
        tables[0].finished_at = Some(ago(10));
        let p = stored_progress(&tables, &chunks, &events, 100.0);
        let phase = |n: &str| {
            p.tables
                .iter()
                .find(|t| t.table == name(n))
                .map(|t| t.phase)
        };
        assert_eq!(phase("public.done"), Some(TablePhase::Done));
        assert_eq!(phase("public.building"), Some(TablePhase::Finalizing));
        assert_eq!(phase("public.copying"), Some(TablePhase::Copying));
        let done = p.tables[0].phase_seconds;
        assert!((done.finalize - 10.0).abs() < 0.5 && (done.verify - 10.0).abs() < 0.5);
        // Ahead: the rest of public.building's build (5 s) and its verification (10 s), and all
        // of public.copying's (20 s) — at the rates public.done went through them (100 rows/s).
        let ahead = p.after_copy_secs(true);
        assert!((ahead - 35.0).abs() < 1.0, "{ahead}");
    }
}

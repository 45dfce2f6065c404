//! Scripted failures for the in-memory backends: fail the n-th operation with a chosen error
//! kind, fail after part of a chunk was written, add latency.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// The operations faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `Source::read_chunk` / `read_changes` (the fault fires while streaming).
    Read,
    /// `Sink::write_chunk` / `upsert`.
    Write,
    /// `checksum` on either side.
    Checksum,
    /// `Sink::prepare`.
    Prepare,
    /// `Sink::describe`.
    Describe,
}

/// One scripted failure.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Which operation.
    pub op: Op,
    /// Which occurrence (1-based, counted per operation across all tables).
    pub nth: u64,
    /// The error returned.
    pub kind: ErrorKind,
    /// For reads and writes: rows that get through before the failure (a partial chunk).
    pub after_rows: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<FaultRule>,
    counts: HashMap<Op, u64>,
    latency: Duration,
}

/// A shared script of failures; clone the `Arc` into the backends that should obey it.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Faults::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock is a test bug; keep going with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the `nth` occurrence of `op` at its start.
    pub fn fail_nth(&self, op: Op, nth: u64, kind: ErrorKind) -> &Self {
        self.fail_nth_after(op, nth, 0, kind)
    }

    /// Fails the `nth` occurrence of `op` after `after_rows` rows went through.
    pub fn fail_nth_after(&self, op: Op, nth: u64, after_rows: usize, kind: ErrorKind) -> &Self {
        self.lock().rules.push(FaultRule {
            op,
            nth,
            kind,
            after_rows,
        });
        self
    }

    /// Answers the `nth` occurrence of `op` with a rate-limit error carrying `retry_after`.
    pub fn rate_limit_nth(&self, op: Op, nth: u64, retry_after: Option<Duration>) -> &Self {
        self.fail_nth(op, nth, ErrorKind::RateLimited { retry_after })
    }

    /// Answers the `nth` occurrence of `op` with a quota error.
    pub fn quota_nth(&self, op: Op, nth: u64) -> &Self {
        self.fail_nth(op, nth, ErrorKind::Quota)
    }

    /// Adds `latency` before every operation.
    pub fn set_latency(&self, latency: Duration) -> &Self {
        self.lock().latency = latency;
        self
    }

    /// How many times `op` has started.
    pub fn count(&self, op: Op) -> u64 {
        self.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// Counts one occurrence of `op`, sleeps the latency, and returns the fault scripted for
    /// it, if any, as (rows to let through, error).
    pub async fn begin(&self, op: Op) -> Option<(usize, Error)> {
        let (latency, hit) = {
            let mut s = self.lock();
            let n = {
                let c = s.counts.entry(op).or_insert(0);
                *c += 1;
                *c
            };
            let hit = s.rules.iter().find(|r| r.op == op && r.nth == n).map(|r| {
                let e = Error::new(r.kind, format!("injected {:?} fault #{n}", op));
                (r.after_rows, e)
            });
            (s.latency, hit)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        hit
    }
}

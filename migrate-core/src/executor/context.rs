//! What the coordinator, the chunk workers and verification share: the run's context and
//! each table's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::budget::MemoryBudget;
use super::config::ExecutorConfig;
use super::pipe::KeySample;
use super::progress::Tracker;
use crate::checkpoint::{AuditEvent, CheckpointStore, RunId};
use crate::schema::TableInfo;
use crate::sink::Sink;
use crate::source::Source;
use crate::transform::Transform;
use crate::value::Value;

/// A table as the executor carries it.
pub(crate) struct TableCtx {
    pub(crate) info: TableInfo,
    /// The table as the sink sees it (schema after transforms).
    pub(crate) target: TableInfo,
    pub(crate) transforms: Vec<Arc<dyn Transform>>,
    pub(crate) sample: Mutex<KeySample>,
    /// Incremental: cursor column and the upper bound fixed at the start.
    pub(crate) cursor: Option<(String, usize, Option<Value>)>,
    /// Parent span of the table's chunk and verification spans.
    pub(crate) span: tracing::Span,
    /// Chunks are upserted by key rather than replacing their range (`Prepared::merge`).
    pub(crate) merge: std::sync::atomic::AtomicBool,
}

/// Shared by the coordinator and the chunk tasks.
pub(crate) struct Ctx {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) cfg: ExecutorConfig,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) cancel: CancellationToken,
    pub(crate) run: RunId,
    pub(crate) api_calls: AtomicU64,
    pub(crate) batch_rows: usize,
    pub(crate) throttle: Option<crate::executor::throttle::Throttle>,
}

impl Ctx {
    pub(crate) fn call(&self) {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        self.tracker.api_calls(1);
    }

    pub(crate) async fn audit(&self, event: AuditEvent) {
        self.call();
        let event = AuditEvent {
            actor: Some(self.cfg.worker_id.clone()),
            ..event
        };
        if let Err(e) = self.store.append_event(&self.run, &event).await {
            warn!(error = %e, "could not record audit event {}", event.action);
        }
    }
}

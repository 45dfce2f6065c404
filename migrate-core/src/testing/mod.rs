//! Test support, behind the `testing` feature: in-memory backends with fault injection, fixture
//! data, and the conformance suites every `Source`, `Sink` and `CheckpointStore` must pass.
//!
//! The in-memory backends are for the core's own tests and for fault injection; they are never a
//! substitute for a backend's tests against its real server.

// The suites are assertions: panicking with a message is how they report a broken contract.
#[allow(clippy::expect_used)]
mod conformance_checkpoint;
#[allow(clippy::expect_used)]
mod conformance_sink;
#[allow(clippy::expect_used)]
mod conformance_source;
mod faults;
mod fixtures;
mod keys_restored;
mod memory_checkpoint;
mod memory_sink;
mod memory_source;
mod sample;
mod services;

pub use conformance_checkpoint::checkpoint_conformance;
pub use conformance_sink::{sink_conformance, SinkSuite};
pub use conformance_source::{source_conformance, source_fixtures, SourceSuite};
pub use faults::{FaultRule, Faults, Op};
pub use fixtures::{all_types_table, fixture_tables, keyless_table, Fixture};
pub use keys_restored::KeysRestored;
pub use memory_checkpoint::MemoryCheckpointStore;
pub use memory_sink::{MemorySink, WriteLog};
pub use memory_source::{MemorySource, MEMORY_ROWS};
pub use sample::{sample_dataset, SAMPLE_ROWS};
pub use services::{http_request, service_env, services_required, HttpResponse};

//! Helpers shared by the executor tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;
use std::time::Duration;

use migrate_core::executor::{ExecutorConfig, Migration};
use migrate_core::testing::{
    sample_dataset, Faults, Fixture, MemoryCheckpointStore, MemorySink, MemorySource,
};
use migrate_core::{RowChecksum, TableName};

/// In-memory source, sink and store around a set of fixtures, with their fault scripts.
pub struct Rig {
    /// The source's tables and rows.
    pub fixtures: Vec<Fixture>,
    /// The source.
    pub source: Arc<MemorySource>,
    /// The sink.
    pub sink: Arc<MemorySink>,
    /// The checkpoint store (kept across runs, as a resumed process would find it).
    pub store: Arc<MemoryCheckpointStore>,
    /// Faults the source obeys.
    pub source_faults: Arc<Faults>,
    /// Faults the sink obeys.
    pub sink_faults: Arc<Faults>,
}

impl Rig {
    /// The sample e-commerce dataset at `scale`.
    pub fn sample(scale: f64) -> Rig {
        Rig::with(sample_dataset("public", scale))
    }

    /// A rig around `fixtures`.
    pub fn with(fixtures: Vec<Fixture>) -> Rig {
        Rig::build(fixtures, false)
    }

    /// A rig whose source also offers its rows encoded, which the sink then takes as-is (the
    /// executor's pass-through path).
    pub fn encoded(fixtures: Vec<Fixture>) -> Rig {
        Rig::build(fixtures, true)
    }

    fn build(fixtures: Vec<Fixture>, encoded: bool) -> Rig {
        let source_faults = Arc::new(Faults::new());
        let sink_faults = Arc::new(Faults::new());
        let source = MemorySource::with_fixtures(&fixtures, source_faults.clone());
        Rig {
            source: Arc::new(if encoded {
                source.with_encoded_rows()
            } else {
                source
            }),
            sink: Arc::new(MemorySink::new(sink_faults.clone())),
            store: Arc::new(MemoryCheckpointStore::new()),
            fixtures,
            source_faults,
            sink_faults,
        }
    }

    /// A migration over the rig's backends.
    pub fn migration(&self, cfg: ExecutorConfig) -> Migration {
        Migration::new(self.source.clone(), self.sink.clone(), self.store.clone()).with_config(cfg)
    }

    /// Asserts the sink holds exactly the source rows of every fixture table.
    pub fn assert_target_equals_source(&self) {
        for f in &self.fixtures {
            let got = self
                .sink
                .rows(&f.table.name)
                .unwrap_or_else(|| panic!("{} missing in target", f.table.name));
            assert_eq!(got.len(), f.rows.len(), "row count of {}", f.table.name);
            assert_eq!(
                RowChecksum::of_rows(&got),
                RowChecksum::of_rows(&f.rows),
                "checksum of {}",
                f.table.name
            );
            let mut want = f.rows.clone();
            want.sort_by(|a, b| {
                migrate_core::value::cmp_keys(&f.table.schema.key_of(a), &f.table.schema.key_of(b))
            });
            if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "{}: row {i} differs (key {})",
                    f.table.name,
                    migrate_core::value::KeyDisplay(&f.table.schema.key_of(&want[i]))
                );
            }
        }
    }
}

/// Test settings: small chunks and batches, short leases and polls, no jitter.
pub fn cfg(name: &str) -> ExecutorConfig {
    let mut c = ExecutorConfig {
        migration: name.into(),
        chunk_rows: 50,
        batch_rows: 16,
        parallelism: 3,
        control_poll: Duration::from_millis(20),
        lease: Duration::from_millis(300),
        ..Default::default()
    };
    c.retry.jitter = false;
    c
}

/// `public.NAME`.
pub fn t(name: &str) -> TableName {
    TableName::new("public", name)
}

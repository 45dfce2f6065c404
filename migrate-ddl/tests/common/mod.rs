//! What the tests share: the shop fixture, read.
#![allow(dead_code, clippy::unwrap_used)] // each test uses a part

use std::path::Path;

use migrate_ddl::{read_dir, Converted, Options};

/// The fixture folder.
pub fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shop"))
}

/// Reading that lists what sqlparser cannot read (pg_dump's `ALTER SEQUENCE`).
pub fn lenient() -> Options {
    Options {
        skip_unreadable: true,
    }
}

/// The fixture's tables and skipped statements.
pub fn shop() -> Converted {
    read_dir(fixture(), &lenient()).unwrap()
}

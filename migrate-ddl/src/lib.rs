//! # migrate-ddl
//!
//! Schema migrations from a folder of ordered DDL files (a warehouse upload as operators run it: `00_foundation_tables.sql`,
//! `01_*.sql` … applied to a warehouse one table at a time):
//!
//! - [`files`]: the folder's `.sql` files in the order of the numbers their names start with;
//! - [`mod@split`]: each file cut into statements by sqlparser's tokenizer, each with its file,
//!   line and column;
//! - [`mod@convert`]: Postgres `CREATE TABLE`s into migrate's tables — the [`migrate_core::TableInfo`]
//!   discovery would report — through the type mapping the data path uses; what a target
//!   cannot carry is what its sink's `plan_objects` reports;
//! - [`apply`](mod@apply): the tables created through a sink one at a time in file order, each
//!   a checkpointed operation, resumed from the first table not completed, reconciled with
//!   what the target holds, with the migration progress report;
//! - [`render`]: the conversion as a target will carry it, as text (`--dry-run`).

pub mod apply;
pub mod convert;
pub mod files;
pub mod render;
pub mod split;

pub use apply::{apply, progress_text, ApplyConfig, ApplyReport, Event};
pub use convert::{convert, Converted, Options, Skipped, TableDef};
pub use files::{ordered, DdlFile};
pub use render::{dropped, target_columns, target_ddl};
pub use split::{split, Statement};

use std::path::Path;

use migrate_core::{Error, Result};

/// Reads, splits and converts every file of `dir`, in order.
pub fn read_dir(dir: &Path, options: &Options) -> Result<Converted> {
    let mut statements = Vec::new();
    for f in ordered(dir)? {
        let text = std::fs::read_to_string(&f.path)
            .map_err(|e| Error::config(format!("DDL file {}: {e}", f.path.display())))?;
        statements.extend(split(&f.path, &text)?);
    }
    convert(&statements, options)
}

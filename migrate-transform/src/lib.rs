//! # migrate-transform
//!
//! Row transforms for migrate's executor — each a [`migrate_core::Transform`], chainable per
//! table, each declaring its output schema before any row flows (the target table is created
//! from it):
//!
//! - [`Map`]: columns selected, renamed, reordered;
//! - [`Convert`]: a column cast, with a policy for a value that does not convert ([`OnError`]);
//! - [`Compute`]: a derived column, from a Rust closure or an [`Expr`] of the expression
//!   language (parsed by sqlparser and type-checked against the table's columns first);
//! - [`Filter`]: the rows a condition holds for;
//! - [`Lookup`]: columns from reference data ([`Reference`]: a map, or a small table read
//!   once from the source), with a policy for a missing key ([`OnMiss`]);
//! - [`Mask`]: a PII column hashed under a key, redacted, or nulled ([`MaskKind`]);
//! - [`Mappings`]: the common case as data ([`ColumnMapping`]: source → target, type,
//!   required, default);
//! - CUSTOM: any `Transform` of your own, in a [`Chain`] with the others.
//!
//! [`rules`]: validation rules run after the load (ROW_COUNT, COMPLETENESS, ACCURACY,
//! INTEGRITY, CONSISTENCY, CUSTOM) with severities.
//!
//! A row that breaks a step's rule is rejected — its key, the rule and the reason, never its
//! values — and its chunk goes on. No step rewrites or drops a key column: keys name rows
//! across resume, rejection and replay. AGGREGATE is out of scope: chunks are row-level and
//! written idempotently by key range; an aggregate belongs in the target, after the load.

pub mod cast;
mod chain;
pub mod expr;
mod rows;
pub mod rules;
mod steps;

pub use chain::Chain;
pub use expr::{Expr, ExprError};
pub use steps::compute::{Compute, ComputeFn, RowRef};
pub use steps::convert::{Convert, OnError};
pub use steps::filter::Filter;
pub use steps::lookup::{Lookup, OnMiss, Reference, MAX_REFERENCE_ROWS};
pub use steps::map::Map;
pub use steps::mapping::{ColumnMapping, Mappings};
pub use steps::mask::{Mask, MaskKind};

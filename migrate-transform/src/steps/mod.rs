//! The built-in steps, one per file.

pub mod compute;
pub mod convert;
pub mod filter;
pub mod lookup;
pub mod map;
pub mod mapping;
pub mod mask;

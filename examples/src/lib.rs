//! The `migrate` CLI's building blocks (configuration, backends by URL, output, templates),
//! shared with the task-named examples.

pub mod backends;
pub mod config;
pub mod output;
pub mod rejected;
pub mod schema;
pub mod templates;
pub mod transforms;
pub mod validate;

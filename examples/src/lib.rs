//! Shared helpers for the migrate examples and CLI.

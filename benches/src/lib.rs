//! # migrate-benches
//!
//! Not built yet: benchmark harnesses that print migrate's figures next to the tools users would
//! pick instead (psql's binary COPY pipe, pgcopydb), as ratios measured in the same run. See
//! `benches/README.md`.

//! Benchmark harnesses for migrate; see `benches/README.md`.

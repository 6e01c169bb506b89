//! Shared helpers for the flowslab criterion benchmarks (the benches live in `benches/`).

//! Placeholder: replaced by the alloc benchmark.
fn main() {}

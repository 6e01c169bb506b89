//! Placeholder: replaced by the symbolicate benchmark.
fn main() {}

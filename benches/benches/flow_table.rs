//! Placeholder: replaced by the flow_table benchmark.
fn main() {}

//! Cross-crate scenario tests. One integration binary: add topic modules below.

// `crashlog triage` on every flow-table fault's flowsim output (and on a fault-free run).
mod e2e_flowsim;

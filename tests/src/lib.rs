//! Helpers shared by the cross-crate scenario tests in `tests.rs`.

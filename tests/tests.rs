//! Cross-crate scenario tests. One integration binary: add topic modules below.

#![no_main]
//! `alloc_ops`: see `flowslab_fuzz` (fuzz-harness/src) for the body and its oracle.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    flowslab_fuzz::run_target("alloc_ops", data);
});

//! In-crate tests: unit tests and the fork test (not under loom), loom models (under
//! `--cfg loom`, see `ci/loom.sh`).

#[cfg(all(unix, not(miri), not(loom)))]
mod fork;
#[cfg(not(loom))]
mod unit;

#[cfg(loom)]
mod loom_depot;
#[cfg(loom)]
mod loom_fork;
#[cfg(loom)]
mod loom_purge;
#[cfg(loom)]
mod loom_resize;

#[cfg(all(loom, not(debug_assertions)))]
compile_error!("loom models need debug assertions: RUSTFLAGS=\"--cfg loom -C debug-assertions\"");

//! Loom models (compiled only under `--cfg loom`; run them with `ci/loom.sh`).
//!
//! Each model is small (two threads, a handful of operations) so the whole set stays well
//! under two minutes at `LOOM_MAX_PREEMPTIONS=2`.

#[cfg(all(loom, not(debug_assertions)))]
compile_error!("loom models need -C debug-assertions (ci/loom.sh sets it)");

#[cfg(loom)]
mod loom_atfork;
#[cfg(loom)]
mod loom_cuckoo;
#[cfg(loom)]
mod loom_divert;
#[cfg(loom)]
mod loom_owner;
#[cfg(loom)]
mod loom_refcnt;

/// Runs `f` as a loom model with the builder settings from the environment.
#[cfg(loom)]
pub(crate) fn run_model(name: &'static str, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let _ = name;
    b.check(f);
}

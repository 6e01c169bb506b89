//! Fork safety: `pthread_atfork` handlers registered once, when the first cache is created.
//!
//! * **prepare** takes, in this order: the cache-id allocator lock, the registry lock, and
//!   then for every cache in creation order its resize perimeter (`skm_rs_lock`), depot lock
//!   (`skm_dp_lock`), thread-cache list lock, slab lock (`skm_sl_lock`) and report lock.
//!   Ordinary paths never hold two of these at once except in this same order (resize
//!   perimeter → depot, resize perimeter → slab, registry → another cache's slab), so the
//!   prepare step cannot deadlock against them, and once it returns no other thread is
//!   inside any cache critical section.
//! * **postfork-parent** releases everything (reverse order).
//! * **postfork-child** releases everything too: the child's only thread is the one that
//!   took the locks. The thread caches of threads that do not exist in the child keep their
//!   magazines (those objects are counted as cached, never handed out twice); everything
//!   else is usable at once.
//!
//! The per-thread magazine fast path takes no lock at all, so it needs no handler: a thread
//! that was in the middle of it at the fork instant does not exist in the child.

use std::cell::RefCell;
use std::sync::Once;

use crate::registry::{ForkGuard, global};

struct Held {
    // Field order = drop order: cache locks and registry first, then the id allocator.
    _caches: ForkGuard<'static>,
    _ids: crate::sync::ids::Held,
}

std::thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers the handlers (once per process).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    #[cfg(all(unix, not(miri)))]
    ONCE.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions with the signature
        // pthread_atfork expects, valid for the whole process lifetime.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
    #[cfg(not(all(unix, not(miri))))]
    ONCE.call_once(|| {});
}

/// The prepare step, callable directly (tests, or a process that forks by other means).
/// Takes every cache lock of the process; it must be followed by exactly one
/// [`postfork`] on the same thread (calling it twice without one deadlocks).
pub fn prefork() {
    let Some(reg) = global() else { return };
    let ids = crate::sync::ids::hold();
    let caches = reg.prefork();
    let _ = HELD.try_with(|h| {
        *h.borrow_mut() = Some(Held {
            _caches: caches,
            _ids: ids,
        })
    });
}

/// The postfork step (parent and child alike): releases what [`prefork`] took.
pub fn postfork() {
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

#[cfg_attr(any(miri, not(unix)), allow(dead_code))]
extern "C" fn prepare() {
    prefork();
}

#[cfg_attr(any(miri, not(unix)), allow(dead_code))]
extern "C" fn parent() {
    postfork();
}

#[cfg_attr(any(miri, not(unix)), allow(dead_code))]
extern "C" fn child() {
    postfork();
}

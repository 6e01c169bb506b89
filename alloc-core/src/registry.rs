//! The list of live caches (`skmem_cache_lock` + the cache list): used by the fork handlers,
//! by [`crate::skmem_dump_all`] and to attribute a foreign free to the cache that owns it.

use std::sync::OnceLock;

use crate::cache::Inner;
use crate::magazine::Depot;
use crate::report::Report;
use crate::slab::SlabLayer;
use crate::sync::{Arc, Mutex, MutexGuard, lock};

/// A set of caches.
#[derive(Debug)]
pub(crate) struct Registry {
    caches: Mutex<Vec<Arc<Inner>>>,
}

/// The process-global registry (absent under loom, whose models build their own).
pub(crate) fn global() -> Option<&'static Registry> {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    if !crate::sync::GLOBAL_REGISTRY {
        return None;
    }
    let reg = GLOBAL.get_or_init(Registry::new);
    crate::fork::install();
    Some(reg)
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            caches: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn register(&self, inner: &Arc<Inner>) {
        lock(&self.caches).push(inner.clone());
    }

    pub(crate) fn unregister(&self, inner: &Inner) {
        lock(&self.caches).retain(|c| !std::ptr::eq(Arc::as_ptr(c), inner));
    }

    /// Live caches, in registration order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Inner>> {
        lock(&self.caches).clone()
    }

    /// The name of the cache other than `except` whose slabs contain `addr`. The caller must
    /// hold none of `except`'s locks (order: registry before any cache lock).
    pub(crate) fn owner_of(&self, addr: usize, except: &Inner) -> Option<String> {
        let caches = lock(&self.caches);
        caches
            .iter()
            .filter(|c| !std::ptr::eq(Arc::as_ptr(c), except))
            .find(|c| lock(&c.slab).contains(addr).is_some())
            .map(|c| c.name.to_string())
    }

    /// The prefork step: takes every lock of every cache in the documented order
    /// (registry, then per cache in registration order: resize perimeter → depot → thread
    /// cache list → slab → reports) and holds them until the guard is dropped.
    pub(crate) fn prefork(&self) -> ForkGuard<'_> {
        let reg = lock(&self.caches);
        let ptrs: Vec<*const Inner> = reg.iter().map(Arc::as_ptr).collect();
        let caches = ptrs
            .into_iter()
            .map(|p| {
                // SAFETY: the registry holds an Arc to every listed cache and cannot change
                // while we hold its lock; ForkGuard keeps that lock until after it has
                // dropped every per-cache guard borrowed here (see ForkGuard's Drop).
                let inner: &Inner = unsafe { &*p };
                let rs = lock(&inner.rs);
                let depot = lock(&inner.depot);
                let slots = lock(&inner.slots);
                let slab = lock(&inner.slab);
                let reports = lock(&inner.reports);
                CacheLocks {
                    reports,
                    slab,
                    slots,
                    depot,
                    _rs: rs,
                }
            })
            .collect();
        ForkGuard {
            caches,
            _reg: Some(reg),
        }
    }
}

/// Every lock of one cache (fields drop in reverse acquisition order).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct CacheLocks<'a> {
    reports: MutexGuard<'a, Vec<Report>>,
    slab: MutexGuard<'a, SlabLayer>,
    slots: MutexGuard<'a, Vec<Arc<crate::cpu::CpuSlot>>>,
    depot: MutexGuard<'a, Depot>,
    _rs: MutexGuard<'a, ()>,
}

/// Held between prefork and postfork: all cache locks, then the registry lock.
#[derive(Debug)]
pub(crate) struct ForkGuard<'a> {
    caches: Vec<CacheLocks<'a>>,
    _reg: Option<MutexGuard<'a, Vec<Arc<Inner>>>>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl ForkGuard<'_> {
    /// Checks, at the fork instant, that every cache is quiescent and consistent: slab
    /// counters agree with the lists, nothing half-done. Returns a description of the first
    /// violation. (What a child inherits is exactly this state.)
    pub(crate) fn check(&self) -> Result<(), String> {
        for c in &self.caches {
            c.slab.check()?;
            if c.depot.full.len() as u64 != c.depot.full.s.ml_total
                || c.depot.empty.len() as u64 != c.depot.empty.s.ml_total
            {
                return Err("depot ml_total disagrees with its list".into());
            }
            let _ = (&c.reports, &c.slots);
        }
        Ok(())
    }

    /// Number of caches whose locks are held.
    pub(crate) fn len(&self) -> usize {
        self.caches.len()
    }
}

impl Drop for ForkGuard<'_> {
    fn drop(&mut self) {
        // Release caches in reverse order, then the registry (declared last, dropped last).
        while let Some(c) = self.caches.pop() {
            drop(c);
        }
        self._reg.take();
    }
}

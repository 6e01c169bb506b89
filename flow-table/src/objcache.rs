//! The `flow.entry` object cache: where flow entries' backing objects come from.
//!
//! Each flow entry owns one object of the `alloc-core` cache named `flow.entry`
//! (`skc.flow.entry` in the kernel). The raw address is what `SK_KVA(fe)` prints, and
//! `fe_free` returns it with the cache's raw free, so a double release reaches the
//! allocator's real double-free detection and its kernel-worded report.

use std::fmt;

/// What the allocator reported instead of freeing (the kernel would panic with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorReport {
    /// The panic message, e.g. `skmem_slab_free_locked: attempt to free invalid or
    /// already-freed obj 0x… on skm 0x…`.
    pub message: String,
    /// Source location suffix the kernel appends (`@skmem_slab.c:646`).
    pub location: &'static str,
}

impl fmt::Display for AllocatorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.message, self.location)
    }
}

/// Counters read back from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryCacheStats {
    /// Objects currently handed out (the cache's own count of objects held by clients).
    pub in_use: u64,
    /// Successful allocations.
    pub allocs: u64,
    /// Successful frees.
    pub frees: u64,
}

pub use backend::EntryCache;

/// The cache's address as printed (`skm 0x…`).
pub const SKM_KVA: u64 = 0xffff_fe25_18aa_a200;
/// First object address as printed (`SK_KVA(fe)`), then one per 256-byte object.
pub const OBJ_KVA_BASE: u64 = 0xffff_fe29_e15f_2400;

fn skmem_message(obj: u64) -> String {
    format!(
        "skmem_slab_free_locked: attempt to free invalid or already-freed obj {obj:#x} on skm {SKM_KVA:#x}"
    )
}

/// The field build's location of the check (xnu-12377, macOS 26.3).
const FREE_LOCATION: &str = "@skmem_slab.c:646";

#[cfg(not(loom))]
mod backend {
    use std::collections::HashMap;

    use alloc_core::{Cache, CacheConfig, FreeError, Mode, Policy};

    use super::{AllocatorReport, EntryCacheStats, FREE_LOCATION, OBJ_KVA_BASE, skmem_message};
    use crate::sync::Mutex;

    /// The `flow.entry` cache: an `alloc-core` cache in AUDIT mode with the
    /// report-returning policy, so every double or invalid free is caught at the free call
    /// and comes back as the kernel-worded report.
    ///
    /// Objects are shown at stable kernel-style addresses (`SK_KVA`), assigned in order of
    /// first use, so runs are reproducible and a reused object keeps its address.
    pub struct EntryCache {
        cache: Cache,
        addrs: Mutex<AddrMap>,
    }

    #[derive(Default)]
    struct AddrMap {
        kva_of: HashMap<usize, u64>,
        real_of: HashMap<u64, usize>,
        allocs: u64,
        frees: u64,
    }

    impl std::fmt::Debug for EntryCache {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EntryCache")
                .field("cache", &self.cache)
                .field("stats", &self.stats())
                .finish()
        }
    }

    /// Size of one flow entry object.
    pub(crate) const FLOW_ENTRY_OBJ_SIZE: usize = 256;

    impl EntryCache {
        /// Creates `skc.flow.entry` (256-byte objects, 16-byte alignment, AUDIT,
        /// `Policy::Report`).
        pub fn new() -> Self {
            let cache = CacheConfig::new("flow.entry", FLOW_ENTRY_OBJ_SIZE)
                .align(16)
                .mode(Mode::AUDIT)
                .policy(Policy::Report)
                .build()
                .unwrap_or_else(|e| panic!("flow.entry cache configuration: {e}"));
            EntryCache {
                cache,
                addrs: Mutex::new(AddrMap::default()),
            }
        }

        /// The underlying `alloc-core` cache (statistics, dump).
        pub fn cache(&self) -> &Cache {
            &self.cache
        }

        /// Allocates one object, returning its kernel-style address.
        pub fn alloc(&self) -> Option<u64> {
            let p = self.cache.alloc().ok()?;
            let real = p.as_ptr().addr();
            let mut m = self.addrs.lock();
            m.allocs += 1;
            let next = OBJ_KVA_BASE + m.kva_of.len() as u64 * FLOW_ENTRY_OBJ_SIZE as u64;
            let kva = *m.kva_of.entry(real).or_insert(next);
            m.real_of.insert(kva, real);
            Some(kva)
        }

        /// Frees the object at `kva` through the cache's checked raw free; a double or
        /// invalid free returns the allocator's report (kernel wording).
        pub fn free(&self, kva: u64) -> Result<(), AllocatorReport> {
            let real = self.addrs.lock().real_of.get(&kva).copied();
            let Some(real) = real else {
                return Err(AllocatorReport {
                    message: skmem_message(kva),
                    location: FREE_LOCATION,
                });
            };
            // try_free never dereferences the pointer: it validates the address.
            match self.cache.try_free(std::ptr::without_provenance_mut(real)) {
                Ok(()) => {
                    self.addrs.lock().frees += 1;
                    Ok(())
                }
                Err(FreeError::Audit(r)) => {
                    let obj = self.addrs.lock().kva_of.get(&r.obj).copied().unwrap_or(kva);
                    // Same template as r.message(), with the object's kernel-style address.
                    debug_assert!(r.message().starts_with(
                        "skmem_slab_free_locked: attempt to free invalid or already-freed obj"
                    ));
                    Err(AllocatorReport {
                        message: skmem_message(obj),
                        location: FREE_LOCATION,
                    })
                }
                Err(e) => Err(AllocatorReport {
                    message: e.to_string(),
                    location: FREE_LOCATION,
                }),
            }
        }

        /// Statistics: `in_use` is the cache's own count of objects held by clients.
        pub fn stats(&self) -> EntryCacheStats {
            let m = self.addrs.lock();
            EntryCacheStats {
                in_use: self.cache.outstanding(),
                allocs: m.allocs,
                frees: m.frees,
            }
        }
    }

    impl Default for EntryCache {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// Under loom the flow-table models use a small in-crate stand-in with the same
/// detection (alloc-core has its own loom models; exploring its internals here would
/// only blow up the state space).
#[cfg(loom)]
mod backend {
    use super::{AllocatorReport, EntryCacheStats, FREE_LOCATION, OBJ_KVA_BASE, skmem_message};
    use crate::sync::Mutex;
    use std::collections::HashSet;

    /// The `flow.entry` cache (loom stand-in).
    #[derive(Debug)]
    pub struct EntryCache {
        inner: Mutex<Inner>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        live: HashSet<u64>,
        free: Vec<u64>,
        next: u64,
        stats: EntryCacheStats,
    }

    impl EntryCache {
        /// Creates `flow.entry`.
        pub fn new() -> Self {
            EntryCache {
                inner: Mutex::new(Inner {
                    next: OBJ_KVA_BASE,
                    ..Inner::default()
                }),
            }
        }

        /// Allocates one object, returning its address.
        pub fn alloc(&self) -> Option<u64> {
            let mut g = self.inner.lock();
            let a = match g.free.pop() {
                Some(a) => a,
                None => {
                    let a = g.next;
                    g.next += 256;
                    a
                }
            };
            g.live.insert(a);
            g.stats.allocs += 1;
            g.stats.in_use += 1;
            Some(a)
        }

        /// Frees the object at `addr`; a double or invalid free returns the report.
        pub fn free(&self, addr: u64) -> Result<(), AllocatorReport> {
            let mut g = self.inner.lock();
            if !g.live.remove(&addr) {
                return Err(AllocatorReport {
                    message: skmem_message(addr),
                    location: FREE_LOCATION,
                });
            }
            g.free.push(addr);
            g.stats.frees += 1;
            g.stats.in_use -= 1;
            Ok(())
        }

        /// Statistics.
        pub fn stats(&self) -> EntryCacheStats {
            self.inner.lock().stats
        }
    }

    impl Default for EntryCache {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn double_free_is_caught_by_the_alloc_core_cache() {
        let c = EntryCache::new();
        assert_eq!(c.cache().name(), "skc.flow.entry");
        let a = c.alloc().unwrap();
        let b = c.alloc().unwrap();
        assert_ne!(a, b);
        assert_eq!(c.stats().in_use, 2);
        c.free(a).unwrap();
        // The first copy now sits in a magazine; audit mode still catches the second free.
        let e = c.free(a).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "skmem_slab_free_locked: attempt to free invalid or already-freed obj {a:#x} on skm 0xfffffe2518aaa200"
            )
        );
        assert_eq!(e.location, "@skmem_slab.c:646");
        c.free(b).unwrap();
        assert_eq!(c.stats().in_use, 0);
        assert_eq!(c.stats().frees, 2);
        // A reused object keeps its address.
        let r = c.alloc().unwrap();
        assert!(r == a || r == b);
        c.free(r).unwrap();
        // A foreign address is an invalid free.
        assert!(c.free(0xdead_0000).is_err());
    }
}

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
    /// Objects currently handed out.
    pub in_use: u64,
    /// Successful allocations.
    pub allocs: u64,
    /// Successful frees.
    pub frees: u64,
}

pub use backend::EntryCache;

mod backend {
    use super::{AllocatorReport, EntryCacheStats};
    use crate::sync::Mutex;
    use std::collections::HashSet;

    /// The `flow.entry` cache.
    #[derive(Debug)]
    pub struct EntryCache {
        skm: u64,
        inner: Mutex<Inner>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        live: HashSet<u64>,
        free: Vec<u64>,
        next: u64,
        stats: EntryCacheStats,
    }

    /// Size of one flow entry object.
    pub(crate) const FLOW_ENTRY_OBJ_SIZE: u64 = 256;

    impl EntryCache {
        /// Creates `flow.entry`.
        pub fn new() -> Self {
            EntryCache {
                skm: 0xffff_fe25_18aa_a200,
                inner: Mutex::new(Inner {
                    next: 0xffff_fe29_e15f_2400,
                    ..Inner::default()
                }),
            }
        }

        /// The cache's address (`skm 0x…`).
        pub fn skm_addr(&self) -> u64 {
            self.skm
        }

        /// Allocates one object, returning its address.
        pub fn alloc(&self) -> Option<u64> {
            let mut g = self.inner.lock();
            let a = match g.free.pop() {
                Some(a) => a,
                None => {
                    let a = g.next;
                    g.next += FLOW_ENTRY_OBJ_SIZE;
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
                    message: format!(
                        "skmem_slab_free_locked: attempt to free invalid or already-freed obj {addr:#x} on skm {:#x}",
                        self.skm
                    ),
                    location: "@skmem_slab.c:646",
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

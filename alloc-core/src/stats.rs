//! Statistics (`struct sk_stats_cache`) and the `skmem_dump` text.

use std::fmt::Write as _;

use crate::cache::Inner;
use crate::magazine::MagListStats;
use crate::mode::Mode;
use crate::slab::SlabCounters;
use crate::sync::atomic::Ordering;
use crate::sync::lock;

/// A snapshot of one cache's counters, named after `struct sk_stats_cache` (`sca_*`, as
/// filled by `skmem_cache_mib_get_stats`) plus the internal-only fields XNU keeps
/// (`skm_sl_bufmax`, `cp_alloc`/`cp_free`, the depot lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// `sca_name`.
    pub sca_name: String,
    /// `sca_mode`.
    pub sca_mode: Mode,
    /// `sca_bufsize`: the requested object size.
    pub sca_bufsize: u64,
    /// `sca_objsize`: the object size in the slab (= chunk size; there are no regions).
    pub sca_objsize: u64,
    /// `sca_chunksize`.
    pub sca_chunksize: u64,
    /// `sca_slabsize`.
    pub sca_slabsize: u64,
    /// `sca_bufalign`.
    pub sca_bufalign: u64,
    /// `sca_objalign`.
    pub sca_objalign: u64,
    /// `sca_cpu_mag_size`: current rounds per magazine (0 = magazine layer off).
    pub sca_cpu_mag_size: u64,
    /// `sca_cpu_mag_resize`.
    pub sca_cpu_mag_resize: u64,
    /// `sca_cpu_mag_purge`.
    pub sca_cpu_mag_purge: u64,
    /// `sca_cpu_mag_reap`.
    pub sca_cpu_mag_reap: u64,
    /// `sca_depot_full`: full magazines in the depot.
    pub sca_depot_full: u64,
    /// `sca_depot_empty`: empty magazines in the depot.
    pub sca_depot_empty: u64,
    /// `sca_depot_ws_zero`.
    pub sca_depot_ws_zero: u64,
    /// `sca_depot_contention_factor`: contention since the last update, clamped at 0.
    pub sca_depot_contention_factor: u64,
    /// `sca_cpu_rounds`: loaded rounds summed over thread caches (−1 ignored).
    pub sca_cpu_rounds: u64,
    /// `sca_cpu_prounds`: previous-magazine rounds summed over thread caches.
    pub sca_cpu_prounds: u64,
    /// `sca_sl_create`.
    pub sca_sl_create: u64,
    /// `sca_sl_destroy`.
    pub sca_sl_destroy: u64,
    /// `sca_sl_alloc`.
    pub sca_sl_alloc: u64,
    /// `sca_sl_free`.
    pub sca_sl_free: u64,
    /// `sca_sl_alloc_fail`.
    pub sca_sl_alloc_fail: u64,
    /// `sca_sl_partial`.
    pub sca_sl_partial: u64,
    /// `sca_sl_empty` (fully allocated slabs).
    pub sca_sl_empty: u64,
    /// `sca_sl_bufinuse`: buffers in live slabs.
    pub sca_sl_bufinuse: u64,
    /// `sca_sl_rescale`.
    pub sca_sl_rescale: u64,
    /// `sca_sl_hash_size`.
    pub sca_sl_hash_size: u64,
    /// `skm_sl_bufmax` (internal): high-water mark of `sl_bufinuse`.
    pub sl_bufmax: u64,
    /// Objects allocated from slabs (Σ `sl_refcnt`): with clients or cached in magazines.
    pub sl_allocated: u64,
    /// Σ `cp_alloc` (rounds taken from magazines) over thread caches: exact for the thread
    /// taking the snapshot and for exited threads, other live threads as of their last depot
    /// visit.
    pub cpu_alloc: u64,
    /// Σ `cp_free`, likewise.
    pub cpu_free: u64,
    /// Thread caches registered.
    pub cpu_caches: u64,
    /// `skm_full`'s list counters.
    pub depot_full_list: MagListStats,
    /// `skm_empty`'s list counters.
    pub depot_empty_list: MagListStats,
    /// `skm_depot_contention` (failed depot try-locks, DYNAMIC mode).
    pub depot_contention: u64,
}

impl CacheStats {
    pub(crate) fn gather(inner: &Inner) -> CacheStats {
        let contention = inner.contention.load(Ordering::Relaxed);
        // Depot, then thread-cache list (the documented lock order); holding both makes the
        // thread-cache sums consistent with the retired counters.
        let d = lock(&inner.depot);
        let (rounds, prounds, alloc, free, ncpu) = {
            let slots = lock(&inner.slots);
            slots.iter().fold((0u64, 0u64, 0u64, 0u64, 0u64), |acc, s| {
                (
                    acc.0 + s.rounds.load(Ordering::Relaxed).max(0) as u64,
                    acc.1 + s.prounds.load(Ordering::Relaxed).max(0) as u64,
                    acc.2 + s.alloc.load(Ordering::Relaxed),
                    acc.3 + s.free.load(Ordering::Relaxed),
                    acc.4 + 1,
                )
            })
        };
        let factor = (contention.wrapping_sub(d.contention_prev) as i32).max(0) as u64;
        let (c, hash, allocated): (SlabCounters, usize, u64) = {
            let s = lock(&inner.slab);
            (s.c, s.hash_size(), s.allocated)
        };
        let g = inner.geo;
        CacheStats {
            sca_name: inner.name.to_string(),
            sca_mode: inner.mode,
            sca_bufsize: g.bufsize as u64,
            sca_objsize: g.chunksize as u64,
            sca_chunksize: g.chunksize as u64,
            sca_slabsize: g.slabsize as u64,
            sca_bufalign: g.bufalign as u64,
            sca_objalign: g.bufalign as u64,
            sca_cpu_mag_size: u64::from(d.magsize),
            sca_cpu_mag_resize: d.mag_resize,
            sca_cpu_mag_purge: d.mag_purge,
            sca_cpu_mag_reap: d.mag_reap,
            sca_depot_full: d.full.s.ml_total,
            sca_depot_empty: d.empty.s.ml_total,
            sca_depot_ws_zero: d.ws_zero,
            sca_depot_contention_factor: factor,
            sca_cpu_rounds: rounds,
            sca_cpu_prounds: prounds,
            sca_sl_create: c.sl_create,
            sca_sl_destroy: c.sl_destroy,
            sca_sl_alloc: c.sl_alloc,
            sca_sl_free: c.sl_free,
            sca_sl_alloc_fail: c.sl_alloc_fail,
            sca_sl_partial: c.sl_partial,
            sca_sl_empty: c.sl_empty,
            sca_sl_bufinuse: c.sl_bufinuse,
            sca_sl_rescale: c.sl_rescale,
            sca_sl_hash_size: hash as u64,
            sl_bufmax: c.sl_bufmax,
            sl_allocated: allocated,
            cpu_alloc: alloc + d.retired_alloc,
            cpu_free: free + d.retired_free,
            cpu_caches: ncpu,
            depot_full_list: d.full.s,
            depot_empty_list: d.empty.s,
            depot_contention: u64::from(contention),
        }
    }
}

/// The cache block of `skmem_dump` (`skmem.c`), with the mode rendered `0x%b`:
///
/// ```text
/// Cache 0x…
///   | Name         : skc.name
///   | Mode         : 0x22<AUDIT,CLEARONFREE>
///   | Memory       : [bufinuse in use] / [bufmax total]
///   | Transactions : [N alloc failures]
///   |                [N slab creates, N destroys]
///   |                [N slab allocs,  N frees]
/// ```
pub(crate) fn dump_cache(inner: &Inner) -> String {
    let s = CacheStats::gather(inner);
    let mut out = String::new();
    let _ = write!(
        out,
        "Cache {:#x}\n  | Name         : {}\n  | Mode         : 0x{}\n  | Memory       : [{} in use] / [{} total]\n  | Transactions : [{} alloc failures]\n  |                [{} slab creates, {} destroys]\n  |                [{} slab allocs,  {} frees]\n\n",
        std::ptr::from_ref(inner).addr(),
        s.sca_name,
        s.sca_mode,
        s.sca_sl_bufinuse,
        s.sl_bufmax,
        s.sca_sl_alloc_fail,
        s.sca_sl_create,
        s.sca_sl_destroy,
        s.sca_sl_alloc,
        s.sca_sl_free
    );
    out
}

/// `skmem_dump` over every live cache of the process, in creation order.
pub fn skmem_dump_all() -> String {
    let Some(reg) = crate::registry::global() else {
        return String::new();
    };
    reg.snapshot().iter().map(|c| dump_cache(c)).collect()
}

//! Magazines and the depot (`struct skmem_mag`, `struct skmem_maglist`).

use std::ptr::NonNull;

/// A magazine: an array of cached object pointers ("rounds"). The number of valid rounds is
/// kept by its holder (`cp_rounds` / the depot list it sits on), as in XNU.
///
/// A magazine of zero rounds ([`Mag::none`], no allocation) stands for "no magazine" in a
/// thread cache's loaded position, so that the fast path's one bounds check also covers
/// "nothing loaded".
#[derive(Debug)]
pub(crate) struct Mag {
    /// The rounds; entries at or above the holder's round count are stale.
    pub(crate) round: Box<[NonNull<u8>]>,
}

// SAFETY: a magazine only stores addresses of objects owned by its cache; whoever holds the
// magazine (one thread's cache, or the depot under its lock) owns those rounds exclusively.
unsafe impl Send for Mag {}

impl Mag {
    /// An empty magazine of `magsize` rounds.
    pub(crate) fn new(magsize: u32) -> Mag {
        Mag {
            round: vec![NonNull::dangling(); magsize as usize].into_boxed_slice(),
        }
    }

    /// The "no magazine" placeholder (zero rounds; allocates nothing).
    pub(crate) fn none() -> Mag {
        Mag {
            round: Box::new([]),
        }
    }

    /// `Some(self)` unless this is the [`Mag::none`] placeholder.
    pub(crate) fn some(self) -> Option<Mag> {
        (!self.round.is_empty()).then_some(self)
    }

    /// Capacity (`mt_magsize` of its type).
    pub(crate) fn magsize(&self) -> usize {
        self.round.len()
    }
}

/// Depot list statistics (`struct skmem_maglist` without the list).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MagListStats {
    /// `ml_total`: magazines on the list.
    pub ml_total: u64,
    /// `ml_min`: minimum of `ml_total` since the last working-set update.
    pub ml_min: u64,
    /// `ml_reaplimit`: magazines a working-set reap may destroy.
    pub ml_reaplimit: u64,
    /// `ml_alloc`: magazines taken from the list.
    pub ml_alloc: u64,
}

/// One depot list (`skm_full` or `skm_empty`).
#[derive(Debug, Default)]
pub(crate) struct MagList {
    list: Vec<Mag>,
    pub(crate) s: MagListStats,
}

impl MagList {
    /// `skmem_depot_alloc`: takes the head magazine.
    pub(crate) fn alloc(&mut self) -> Option<Mag> {
        let mg = self.list.pop()?;
        self.s.ml_total -= 1;
        if self.s.ml_total < self.s.ml_min {
            self.s.ml_min = self.s.ml_total;
        }
        self.s.ml_alloc += 1;
        Some(mg)
    }

    /// `skmem_depot_free`: puts a magazine at the head.
    pub(crate) fn free(&mut self, mg: Mag) {
        self.list.push(mg);
        self.s.ml_total += 1;
    }

    /// `skmem_depot_ws_update` for this list.
    pub(crate) fn ws_update(&mut self) {
        self.s.ml_reaplimit = self.s.ml_min;
        self.s.ml_min = self.s.ml_total;
    }

    /// `skmem_depot_ws_zero` for this list.
    pub(crate) fn ws_zero(&mut self) {
        self.s.ml_reaplimit = self.s.ml_total;
        self.s.ml_min = self.s.ml_total;
    }

    /// The magazines `skmem_depot_ws_reap` destroys: `MIN(ml_reaplimit, ml_min)` of them.
    pub(crate) fn ws_reap(&mut self) -> Vec<Mag> {
        let n = self.s.ml_reaplimit.min(self.s.ml_min);
        let mut out = Vec::new();
        for _ in 0..n {
            match self.alloc() {
                Some(mg) => out.push(mg),
                None => break,
            }
        }
        out
    }

    /// Number of magazines on the list.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// The depot (`skm_dp_lock`'s data) plus the magazine-layer configuration it governs.
#[derive(Debug)]
pub(crate) struct Depot {
    /// Generation: replaced by purge/resize; thread caches with another one flush first.
    /// Drawn from a process-wide sequence, so it also identifies the cache: the lock-free
    /// fast path compares only this, never the slot's owner.
    pub(crate) generation: u64,
    /// Generation of "drop your previous magazine" requests (`reap_now` without purge).
    pub(crate) pgeneration: u64,
    /// Index into the magazine-type table (`skm_magtype`).
    pub(crate) magtype: usize,
    /// `skm_cpu_mag_size`: rounds per magazine; 0 when the magazine layer is off.
    pub(crate) magsize: u32,
    pub(crate) full: MagList,
    pub(crate) empty: MagList,
    /// `skm_depot_contention_prev`.
    pub(crate) contention_prev: u32,
    /// `skm_depot_ws_zero`.
    pub(crate) ws_zero: u64,
    /// `skm_cpu_mag_resize`.
    pub(crate) mag_resize: u64,
    /// `skm_cpu_mag_purge`.
    pub(crate) mag_purge: u64,
    /// `skm_cpu_mag_reap`.
    pub(crate) mag_reap: u64,
    /// `cp_alloc` / `cp_free` of thread caches that are gone.
    pub(crate) retired_alloc: u64,
    pub(crate) retired_free: u64,
}

impl Depot {
    pub(crate) fn new(magtype: usize, magsize: u32) -> Depot {
        Depot {
            generation: crate::sync::ids::next_generation(),
            pgeneration: 0,
            magtype,
            magsize,
            full: MagList::default(),
            empty: MagList::default(),
            contention_prev: 0,
            ws_zero: 0,
            mag_resize: 0,
            mag_purge: 0,
            mag_reap: 0,
            retired_alloc: 0,
            retired_free: 0,
        }
    }

    /// `skmem_depot_ws_zero`.
    pub(crate) fn ws_zero(&mut self) {
        self.full.ws_zero();
        self.empty.ws_zero();
        self.ws_zero += 1;
    }

    /// `skmem_depot_ws_reap`: (full magazines, empty magazines) to destroy outside the lock.
    pub(crate) fn ws_reap(&mut self) -> (Vec<Mag>, Vec<Mag>) {
        let f = self.full.ws_reap();
        let e = self.empty.ws_reap();
        if !f.is_empty() || !e.is_empty() {
            self.mag_reap += 1;
        }
        (f, e)
    }

    /// Rounds held by full magazines in the depot.
    pub(crate) fn rounds(&self) -> u64 {
        self.full.list.iter().map(|m| m.magsize() as u64).sum()
    }
}

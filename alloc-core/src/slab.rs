//! The slab layer (`skmem_slab.c`): slabs, bufctls, the partial / empty ("fully allocated")
//! lists and the allocated-address hash. Everything here runs under the cache's slab lock
//! (`skm_sl_lock`); slab memory is allocated and released outside it.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use crate::audit::{self, AuditSlab, FREE_PATTERN, SLAB_FREE};
use crate::config::Geometry;
use crate::sync::atomic::Ordering;

/// "No index" in the index-linked lists.
pub(crate) const NIL: u32 = u32::MAX;
const NIL64: u64 = u64::MAX;

/// `SKMEM_CACHE_HASH_INITIAL`.
pub const HASH_INITIAL: usize = 64;
/// `SKMEM_CACHE_HASH_LIMIT`.
pub const HASH_LIMIT: usize = 8192;

/// `flsll`: 1-based index of the most significant set bit, 0 for 0.
pub(crate) fn flsll(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// One slab's memory (one "segment"): `slabsize` bytes aligned to `slabsize`.
#[derive(Debug)]
pub(crate) struct SlabMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: SlabMem exclusively owns its allocation; the raw pointer is only a handle to it.
unsafe impl Send for SlabMem {}

impl SlabMem {
    /// Allocates zeroed memory for one slab; `None` when the system allocator fails.
    pub(crate) fn new(geo: &Geometry) -> Option<SlabMem> {
        let layout = Layout::from_size_align(geo.slabsize, geo.slabsize).ok()?;
        // SAFETY: the layout has a non-zero size (slabsize >= chunksize >= 8).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(SlabMem { ptr, layout })
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for SlabMem {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A `*mut AuditSlab` owned by the slab layer (boxed, freed only in `SlabLayer::drop`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditPtr(pub(crate) NonNull<AuditSlab>);

// SAFETY: AuditSlab is Sync (atomics and mutexes only); the pointer is a shared handle.
unsafe impl Send for AuditPtr {}

impl AuditPtr {
    pub(crate) fn get(&self) -> &AuditSlab {
        // SAFETY: audit slabs are freed only when the slab layer is dropped, which needs
        // exclusive access to it and therefore outlives every `&self` borrow here.
        unsafe { self.0.as_ref() }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bufctl {
    /// Next free bufctl (`bc_link` on `sl_head`), or NIL.
    next: u32,
    /// Next entry in the hash chain, packed `(slab << 32) | idx`.
    hash_next: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Partial,
    Empty,
}

#[derive(Debug)]
struct Slab {
    mem: SlabMem,
    refcnt: u32,
    head: u32,
    prev: u32,
    next: u32,
    list: Which,
    bc: Box<[Bufctl]>,
    audit: Option<AuditPtr>,
}

#[derive(Debug, Default, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const fn new() -> List {
        List {
            head: NIL,
            tail: NIL,
        }
    }
}

/// Slab-layer counters, named after the `skm_sl_*` fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabCounters {
    /// `skm_sl_create`: slabs created.
    pub sl_create: u64,
    /// `skm_sl_destroy`: slabs destroyed.
    pub sl_destroy: u64,
    /// `skm_sl_alloc`: objects allocated from slabs.
    pub sl_alloc: u64,
    /// `skm_sl_free`: objects freed to slabs (incremented before the hash search).
    pub sl_free: u64,
    /// `skm_sl_alloc_fail`: failed slab allocations and constructor failures.
    pub sl_alloc_fail: u64,
    /// `skm_sl_partial`: slabs on the partial list.
    pub sl_partial: u64,
    /// `skm_sl_empty`: slabs on the "empty" (fully allocated) list.
    pub sl_empty: u64,
    /// `skm_sl_bufinuse`: buffers in live slabs (+chunks on create, -chunks on destroy).
    pub sl_bufinuse: u64,
    /// `skm_sl_bufmax`: high-water mark of `sl_bufinuse`.
    pub sl_bufmax: u64,
    /// `skm_sl_rescale`: hash rescales.
    pub sl_rescale: u64,
}

/// What a slab free did.
#[derive(Debug)]
pub(crate) enum Freed {
    /// The object is back on its slab's free list.
    Kept,
    /// It was the slab's last object: the slab was destroyed; release this outside the lock.
    Destroyed(SlabMem),
}

/// The locked slab-layer state of one cache.
#[derive(Debug)]
pub(crate) struct SlabLayer {
    geo: Geometry,
    clear_on_free: bool,
    /// Audit: poison objects on the slab free list (and a fresh slab) with FREE_PATTERN.
    poison: bool,
    audit_timestamps: bool,
    audit_backtraces: bool,
    audit: bool,
    slabs: Vec<Option<Slab>>,
    free_ids: Vec<u32>,
    partial: List,
    empty: List,
    hash: Vec<u64>,
    hash_shift: u32,
    hash_mask: usize,
    /// Σ `sl_refcnt`: objects allocated from slabs (in magazines or with clients).
    pub(crate) allocated: u64,
    pub(crate) c: SlabCounters,
    audit_pool: Vec<AuditPtr>,
    audit_all: Vec<AuditPtr>,
}

fn pack(slab: u32, idx: u32) -> u64 {
    (u64::from(slab) << 32) | u64::from(idx)
}

fn unpack(e: u64) -> (usize, usize) {
    ((e >> 32) as usize, (e & 0xffff_ffff) as usize)
}

impl SlabLayer {
    pub(crate) fn new(
        geo: Geometry,
        clear_on_free: bool,
        audit: bool,
        poison: bool,
        audit_timestamps: bool,
        audit_backtraces: bool,
    ) -> SlabLayer {
        SlabLayer {
            geo,
            clear_on_free,
            poison: audit && poison,
            audit_timestamps,
            audit_backtraces,
            audit,
            slabs: Vec::new(),
            free_ids: Vec::new(),
            partial: List::new(),
            empty: List::new(),
            hash: vec![NIL64; HASH_INITIAL],
            hash_shift: flsll(geo.chunksize as u64).saturating_sub(1),
            hash_mask: HASH_INITIAL - 1,
            allocated: 0,
            c: SlabCounters::default(),
            audit_pool: Vec::new(),
            audit_all: Vec::new(),
        }
    }

    /// `skm_hash_size`.
    pub(crate) fn hash_size(&self) -> usize {
        self.hash_mask + 1
    }

    fn slab(&self, id: usize) -> Option<&Slab> {
        self.slabs.get(id).and_then(Option::as_ref)
    }

    fn slab_mut(&mut self, id: usize) -> Option<&mut Slab> {
        self.slabs.get_mut(id).and_then(Option::as_mut)
    }

    fn obj_ptr(&self, slab: &Slab, idx: usize) -> *mut u8 {
        slab.mem.base().wrapping_add(idx * self.geo.chunksize)
    }

    fn list_mut(&mut self, w: Which) -> &mut List {
        match w {
            Which::Partial => &mut self.partial,
            Which::Empty => &mut self.empty,
        }
    }

    fn unlink(&mut self, id: u32) {
        let Some(s) = self.slab(id as usize) else {
            return;
        };
        let (prev, next, w) = (s.prev, s.next, s.list);
        match self.slab_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.list_mut(w).head = next,
        }
        match self.slab_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.list_mut(w).tail = prev,
        }
        match w {
            Which::Partial => self.c.sl_partial -= 1,
            Which::Empty => self.c.sl_empty -= 1,
        }
    }

    fn insert_head(&mut self, id: u32, w: Which) {
        let old = self.list_mut(w).head;
        if let Some(s) = self.slab_mut(id as usize) {
            s.prev = NIL;
            s.next = old;
            s.list = w;
        }
        match self.slab_mut(old as usize) {
            Some(o) => o.prev = id,
            None => self.list_mut(w).tail = id,
        }
        self.list_mut(w).head = id;
        match w {
            Which::Partial => self.c.sl_partial += 1,
            Which::Empty => self.c.sl_empty += 1,
        }
    }

    fn insert_tail(&mut self, id: u32, w: Which) {
        let old = self.list_mut(w).tail;
        if let Some(s) = self.slab_mut(id as usize) {
            s.next = NIL;
            s.prev = old;
            s.list = w;
        }
        match self.slab_mut(old as usize) {
            Some(o) => o.next = id,
            None => self.list_mut(w).head = id,
        }
        self.list_mut(w).tail = id;
        match w {
            Which::Partial => self.c.sl_partial += 1,
            Which::Empty => self.c.sl_empty += 1,
        }
    }

    /// Adds a freshly created slab (`skmem_slab_create`) at the head of the partial list.
    /// Returns the audit side table to publish in the radix, if auditing.
    pub(crate) fn add_slab(&mut self, mem: SlabMem) -> Option<(usize, AuditPtr)> {
        let chunks = self.geo.chunks;
        let bc: Box<[Bufctl]> = (0..chunks)
            .map(|i| Bufctl {
                next: if i + 1 < chunks { (i + 1) as u32 } else { NIL },
                hash_next: NIL64,
            })
            .collect();
        if self.poison {
            // SAFETY: the slab memory is fresh, exclusively ours, slabsize-aligned (so 8-aligned)
            // and chunks * chunksize <= slabsize bytes long, a multiple of 8.
            unsafe { audit::fill(mem.base(), chunks * self.geo.chunksize, FREE_PATTERN) };
        }
        let audit = if self.audit {
            let a = match self.audit_pool.pop() {
                Some(a) => a,
                None => {
                    let b = Box::new(AuditSlab::new(
                        chunks,
                        self.audit_timestamps,
                        self.audit_backtraces,
                    ));
                    let a = AuditPtr(NonNull::from(Box::leak(b)));
                    self.audit_all.push(a);
                    a
                }
            };
            a.get().base.store(mem.base(), Ordering::Release);
            Some(a)
        } else {
            None
        };
        let base_addr = mem.base().addr();
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.slabs.push(None);
                (self.slabs.len() - 1) as u32
            }
        };
        if let Some(slot) = self.slabs.get_mut(id as usize) {
            *slot = Some(Slab {
                mem,
                refcnt: 0,
                head: 0,
                prev: NIL,
                next: NIL,
                list: Which::Partial,
                bc,
                audit,
            });
        }
        self.insert_head(id, Which::Partial);
        self.c.sl_create += 1;
        self.c.sl_bufinuse += chunks as u64;
        self.c.sl_bufmax = self.c.sl_bufmax.max(self.c.sl_bufinuse);
        audit.map(|a| (base_addr, a))
    }

    /// `skmem_slab_alloc_locked` without slab creation: pops the head bufctl of the first
    /// partial slab and hashes it. `None` if there is no partial slab.
    pub(crate) fn alloc(&mut self) -> Option<SlabObj> {
        let id = self.partial.head;
        let chunks = self.geo.chunks as u32;
        let shift = self.hash_shift;
        let mask = self.hash_mask;
        let (idx, ptr, full) = {
            let s = self.slab(id as usize)?;
            let idx = s.head;
            let ptr = self.obj_ptr(s, idx as usize);
            (idx, ptr, s.refcnt + 1 == chunks)
        };
        let bucket = (ptr.addr() >> shift) & mask;
        let old_head = self.hash.get(bucket).copied().unwrap_or(NIL64);
        if let Some(h) = self.hash.get_mut(bucket) {
            *h = pack(id, idx);
        }
        let s = self.slab_mut(id as usize)?;
        let bc = s.bc.get_mut(idx as usize)?;
        s.head = bc.next;
        bc.next = NIL;
        bc.hash_next = old_head;
        s.refcnt += 1;
        self.allocated += 1;
        self.c.sl_alloc += 1;
        if full {
            self.unlink(id);
            self.insert_head(id, Which::Empty);
        }
        Some(SlabObj { ptr })
    }

    /// Finds the allocated object at `addr` in the hash; `(slab id, idx)`.
    fn hash_find(&self, addr: usize) -> Option<(usize, usize)> {
        let bucket = (addr >> self.hash_shift) & self.hash_mask;
        let mut e = self.hash.get(bucket).copied().unwrap_or(NIL64);
        while e != NIL64 {
            let (sid, idx) = unpack(e);
            let s = self.slab(sid)?;
            if self.obj_ptr(s, idx).addr() == addr {
                return Some((sid, idx));
            }
            e = s.bc.get(idx)?.hash_next;
        }
        None
    }

    /// Whether `addr` lies inside any live slab of this cache (for misuse attribution).
    pub(crate) fn contains(&self, addr: usize) -> Option<usize> {
        let span = self.geo.chunks * self.geo.chunksize;
        self.slabs.iter().flatten().find_map(|s| {
            let off = addr.wrapping_sub(s.mem.base().addr());
            (off < span).then_some(off % self.geo.chunksize)
        })
    }

    /// `skmem_slab_free_locked`: `sl_free` is incremented first; `Err` if `addr` is not an
    /// allocated object (the caller raises the panic). Clears (CLEARONFREE) or poisons
    /// (AUDIT) the object, then updates the lists with XNU's discipline.
    pub(crate) fn free(&mut self, addr: usize) -> Result<Freed, ()> {
        self.c.sl_free += 1;
        let (sid, idx) = self.hash_find(addr).ok_or(())?;
        // Unlink from the hash chain.
        let bucket = (addr >> self.hash_shift) & self.hash_mask;
        let me = pack(sid as u32, idx as u32);
        let next = self
            .slab(sid)
            .and_then(|s| s.bc.get(idx))
            .map_or(NIL64, |b| b.hash_next);
        let mut e = self.hash.get(bucket).copied().unwrap_or(NIL64);
        if e == me {
            if let Some(h) = self.hash.get_mut(bucket) {
                *h = next;
            }
        } else {
            while e != NIL64 {
                let (ps, pi) = unpack(e);
                let Some(pb) = self.slab_mut(ps).and_then(|s| s.bc.get_mut(pi)) else {
                    break;
                };
                if pb.hash_next == me {
                    pb.hash_next = next;
                    break;
                }
                e = pb.hash_next;
            }
        }
        let chunks = self.geo.chunks as u32;
        let chunksize = self.geo.chunksize;
        let (clear, poison) = (self.clear_on_free, self.poison);
        let s = self.slab_mut(sid).ok_or(())?;
        let obj = s.mem.base().wrapping_add(idx * chunksize);
        if poison {
            // SAFETY: the object is allocated (found in the hash), so it lies inside this
            // slab's memory, is chunk-aligned (8-aligned) and chunksize (multiple of 8) long;
            // the slab lock and the free give us exclusive access to it.
            unsafe { audit::fill(obj, chunksize, FREE_PATTERN) };
        } else if clear {
            // SAFETY: as above; zeroing is valid for any byte range we own.
            unsafe { obj.write_bytes(0, chunksize) };
        }
        if let Some(a) = s.audit
            && let Some(bc) = a.get().bc.get(idx)
        {
            bc.state.store(SLAB_FREE, Ordering::Release);
        }
        if let Some(bc) = s.bc.get_mut(idx) {
            bc.next = s.head;
            bc.hash_next = NIL64;
        }
        s.head = idx as u32;
        let was_full = s.refcnt == chunks;
        s.refcnt -= 1;
        let now_empty = s.refcnt == 0;
        self.allocated -= 1;
        if now_empty {
            self.unlink(sid as u32);
            let slab = self.slabs.get_mut(sid).and_then(Option::take).ok_or(())?;
            self.free_ids.push(sid as u32);
            self.c.sl_destroy += 1;
            self.c.sl_bufinuse -= u64::from(chunks);
            if let Some(a) = slab.audit {
                a.get().base.store(std::ptr::null_mut(), Ordering::Release);
                self.audit_pool.push(a);
            }
            return Ok(Freed::Destroyed(slab.mem));
        }
        if was_full {
            // First object back to a fully allocated slab: to the TAIL of the partial list.
            self.unlink(sid as u32);
            self.insert_tail(sid as u32, Which::Partial);
        }
        Ok(Freed::Kept)
    }

    /// `skmem_cache_update`'s hash check and `skmem_cache_hash_rescale`. Returns whether the
    /// table was rebuilt.
    pub(crate) fn maybe_rescale(&mut self) -> bool {
        let bufinuse = self.c.sl_bufinuse as usize;
        let size = self.hash_size();
        let mask = self.hash_mask;
        let grow = bufinuse > mask * 2 && size < HASH_LIMIT;
        let shrink = bufinuse < mask / 2 && mask > HASH_INITIAL;
        if !(grow || shrink) {
            return false;
        }
        let want = 1usize << flsll((3 * bufinuse + 4) as u64).saturating_sub(2);
        let new = want.clamp(HASH_INITIAL, HASH_LIMIT);
        if new >= size / 2 && new <= size * 2 {
            return false;
        }
        let mut table = vec![NIL64; new];
        let new_mask = new - 1;
        let old = std::mem::take(&mut self.hash);
        for head in old {
            let mut e = head;
            while e != NIL64 {
                let (sid, idx) = unpack(e);
                let Some(s) = self.slab(sid) else { break };
                let addr = self.obj_ptr(s, idx).addr();
                let b = (addr >> self.hash_shift) & new_mask;
                let Some(bc) = self.slab_mut(sid).and_then(|s| s.bc.get_mut(idx)) else {
                    break;
                };
                let next = bc.hash_next;
                if let Some(h) = table.get_mut(b) {
                    bc.hash_next = *h;
                    *h = e;
                }
                e = next;
            }
        }
        self.hash = table;
        self.hash_mask = new_mask;
        self.c.sl_rescale += 1;
        true
    }

    /// The audit table of the slab containing `addr` (locked fallback of the radix).
    pub(crate) fn audit_of(&self, addr: usize) -> Option<(AuditPtr, *mut u8)> {
        let span = self.geo.chunks * self.geo.chunksize;
        self.slabs.iter().flatten().find_map(|s| {
            let base = s.mem.base();
            (addr.wrapping_sub(base.addr()) < span).then_some((s.audit?, base))
        })
    }

    #[cfg_attr(not(test), allow(dead_code))]
    /// Checks the slab layer's invariants: list membership and counts, refcounts against
    /// list discipline, `sl_bufinuse` against live slabs, hash population against
    /// allocations. Returns the first violation.
    pub(crate) fn check(&self) -> Result<(), String> {
        let chunks = self.geo.chunks as u32;
        let mut seen = 0u64;
        for (w, list, count) in [
            (Which::Partial, self.partial, self.c.sl_partial),
            (Which::Empty, self.empty, self.c.sl_empty),
        ] {
            let mut n = 0u64;
            let mut prev = NIL;
            let mut id = list.head;
            while let Some(s) = self.slab(id as usize) {
                if s.list != w || s.prev != prev {
                    return Err(format!("slab {id}: bad {w:?} list links"));
                }
                let ok = match w {
                    Which::Partial => s.refcnt > 0 && s.refcnt < chunks,
                    Which::Empty => s.refcnt == chunks,
                };
                if !ok {
                    return Err(format!("slab {id}: refcnt {} on {w:?} list", s.refcnt));
                }
                n += 1;
                seen += u64::from(s.refcnt);
                prev = id;
                id = s.next;
            }
            if list.tail != prev || n != count {
                return Err(format!("{w:?} list: {n} slabs, counter {count}"));
            }
        }
        let live = self.slabs.iter().flatten().count() as u64;
        if live != self.c.sl_partial + self.c.sl_empty {
            return Err(format!("{live} live slabs not all on a list"));
        }
        if seen != self.allocated {
            return Err(format!("refcounts {seen} != allocated {}", self.allocated));
        }
        if self.c.sl_bufinuse != live * u64::from(chunks) {
            return Err(format!(
                "sl_bufinuse {} != {live} slabs",
                self.c.sl_bufinuse
            ));
        }
        let mut hashed = 0u64;
        for &h in &self.hash {
            let mut e = h;
            while e != NIL64 {
                hashed += 1;
                let (sid, idx) = unpack(e);
                e = self
                    .slab(sid)
                    .and_then(|s| s.bc.get(idx))
                    .map_or(NIL64, |b| b.hash_next);
            }
        }
        if hashed != self.allocated {
            return Err(format!("{hashed} hashed != allocated {}", self.allocated));
        }
        Ok(())
    }

    /// Slab ids on the (partial, empty) lists in list order, for tests.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lists(&self) -> (Vec<u32>, Vec<u32>) {
        let walk = |l: List| {
            let mut v = Vec::new();
            let mut id = l.head;
            while let Some(s) = self.slab(id as usize) {
                v.push(id);
                id = s.next;
            }
            v
        };
        (walk(self.partial), walk(self.empty))
    }

    /// Refcount of slab `id`, for tests.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn refcnt(&self, id: u32) -> Option<u32> {
        self.slab(id as usize).map(|s| s.refcnt)
    }
}

impl Drop for SlabLayer {
    fn drop(&mut self) {
        for a in self.audit_all.drain(..) {
            // SAFETY: every audit table was leaked from a Box in `add_slab`, is listed once in
            // `audit_all`, and nothing can reach it once the slab layer (and the cache and its
            // radix, which are dropped together) is being dropped.
            drop(unsafe { Box::from_raw(a.0.as_ptr()) });
        }
    }
}

/// An object handed out by the slab layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlabObj {
    pub(crate) ptr: *mut u8,
}

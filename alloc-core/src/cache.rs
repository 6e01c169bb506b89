//! The cache front end (`skmem_cache.c`): alloc/free through the CPU (thread) layer, the
//! depot and the slab layer; audit checks; purge, reap, update, resize; destroy.

use std::fmt;
use std::ptr::NonNull;

use crate::audit::{self, CACHED, FREE_PATTERN, IN_USE, TYPED, UNINITIALIZED_PATTERN};
use crate::config::{AuditOptions, CacheConfig, Ctor, Dtor, Geometry};
use crate::cpu::{self, CpuOwned, CpuSlot, TlsEntry};
use crate::magazine::{Depot, Mag};
use crate::mode::{MagType, Mode, initial_magtype};
use crate::radix::Radix;
use crate::registry::{self, Registry};
use crate::report::{
    AllocError, CacheName, ConfigError, FreeError, InvalidReason, Policy, Report, ReportKind,
    TxnKind, raise,
};
use crate::slab::{AuditPtr, Freed, SlabLayer, SlabMem, SlabObj};
use crate::stats::CacheStats;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{Arc, Mutex, lock, try_lock};

/// The shared state of one cache (`struct skmem_cache`). `repr(C)` with the fields the
/// fast paths read first, so they share a cache line.
#[repr(C)]
pub(crate) struct Inner {
    /// Hint of `depot.generation` for the lock-free fast path.
    pub(crate) generation: AtomicU64,
    pub(crate) audit: bool,
    /// AUDIT allocations may take the thread-cache fast path: the default audit options
    /// (poison, transactions, no timestamps, no backtraces), no constructor to run, no
    /// uninitialised fill.
    /// [`Cache::alloc_audit_hot`] tests this one flag instead of five.
    audit_fast_alloc: bool,
    /// AUDIT frees may take the thread-cache fast path: the default audit options and no
    /// destructor to run.
    audit_fast_free: bool,
    /// Audit: lock-free address → slab map.
    radix: Option<Radix>,
    /// `chunks * chunksize`: the object span of a slab.
    span: usize,
    /// log2(chunksize) and chunksize-1 when the chunk size is a power of two; otherwise 0
    /// and usize::MAX (so the fast locate declines and the exact path divides).
    chunk_shift: u32,
    chunk_mask: usize,
    pub(crate) audit_opts: AuditOptions,
    dtor: Option<Arc<Dtor>>,
    ctor: Option<Arc<Ctor>>,
    pub(crate) geo: Geometry,
    pub(crate) id: usize,
    pub(crate) name: CacheName,
    pub(crate) mode: Mode,
    pub(crate) policy: Policy,
    pub(crate) magtypes: Vec<MagType>,
    depot_contention_limit: u32,
    /// `skm_depot_contention`.
    pub(crate) contention: AtomicU32,
    /// Resize perimeter (`skm_rs_lock`).
    pub(crate) rs: Mutex<()>,
    /// `skm_dp_lock` and the depot.
    pub(crate) depot: Mutex<Depot>,
    /// Registered thread caches (for statistics and destroy accounting).
    pub(crate) slots: Mutex<Vec<Arc<CpuSlot>>>,
    /// `skm_sl_lock` and the slab layer.
    pub(crate) slab: Mutex<SlabLayer>,
    /// Reports raised where no caller could receive them (Report policy).
    pub(crate) reports: Mutex<Vec<Report>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("geo", &self.geo)
            .finish_non_exhaustive()
    }
}

/// Where a magazine-layer operation ended up.
enum Mg {
    /// Done (alloc: the object).
    Done(*mut u8),
    /// Go to the slab layer.
    Slab,
    /// Destroy these magazines (outside the thread table), then retry.
    Flush(Vec<(Mag, usize)>),
    /// Allocate a magazine of this size and offer it to the depot, then retry.
    NeedMag(u32, u64),
}

impl Inner {
    fn skm(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Takes the depot lock, counting contention (failed try-lock) in DYNAMIC mode.
    fn depot_lock(&self) -> crate::sync::MutexGuard<'_, Depot> {
        match try_lock(&self.depot) {
            Some(g) => g,
            None => {
                if self.mode.contains(Mode::DYNAMIC) {
                    self.contention.fetch_add(1, Ordering::Relaxed);
                }
                lock(&self.depot)
            }
        }
    }

    /// Applies the policy where no caller can receive the report.
    fn raise_detached(&self, r: Box<Report>) {
        if raise(&r, self.policy).is_err() {
            lock(&self.reports).push(*r);
        }
    }

    // ---- slab layer -------------------------------------------------------------------

    /// `skmem_slab_alloc`: from a partial slab, creating one if needed (outside the lock).
    fn slab_alloc(&self) -> Result<SlabObj, AllocError> {
        let mut s = lock(&self.slab);
        loop {
            if let Some(o) = s.alloc() {
                return Ok(o);
            }
            drop(s);
            let mem = SlabMem::new(&self.geo);
            s = lock(&self.slab);
            let Some(mem) = mem else {
                s.c.sl_alloc_fail += 1;
                return Err(AllocError::OutOfMemory {
                    cache: self.name.clone(),
                });
            };
            if let Some((base, a)) = s.add_slab(mem)
                && let Some(r) = &self.radix
            {
                r.set(base, a.0.as_ptr());
            }
        }
    }

    /// `skmem_slab_batch_alloc`: up to `n` objects in as few slab-lock holds as possible.
    fn slab_alloc_batch(&self, n: usize, out: &mut Vec<NonNull<u8>>) {
        let mut s = lock(&self.slab);
        let mut left = n;
        while left > 0 {
            if let Some(o) = s.alloc() {
                if let Some(p) = NonNull::new(o.ptr) {
                    out.push(p);
                }
                left -= 1;
                continue;
            }
            drop(s);
            let mem = SlabMem::new(&self.geo);
            s = lock(&self.slab);
            let Some(mem) = mem else {
                s.c.sl_alloc_fail += 1;
                return;
            };
            if let Some((base, a)) = s.add_slab(mem)
                && let Some(r) = &self.radix
            {
                r.set(base, a.0.as_ptr());
            }
        }
    }

    /// `skmem_slab_free`: returns the object at `addr` to its slab. `Err` (report raised per
    /// policy and handed back) if the address is not allocated.
    fn slab_free(&self, addr: usize) -> Result<(), Box<Report>> {
        let mut s = lock(&self.slab);
        match s.free(addr) {
            Ok(Freed::Kept) => Ok(()),
            Ok(Freed::Destroyed(mem)) => {
                if let Some(r) = &self.radix {
                    r.set(mem.base().addr(), std::ptr::null_mut());
                }
                drop(s);
                drop(mem);
                Ok(())
            }
            Err(()) => {
                drop(s);
                let r = self.invalid_report(addr, ReportKind::DoubleFree);
                raise(&r, self.policy)?;
                Ok(())
            }
        }
    }

    /// Builds the report for a bad free of `addr`, attributing it if possible.
    fn invalid_report(&self, addr: usize, default: ReportKind) -> Report {
        let inside = lock(&self.slab).contains(addr);
        let kind = match inside {
            Some(0) => default,
            Some(off) => ReportKind::InvalidFree(InvalidReason::Interior { offset: off }),
            None => ReportKind::InvalidFree(self.attribute_foreign(addr)),
        };
        Report {
            kind,
            obj: addr,
            skm: self.skm(),
            cache: self.name.to_string(),
            last_alloc: None,
            last_free: None,
        }
    }

    fn attribute_foreign(&self, addr: usize) -> InvalidReason {
        registry::global()
            .and_then(|reg| reg.owner_of(addr, self))
            .map_or(InvalidReason::Foreign, |name| InvalidReason::OtherCache {
                name,
            })
    }

    /// Constructs a slab object (`ctor`), freeing it back and counting a failure if the
    /// constructor refuses.
    fn construct(&self, p: *mut u8) -> Result<(), AllocError> {
        if let (Some(ctor), Some(nn)) = (&self.ctor, NonNull::new(p))
            && !ctor(nn)
        {
            let _ = self.slab_free(p.addr());
            lock(&self.slab).c.sl_alloc_fail += 1;
            return Err(AllocError::CtorFailed {
                cache: self.name.clone(),
            });
        }
        Ok(())
    }

    fn destruct(&self, p: *mut u8) {
        if let (Some(dtor), Some(nn)) = (&self.dtor, NonNull::new(p)) {
            dtor(nn);
        }
    }

    /// Destroys magazines (`skmem_magazine_destroy`): every round is destructed (unless the
    /// cache audits: audited rounds are unconstructed and poisoned, and are verified here)
    /// and freed to the slab layer.
    fn destroy_mags(&self, mags: Vec<(Mag, usize)>) {
        for (mg, n) in mags {
            for p in mg.round.iter().take(n).map(|p| p.as_ptr()) {
                if self.audit {
                    if let Err(r) = self.audit_verify_free_obj(p) {
                        self.raise_detached(r);
                    }
                } else {
                    self.destruct(p);
                }
                if let Err(r) = self.slab_free(p.addr()) {
                    lock(&self.reports).push(*r);
                }
            }
        }
    }

    // ---- magazine layer -----------------------------------------------------------------

    /// Resynchronises a thread cache whose generation is stale: detaches its magazines and
    /// adopts the depot's generation and magazine size.
    fn resync(&self, o: &mut CpuOwned, d: &Depot) -> Vec<(Mag, usize)> {
        let out = o.detach();
        o.generation = d.generation;
        o.pgeneration = d.pgeneration;
        o.magsize = i32::try_from(d.magsize).unwrap_or(i32::MAX);
        out
    }

    /// The alloc half of `skmem_cache_batch_alloc`'s magazine loop for one object.
    fn cpu_alloc(&self, o: &mut CpuOwned, slot: &CpuSlot) -> Mg {
        loop {
            if o.generation == self.generation.load(Ordering::Acquire)
                && let Some((p, r)) = o.pop()
            {
                slot.rounds.store(r, Ordering::Relaxed);
                return Mg::Done(p.as_ptr());
            }
            if o.prounds > 0 && o.generation == self.generation.load(Ordering::Acquire) {
                let pl = o.ploaded.take();
                o.reload(pl, o.prounds);
                continue;
            }
            let mut d = self.depot_lock();
            if o.generation != d.generation {
                let mags = self.resync(o, &d);
                drop(d);
                slot.publish(o);
                return Mg::Flush(mags);
            }
            let mut out = Vec::new();
            if o.pgeneration != d.pgeneration {
                o.pgeneration = d.pgeneration;
                if let Some(m) = o.ploaded.take() {
                    out.push((m, usize::try_from(o.prounds).unwrap_or(0)));
                    o.prounds = -1;
                }
            }
            slot.publish(o);
            if o.magsize == 0 {
                drop(d);
                return if out.is_empty() {
                    Mg::Slab
                } else {
                    Mg::Flush(out)
                };
            }
            if let Some(full) = d.full.alloc() {
                if let Some(pl) = o.ploaded.take() {
                    d.empty.free(pl);
                }
                let n = o.magsize;
                o.reload(Some(full), n);
                drop(d);
                if !out.is_empty() {
                    return Mg::Flush(out);
                }
                continue;
            }
            drop(d);
            return if out.is_empty() {
                Mg::Slab
            } else {
                Mg::Flush(out)
            };
        }
    }

    /// The free half (`skmem_cache_batch_free_common`'s magazine loop) for one object.
    fn cpu_free(&self, o: &mut CpuOwned, slot: &CpuSlot, p: *mut u8) -> Mg {
        let Some(p) = NonNull::new(p) else {
            return Mg::Slab;
        };
        loop {
            if (o.rounds() as u32) < (o.magsize as u32)
                && o.generation == self.generation.load(Ordering::Acquire)
                && let Some(r) = o.push(p)
            {
                slot.rounds.store(r, Ordering::Relaxed);
                return Mg::Done(p.as_ptr());
            }
            if o.prounds == 0 && o.generation == self.generation.load(Ordering::Acquire) {
                let pl = o.ploaded.take();
                o.reload(pl, 0);
                continue;
            }
            let mut d = self.depot_lock();
            if o.generation != d.generation {
                let mags = self.resync(o, &d);
                drop(d);
                slot.publish(o);
                return Mg::Flush(mags);
            }
            slot.publish(o);
            if o.magsize == 0 {
                return Mg::Slab;
            }
            if let Some(empty) = d.empty.alloc() {
                if let Some(pl) = o.ploaded.take() {
                    if o.prounds > 0 {
                        d.full.free(pl);
                    } else {
                        d.empty.free(pl);
                    }
                }
                o.reload(Some(empty), 0);
                continue;
            }
            return Mg::NeedMag(d.magsize, d.generation);
        }
    }

    /// A fresh magazine offered to the depot's empty list (`mt_cache` alloc + depot free).
    fn offer_mag(&self, magsize: u32, generation: u64) {
        let mg = Mag::new(magsize);
        let mut d = lock(&self.depot);
        if d.generation == generation && d.magsize == magsize {
            d.empty.free(mg);
        }
    }

    /// Registers a new thread cache for this thread.
    fn new_slot(self: &Arc<Self>, thread: u64) -> TlsEntry {
        let (generation, magsize) = {
            let d = lock(&self.depot);
            (d.generation, d.magsize)
        };
        let slot = Arc::new(CpuSlot::new(thread, generation, magsize));
        lock(&self.slots).push(slot.clone());
        TlsEntry {
            inner: self.clone(),
            slot,
        }
    }

    /// Thread exit or cache change: returns a thread cache's magazines to the depot (full →
    /// full list, empty → empty list, partially filled → rounds to the slab layer) and folds
    /// its counters into the depot's.
    pub(crate) fn retire_slot(&self, slot: &Arc<CpuSlot>) {
        let (mags, generation, alloc, free) = slot.own.with_mut(|o| {
            // SAFETY: only the owning thread calls this (from its TlsEntry's drop), and no
            // other reference to its owner state exists while it runs.
            let o = unsafe { &mut *o };
            let (alloc, free) = o.counts();
            (o.detach(), o.generation, alloc, free)
        });
        let mut rest = Vec::new();
        {
            let mut d = lock(&self.depot);
            d.retired_alloc += alloc;
            d.retired_free += free;
            // Under the depot lock (order: depot → slots) so that statistics, which take
            // the same two locks, never count this thread cache twice or not at all.
            lock(&self.slots).retain(|s| !Arc::ptr_eq(s, slot));
            for (mg, n) in mags {
                let size = mg.magsize();
                if generation != d.generation || size != d.magsize as usize {
                    rest.push((mg, n));
                } else if n == size {
                    d.full.free(mg);
                } else if n == 0 {
                    d.empty.free(mg);
                } else {
                    rest.push((mg, n));
                }
            }
        }
        self.destroy_mags(rest);
    }

    /// Runs `op` on this thread's cache for `self` (creating it if needed). `None` when the
    /// thread table is unavailable (thread teardown).
    fn with_slot(
        self: &Arc<Self>,
        mut op: impl FnMut(&Inner, &mut CpuOwned, &CpuSlot) -> Mg,
    ) -> Option<Mg> {
        loop {
            let r = cpu::with_mags(|m| {
                let idx = self.id;
                match m.get(idx) {
                    Some(e) if e.is_for(self) => return Ok(e.slot.clone()),
                    Some(_) => return Err(m.take(idx)),
                    None => {}
                }
                let t = cpu::thread_no(m);
                let e = self.new_slot(t);
                let slot = e.slot.clone();
                m.set(idx, e);
                Ok(slot)
            })?;
            match r {
                Ok(slot) => {
                    let mg = slot.own.with_mut(|o| {
                        // SAFETY: the slot belongs to this thread's table: only this thread
                        // touches its owner state, and `op` does not re-enter.
                        let o = unsafe { &mut *o };
                        let r = op(self, o, &slot);
                        slot.publish(o);
                        r
                    });
                    return Some(mg);
                }
                Err(stale) => drop(stale),
            }
        }
    }

    // ---- audit --------------------------------------------------------------------------

    /// The lock-free part of [`Self::audit_locate`]: radix lookup and arithmetic only.
    /// `None` for anything unusual (the caller then takes the full, cold path).
    #[inline(always)]
    fn locate_fast(&self, addr: usize) -> Option<(&crate::audit::AuditSlab, *mut u8, usize)> {
        let a = self.radix.as_ref()?.get(addr)?;
        let base = a.base.load(Ordering::Acquire);
        let off = addr.wrapping_sub(base.addr());
        if base.is_null() || off >= self.span || off & self.chunk_mask != 0 {
            return None;
        }
        Some((a, base.wrapping_add(off), off >> self.chunk_shift))
    }

    /// [`Self::locate_fast`] behind the thread cache's one-entry slab cache: the object's
    /// audit record and our (provenance-carrying) pointer to it.
    #[inline(always)]
    fn locate_cached(
        &self,
        o: &mut CpuOwned,
        addr: usize,
    ) -> Option<(&crate::audit::AuditBc, NonNull<u8>)> {
        let off = addr.wrapping_sub(o.last_base);
        if off < self.span && off & self.chunk_mask == 0 && !o.last_audit.is_null() {
            // SAFETY: `last_audit` was taken from this cache's radix map; audit tables are
            // type-stable until the cache is dropped, and `&self` keeps it alive.
            let a = unsafe { &*o.last_audit };
            // Still the table of the slab at `last_base` (tables are recycled between
            // slabs): then `addr` is its object number `off >> chunk_shift`.
            let base = a.base.load(Ordering::Acquire);
            if base.addr() == o.last_base {
                let p = NonNull::new(base.wrapping_add(off))?;
                return Some((a.bc.get(off >> self.chunk_shift)?, p));
            }
        }
        let (a, p, idx) = self.locate_fast(addr)?;
        o.last_audit = std::ptr::from_ref(a);
        o.last_base = p.addr() - (idx << self.chunk_shift);
        Some((a.bc.get(idx)?, NonNull::new(p)?))
    }

    /// The AUDIT allocation fast path on this thread's cache `o`: peek at the top round,
    /// check its poison and find its record, then pop it, mark it allocated (`HANDLE`: to a
    /// typed handle) and record the transaction. `None`, with nothing changed, when the
    /// magazine is empty, the poison is damaged or the object is outside the radix map.
    /// The caller publishes `cp_rounds`.
    #[inline(always)]
    fn audit_take<const HANDLE: bool>(
        &self,
        slot: &CpuSlot,
        o: &mut CpuOwned,
    ) -> Option<NonNull<u8>> {
        let p = o.peek()?;
        // SAFETY: `p` is our pointer to a cached object: a whole, 8-aligned chunk of a live
        // slab that no client owns.
        if !unsafe { audit::intact(p.as_ptr(), self.geo.chunksize, FREE_PATTERN) } {
            return None;
        }
        let (bc, _) = self.locate_cached(o, p.as_ptr().addr())?;
        o.pop_peeked();
        bc.state
            .store(if HANDLE { TYPED } else { IN_USE }, Ordering::Release);
        bc.stamp_as(TxnKind::Alloc, slot.thread, cpu::next_seq());
        Some(p)
    }

    /// The AUDIT free fast path on this thread's cache `o`: find the object's record, push
    /// it, claim it with the one compare-exchange from allocated (`HANDLE`: to a typed
    /// handle) to cached, poison it and record the transaction. `None`, with nothing
    /// changed, when the magazine is full or the address needs the full path (not found
    /// through the slab cache or the radix map, or not allocated: misuse, which the full
    /// path reports). The caller publishes `cp_rounds`.
    #[inline(always)]
    fn audit_give<const HANDLE: bool>(
        &self,
        slot: &CpuSlot,
        o: &mut CpuOwned,
        addr: usize,
    ) -> Option<()> {
        let (bc, p) = self.locate_cached(o, addr)?;
        // Push first (a full magazine declines before anything changed), then claim the
        // object; if the claim fails the push is taken back.
        o.push(p)?;
        let expect = if HANDLE { TYPED } else { IN_USE };
        if bc
            .state
            .compare_exchange(expect, CACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            o.unpush();
            return None;
        }
        // SAFETY: `p` is our pointer to a whole chunk of a live slab (the state CAS proved
        // the object allocated, so its slab cannot be destroyed under us); chunks are
        // 8-aligned and a multiple of 8 long; the CAS made us its only user.
        unsafe { audit::fill(p.as_ptr(), self.geo.chunksize, FREE_PATTERN) };
        bc.stamp_as(TxnKind::Free, slot.thread, cpu::next_seq());
        Some(())
    }

    /// Finds the audit table and our (provenance-carrying) pointer for the object at `addr`:
    /// radix first, then the locked slab list. `Err` with the reason if it is not one of ours.
    fn audit_locate(&self, addr: usize) -> Result<(AuditPtr, *mut u8, usize), InvalidReason> {
        if let Some((a, p, i)) = self.locate_fast(addr) {
            return Ok((AuditPtr(NonNull::from(a)), p, i));
        }
        self.audit_locate_slow(addr)
    }

    #[cold]
    #[inline(never)]
    fn audit_locate_slow(&self, addr: usize) -> Result<(AuditPtr, *mut u8, usize), InvalidReason> {
        let (a, base) = match self.radix.as_ref().and_then(|r| r.get(addr)) {
            Some(a) => {
                let base = a.base.load(Ordering::Acquire);
                (AuditPtr(NonNull::from(a)), base)
            }
            None => {
                let found = lock(&self.slab).audit_of(addr);
                match found {
                    Some(x) => x,
                    None => return Err(self.attribute_foreign(addr)),
                }
            }
        };
        let off = addr.wrapping_sub(base.addr());
        if base.is_null() || off >= self.span {
            return Err(self.attribute_foreign(addr));
        }
        let cs = self.geo.chunksize;
        let (idx, rem) = (off / cs, off % cs);
        if rem != 0 {
            return Err(InvalidReason::Interior { offset: rem });
        }
        Ok((a, base.wrapping_add(off), idx))
    }

    fn audit_report(
        &self,
        kind: ReportKind,
        addr: usize,
        a: Option<(AuditPtr, usize)>,
    ) -> Box<Report> {
        let (last_alloc, last_free) = a.map_or((None, None), |(a, i)| a.get().transactions(i));
        Box::new(Report {
            kind,
            obj: addr,
            skm: self.skm(),
            cache: self.name.to_string(),
            last_alloc,
            last_free,
        })
    }

    /// Audit checks of a free: validity and state (`IN_USE`/`TYPED` → `CACHED`), then the
    /// destructor, poison and the transaction record. Returns our pointer to the object.
    #[inline(always)]
    fn audit_free(&self, addr: usize, typed: bool) -> Result<*mut u8, Box<Report>> {
        let expect = if typed { TYPED } else { IN_USE };
        let Some((a, p, idx)) = self.locate_fast(addr) else {
            return self.audit_free_cold(addr, typed);
        };
        let Some(bc) = a.bc.get(idx) else {
            return self.audit_free_cold(addr, typed);
        };
        if bc
            .state
            .compare_exchange(expect, CACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return self.audit_free_cold(addr, typed);
        }
        self.audit_free_tail(a, p, idx);
        Ok(p)
    }

    #[inline(always)]
    fn audit_free_tail(&self, a: &crate::audit::AuditSlab, p: *mut u8, idx: usize) {
        if self.dtor.is_some() {
            self.destruct(p);
        }
        if self.audit_opts.poison {
            // SAFETY: `p` is our pointer to a whole chunk of a live slab (the state CAS proved
            // the object allocated, so its slab cannot be destroyed under us); chunks are
            // 8-aligned and a multiple of 8 long; the CAS made us its only user.
            unsafe { audit::fill(p, self.geo.chunksize, FREE_PATTERN) };
        }
        if self.audit_opts.transactions {
            a.record(idx, TxnKind::Free);
        }
    }

    /// The full free check, for anything the fast path did not accept (misuse, radix miss).
    #[cold]
    #[inline(never)]
    fn audit_free_cold(&self, addr: usize, typed: bool) -> Result<*mut u8, Box<Report>> {
        let (a, p, idx) = self
            .audit_locate(addr)
            .map_err(|why| self.audit_report(ReportKind::InvalidFree(why), addr, None))?;
        let bc = a.get().bc.get(idx).ok_or_else(|| {
            self.audit_report(ReportKind::InvalidFree(InvalidReason::Foreign), addr, None)
        })?;
        let expect = if typed { TYPED } else { IN_USE };
        if let Err(actual) =
            bc.state
                .compare_exchange(expect, CACHED, Ordering::AcqRel, Ordering::Acquire)
        {
            let kind = match actual {
                TYPED => ReportKind::InvalidFree(InvalidReason::OwnedByHandle),
                _ => ReportKind::DoubleFree,
            };
            return Err(self.audit_report(kind, addr, Some((a, idx))));
        }
        self.audit_free_tail(a.get(), p, idx);
        Ok(p)
    }

    /// Verifies the poison of a cached (free) object; on damage returns the report.
    fn audit_verify_free_obj(&self, p: *mut u8) -> Result<(), Box<Report>> {
        if !self.audit_opts.poison {
            return Ok(());
        }
        // SAFETY: `p` is our pointer to a cached object: a whole, 8-aligned chunk of a live
        // slab that no client owns.
        match unsafe { audit::verify(p, self.geo.chunksize, FREE_PATTERN) } {
            None => Ok(()),
            Some((offset, found)) => {
                let a = self.audit_locate(p.addr()).ok().map(|(a, _, i)| (a, i));
                Err(self.audit_report(
                    ReportKind::ModifiedAfterFree {
                        offset,
                        found,
                        expected: FREE_PATTERN,
                    },
                    p.addr(),
                    a,
                ))
            }
        }
    }

    /// Audit checks of an allocation: poison verified, uninitialised pattern written,
    /// constructor run, state set, transaction recorded. On damage the object is re-poisoned
    /// and returned to the slab layer, and the report is handed back.
    #[inline(always)]
    pub(crate) fn audit_alloc(&self, p: *mut u8, typed: bool) -> Result<(), AllocError> {
        if self.audit_opts.poison {
            // SAFETY: `p` is our pointer to a cached object: a whole, 8-aligned chunk of a
            // live slab that no client owns.
            if unsafe { audit::verify(p, self.geo.chunksize, FREE_PATTERN) }.is_some() {
                return self.audit_alloc_damaged(p);
            }
            if self.audit_opts.uninit_fill {
                // SAFETY: as above; the object is being handed out by us, nobody else uses it.
                unsafe { audit::fill(p, self.geo.chunksize, UNINITIALIZED_PATTERN) };
            }
        }
        if self.ctor.is_some() {
            self.construct(p)?;
        }
        let state = if typed { TYPED } else { IN_USE };
        if let Some((a, _, i)) = self.locate_fast(p.addr()) {
            if let Some(bc) = a.bc.get(i) {
                bc.state.store(state, Ordering::Release);
            }
            if self.audit_opts.transactions {
                a.record(i, TxnKind::Alloc);
            }
        } else if let Ok((a, _, i)) = self.audit_locate(p.addr()) {
            if let Some(bc) = a.get().bc.get(i) {
                bc.state.store(state, Ordering::Release);
            }
            if self.audit_opts.transactions {
                a.get().record(i, TxnKind::Alloc);
            }
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn audit_alloc_damaged(&self, p: *mut u8) -> Result<(), AllocError> {
        let r = match self.audit_verify_free_obj(p) {
            Err(r) => r,
            Ok(()) => return Ok(()),
        };
        // SAFETY: as in audit_verify_free_obj; the object is still ours (cached).
        unsafe { audit::fill(p, self.geo.chunksize, FREE_PATTERN) };
        if let Ok((a, _, i)) = self.audit_locate(p.addr())
            && let Some(bc) = a.get().bc.get(i)
        {
            bc.state.store(CACHED, Ordering::Release);
        }
        let _ = self.slab_free(p.addr());
        raise(&r, self.policy).map_err(AllocError::Audit)?;
        Err(AllocError::Audit(r))
    }

    // ---- alloc / free -----------------------------------------------------------------

    /// The full allocation path (everything but the inlined magazine hit).
    pub(crate) fn alloc_slow(self: &Arc<Self>, typed: bool) -> Result<NonNull<u8>, AllocError> {
        let from_mag = loop {
            let r = self.with_slot(|inner, o, slot| inner.cpu_alloc(o, slot));
            match r {
                Some(Mg::Done(p)) => break Some(p),
                Some(Mg::Flush(mags)) => self.destroy_mags(mags),
                Some(Mg::Slab) | None => break None,
                Some(Mg::NeedMag(..)) => break None,
            }
        };
        let p = match from_mag {
            Some(p) => p,
            None => {
                let o = self.slab_alloc()?;
                if !self.audit {
                    self.construct(o.ptr)?;
                }
                o.ptr
            }
        };
        if self.audit {
            self.audit_alloc(p, typed)?;
        }
        NonNull::new(p).ok_or_else(|| AllocError::OutOfMemory {
            cache: self.name.clone(),
        })
    }

    /// One object from the magazine layer (swap, depot), or `None` when it would have to
    /// come from the slab layer.
    fn mag_alloc_one(self: &Arc<Self>) -> Option<NonNull<u8>> {
        loop {
            match self.with_slot(|inner, o, slot| inner.cpu_alloc(o, slot))? {
                Mg::Done(p) => return NonNull::new(p),
                Mg::Flush(mags) => self.destroy_mags(mags),
                Mg::Slab | Mg::NeedMag(..) => return None,
            }
        }
    }

    /// The full free path for an object already validated (audit) or trusted (production):
    /// magazine push, depot exchange, or slab free.
    pub(crate) fn free_slow(self: &Arc<Self>, p: *mut u8) -> Result<(), Box<Report>> {
        loop {
            let r = self.with_slot(|inner, o, slot| inner.cpu_free(o, slot, p));
            match r {
                Some(Mg::Done(_)) => return Ok(()),
                Some(Mg::Flush(mags)) => self.destroy_mags(mags),
                Some(Mg::NeedMag(size, generation)) => self.offer_mag(size, generation),
                Some(Mg::Slab) | None => break,
            }
        }
        if !self.audit {
            self.destruct(p);
        }
        self.slab_free(p.addr())
    }

    // ---- maintenance ------------------------------------------------------------------

    /// Flushes this thread's cache (if it has one) after a generation change.
    fn flush_own(self: &Arc<Self>) {
        if let Some(Mg::Flush(m)) = self.with_slot(|inner, o, slot| {
            let d = lock(&inner.depot);
            let m = inner.resync(o, &d);
            drop(d);
            slot.publish(o);
            Mg::Flush(m)
        }) {
            self.destroy_mags(m);
        }
    }

    /// `skmem_cache_magazine_purge` (+ resize to the next magazine type when `resize`).
    /// Caller holds the resize perimeter.
    fn purge_locked(self: &Arc<Self>, resize: bool) {
        let (full, empty) = {
            let mut d = lock(&self.depot);
            d.generation = crate::sync::ids::next_generation();
            if resize && d.magtype + 1 < self.magtypes.len() {
                d.magtype += 1;
                d.magsize = self.magtypes.get(d.magtype).map_or(0, |t| t.magsize);
                d.mag_resize += 1;
                d.contention_prev = self
                    .contention
                    .load(Ordering::Relaxed)
                    .wrapping_add(i32::MAX as u32);
            }
            self.generation.store(d.generation, Ordering::Release);
            d.ws_zero();
            let r = d.ws_reap();
            d.mag_purge += 1;
            r
        };
        let size = |m: &Mag| m.magsize();
        let mut mags: Vec<(Mag, usize)> = full
            .into_iter()
            .map(|m| {
                let n = size(&m);
                (m, n)
            })
            .collect();
        mags.extend(empty.into_iter().map(|m| (m, 0)));
        self.destroy_mags(mags);
        self.flush_own();
    }

    pub(crate) fn purge(self: &Arc<Self>) {
        let _rs = lock(&self.rs);
        self.purge_locked(false);
    }

    pub(crate) fn resize(self: &Arc<Self>) {
        let _rs = lock(&self.rs);
        self.purge_locked(true);
    }

    pub(crate) fn ws_reap(self: &Arc<Self>) {
        let (full, empty) = lock(&self.depot).ws_reap();
        let mut mags: Vec<(Mag, usize)> = full
            .into_iter()
            .map(|m| {
                let n = m.magsize();
                (m, n)
            })
            .collect();
        mags.extend(empty.into_iter().map(|m| (m, 0)));
        self.destroy_mags(mags);
    }

    pub(crate) fn reap_now(self: &Arc<Self>, purge: bool) {
        if purge || self.mode.contains(Mode::RECLAIM) {
            self.purge();
            return;
        }
        {
            let mut d = lock(&self.depot);
            d.ws_zero();
            d.pgeneration += 1;
        }
        self.ws_reap();
        // This thread drops its previous magazine now; others at their next depot visit.
        if let Some(Mg::Flush(m)) = self.with_slot(|inner, o, slot| {
            let d = lock(&inner.depot);
            o.pgeneration = d.pgeneration;
            drop(d);
            let mut out = Vec::new();
            if let Some(m) = o.ploaded.take() {
                out.push((m, usize::try_from(o.prounds).unwrap_or(0)));
                o.prounds = -1;
            }
            slot.publish(o);
            Mg::Flush(out)
        }) {
            self.destroy_mags(m);
        }
    }

    pub(crate) fn update(self: &Arc<Self>) {
        let _rs = lock(&self.rs);
        lock(&self.slab).maybe_rescale();
        let resize = {
            let mut d = lock(&self.depot);
            d.full.ws_update();
            d.empty.ws_update();
            let cont = self.contention.load(Ordering::Relaxed);
            let delta = cont.wrapping_sub(d.contention_prev) as i32;
            d.contention_prev = cont;
            let maxbuf = self.magtypes.get(d.magtype).map_or(0, |t| t.maxbuf);
            self.mode.contains(Mode::DYNAMIC)
                && d.magsize > 0
                && delta > self.depot_contention_limit as i32
                && self.geo.chunksize < maxbuf
                && d.magtype + 1 < self.magtypes.len()
        };
        if resize {
            self.purge_locked(true);
        }
    }

    /// Objects allocated from the slab layer that are not cached anywhere we can see.
    fn outstanding(&self, exclude_own: bool) -> u64 {
        let own = cpu::with_mags(|m| m.thread).unwrap_or(0);
        let cached_depot = lock(&self.depot).rounds();
        let cached_cpu: u64 = lock(&self.slots)
            .iter()
            .filter(|s| !(exclude_own && s.thread == own))
            .map(|s| {
                let r = s.rounds.load(Ordering::Relaxed).max(0);
                let p = s.prounds.load(Ordering::Relaxed).max(0);
                (r + p) as u64
            })
            .sum();
        lock(&self.slab)
            .allocated
            .saturating_sub(cached_depot + cached_cpu)
    }

    /// Statistics; this thread's counters are published first, so they are exact for the
    /// calling thread (other threads' as of their last depot visit).
    pub(crate) fn stats(&self) -> CacheStats {
        self.publish_own();
        CacheStats::gather(self)
    }

    /// Publishes this thread's counters for this cache, if it has a thread cache.
    fn publish_own(&self) {
        let _ = cpu::with_mags(|m| {
            if let Some(e) = m.get(self.id)
                && e.is_for(self)
            {
                e.slot.own.with(|o| {
                    // SAFETY: our own slot, read only; nothing else touches it meanwhile.
                    e.slot.publish(unsafe { &*o });
                });
            }
        });
    }
}

/// An skmem-style object cache. See the crate docs for the layers and an example.
///
/// `Cache` is `Send + Sync`: share it by reference (or in an `Arc`). Dropping it is
/// `skmem_cache_destroy`: the magazines are purged and, if objects are still allocated, the
/// not-empty report is raised per the cache's [`Policy`] (use [`Cache::destroy`] to get it
/// as a value).
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
    /// [`cpu::fast_index`] of `inner.id`, kept here to save a dependent load.
    id: u8,
    /// `inner.audit`, kept here so that `alloc`/`free` dispatch without a dependent load
    /// (AUDIT caches never reach the unchecked production pop/push).
    audit: bool,
    done: bool,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("skm", &format_args!("{:#x}", self.inner.skm()))
            .field("mode", &self.inner.mode)
            .field("chunksize", &self.inner.geo.chunksize)
            .finish()
    }
}

impl Cache {
    /// Starts a configuration for a cache of `size`-byte objects named `skc.<name>`.
    pub fn builder(name: &str, size: usize) -> CacheConfig {
        CacheConfig::new(name, size)
    }

    /// A cache with default settings (`Cache::builder(name, size).build()`).
    pub fn new(name: &str, size: usize) -> Result<Cache, ConfigError> {
        CacheConfig::new(name, size).build()
    }

    pub(crate) fn create(cfg: CacheConfig, reg: Option<&Registry>) -> Result<Cache, ConfigError> {
        let geo = cfg.geometry()?;
        let mut mode = cfg.mode;
        if cfg.clear_min > 0 && geo.chunksize <= cfg.clear_min {
            mode |= Mode::CLEARONFREE;
        }
        let audit = mode.contains(Mode::AUDIT);
        let magtype = initial_magtype(&cfg.magtypes, geo.chunksize);
        let magsize = if mode.contains(Mode::NOMAGAZINES) {
            0
        } else {
            cfg.magtypes.get(magtype).map_or(0, |t| t.magsize)
        };
        let slab = SlabLayer::new(
            geo,
            mode.contains(Mode::CLEARONFREE),
            audit,
            cfg.audit.poison,
            cfg.audit.timestamps,
            cfg.audit.backtraces,
        );
        let depot = Depot::new(magtype, magsize);
        let audit_defaults = audit
            && cfg.audit.poison
            && cfg.audit.transactions
            && !cfg.audit.timestamps
            && !cfg.audit.backtraces;
        let inner = Arc::new(Inner {
            id: crate::sync::ids::take(),
            name: CacheName::new(cfg.name),
            mode,
            geo,
            policy: cfg.policy,
            audit_opts: cfg.audit,
            audit_fast_alloc: audit_defaults && cfg.ctor.is_none() && !cfg.audit.uninit_fill,
            audit_fast_free: audit_defaults && cfg.dtor.is_none(),
            audit,
            ctor: cfg.ctor,
            dtor: cfg.dtor,
            magtypes: cfg.magtypes,
            depot_contention_limit: cfg.depot_contention,
            generation: AtomicU64::new(depot.generation),
            contention: AtomicU32::new(0),
            rs: Mutex::new(()),
            depot: Mutex::new(depot),
            slots: Mutex::new(Vec::new()),
            slab: Mutex::new(slab),
            radix: audit.then(|| Radix::new(geo.slabsize.trailing_zeros() as usize)),
            span: geo.chunks * geo.chunksize,
            chunk_shift: if geo.chunksize.is_power_of_two() {
                geo.chunksize.trailing_zeros()
            } else {
                0
            },
            chunk_mask: if geo.chunksize.is_power_of_two() {
                geo.chunksize - 1
            } else {
                usize::MAX
            },
            reports: Mutex::new(Vec::new()),
        });
        match reg {
            Some(reg) => reg.register(&inner),
            None => {
                if let Some(reg) = registry::global() {
                    reg.register(&inner);
                }
            }
        }
        Ok(Cache {
            id: cpu::fast_index(inner.id),
            audit: inner.audit,
            inner,
            done: false,
        })
    }

    /// The cache name (`skc.…`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The mode flags in effect (CLEARONFREE may have been added for small objects).
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The object size requested (`skm_bufsize`).
    pub fn object_size(&self) -> usize {
        self.inner.geo.bufsize
    }

    /// The chunk size (`skm_chunksize`): object size rounded to 8 and to the alignment.
    pub fn chunk_size(&self) -> usize {
        self.inner.geo.chunksize
    }

    /// The slab size (`skm_slabsize`).
    pub fn slab_size(&self) -> usize {
        self.inner.geo.slabsize
    }

    /// The misuse policy.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// The cache address (`skm`, as printed in reports).
    pub fn skm(&self) -> usize {
        self.inner.skm()
    }

    /// Allocates one object (`skmem_cache_alloc`). Objects from the slab layer are
    /// constructed; objects from a magazine are not re-constructed (except in AUDIT mode,
    /// where cached objects are poisoned and so are constructed on every allocation).
    ///
    /// In AUDIT mode the object's poison is verified first; a modified object produces the
    /// `mcache_audit` report (an error under [`Policy::Report`]).
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, AllocError> {
        if self.audit {
            return self.alloc_audit(false);
        }
        if let Some(p) = self.fast_pop() {
            return Ok(p);
        }
        self.alloc_cold()
    }

    /// The production path past the thread cache (depot, slab layer), out of line.
    #[inline(never)]
    fn alloc_cold(&self) -> Result<NonNull<u8>, AllocError> {
        self.inner.alloc_slow(false)
    }

    /// AUDIT allocation: the thread-cache fast path, else everything else out of line.
    /// Inline so that the fast path's leaf function returns straight to the caller.
    #[inline(always)]
    fn alloc_audit(&self, typed: bool) -> Result<NonNull<u8>, AllocError> {
        let hot = if typed {
            self.alloc_audit_hot::<true>()
        } else {
            self.alloc_audit_hot::<false>()
        };
        match hot {
            Some(p) => Ok(p),
            None => self.alloc_audit_cold(typed),
        }
    }

    /// Everything [`Self::alloc_audit_hot`] declined (a constructor to run, other audit
    /// options, an empty magazine, a stale generation, damaged poison): the full audit
    /// checks and reports, out of line.
    #[cold]
    #[inline(never)]
    fn alloc_audit_cold(&self, typed: bool) -> Result<NonNull<u8>, AllocError> {
        if let Some(p) = self.fast_pop() {
            self.inner.audit_alloc(p.as_ptr(), typed)?;
            return Ok(p);
        }
        self.inner.alloc_slow(typed)
    }

    /// Pops a round from this thread's loaded magazine: the
    /// whole production fast path.
    #[inline(always)]
    fn fast_pop(&self) -> Option<NonNull<u8>> {
        self.with_own(|slot, o| {
            let (p, r) = o.pop()?;
            slot.rounds.store(r, Ordering::Relaxed);
            Some(p)
        })
    }

    /// Runs `f` on this thread's cache for this cache (fast index only) if it is in sync
    /// with the depot's generation: the common head of every thread-cache fast path. The
    /// generation is process-unique, so a match also proves the slot belongs to this cache.
    #[inline(always)]
    fn with_own<R>(&self, f: impl FnOnce(&CpuSlot, &mut CpuOwned) -> Option<R>) -> Option<R> {
        let generation = self.inner.generation.load(Ordering::Relaxed);
        cpu::fast_slot(self.id, |slot| {
            slot.own.with_mut(|o| {
                // SAFETY: this thread's own slot (it is in this thread's table), and `f` runs
                // no user code and cannot re-enter the thread table.
                let o = unsafe { &mut *o };
                if o.generation != generation {
                    return None;
                }
                f(slot, o)
            })
        })
    }

    /// Pushes a round into this thread's loaded magazine: the
    /// production free fast path.
    #[inline(always)]
    fn fast_push(&self, p: NonNull<u8>) -> bool {
        self.with_own(|slot, o| {
            let r = o.push(p)?;
            slot.rounds.store(r, Ordering::Relaxed);
            Some(())
        })
        .is_some()
    }

    /// AUDIT free done entirely on this thread's cache ([`Self::audit_give`]). `false`
    /// (with nothing changed) when anything needs the full path: a destructor to run, other
    /// audit options, a full magazine, a stale generation, misuse.
    ///
    /// Out of line and with `HANDLE` (a typed-handle object) as a constant, so that it stays
    /// small; `#[cold]` only for the layout of callers' production paths.
    #[cold]
    #[inline(never)]
    fn free_audit_hot<const HANDLE: bool>(&self, addr: usize) -> bool {
        let inner = &*self.inner;
        if !inner.audit_fast_free {
            return false;
        }
        self.with_own(|slot, o| {
            inner.audit_give::<HANDLE>(slot, o, addr)?;
            slot.rounds.store(o.rounds(), Ordering::Relaxed);
            Some(())
        })
        .is_some()
    }

    /// AUDIT allocation done on this thread's cache ([`Self::audit_take`]). `None` (with
    /// nothing changed) when anything needs the full path: a constructor to run, other
    /// audit options, an empty magazine, a stale generation, damaged poison (which the full
    /// path then pops again and reports).
    ///
    /// Out of line like [`Self::free_audit_hot`].
    #[cold]
    #[inline(never)]
    fn alloc_audit_hot<const HANDLE: bool>(&self) -> Option<NonNull<u8>> {
        let inner = &*self.inner;
        if !inner.audit_fast_alloc {
            return None;
        }
        self.with_own(|slot, o| {
            let p = inner.audit_take::<HANDLE>(slot, o)?;
            slot.rounds.store(o.rounds(), Ordering::Relaxed);
            Some(p)
        })
    }

    /// [`Self::alloc_audit_hot`] for up to `n` objects in one visit to the thread cache,
    /// appended to `out`; stops at the first object the fast path declines. Returns how
    /// many it took.
    fn alloc_audit_many(&self, n: usize, out: &mut Vec<NonNull<u8>>) -> usize {
        let inner = &*self.inner;
        if !inner.audit_fast_alloc {
            return 0;
        }
        self.with_current_slot(|slot, o| {
            let start = out.len();
            while out.len() - start < n {
                let Some(p) = inner.audit_take::<false>(slot, o) else {
                    break;
                };
                out.push(p);
            }
            out.len() - start
        })
    }

    /// [`Self::free_audit_hot`] for a run of objects in one visit to the thread cache;
    /// stops at the first object the fast path declines. Returns how many it freed.
    fn free_audit_many(&self, objs: &[NonNull<u8>]) -> usize {
        let inner = &*self.inner;
        if !inner.audit_fast_free {
            return 0;
        }
        self.with_current_slot(|slot, o| {
            objs.iter()
                .take_while(|p| {
                    inner
                        .audit_give::<false>(slot, o, p.as_ptr().addr())
                        .is_some()
                })
                .count()
        })
    }

    /// AUDIT free: the thread-cache fast path, else everything else out of line (inline so
    /// that the fast path's leaf function returns straight to the caller).
    #[inline(always)]
    fn free_audit(&self, addr: usize, typed: bool) -> Result<(), Box<Report>> {
        let done = if typed {
            self.free_audit_hot::<true>(addr)
        } else {
            self.free_audit_hot::<false>(addr)
        };
        if done {
            return Ok(());
        }
        self.free_audit_cold(addr, typed)
    }

    /// Everything [`Self::free_audit`]'s fast path declined (misuse, full magazine, stale
    /// generation, destructor), out of line.
    #[cold]
    #[inline(never)]
    fn free_audit_cold(&self, addr: usize, typed: bool) -> Result<(), Box<Report>> {
        let p = match self.inner.audit_free(addr, typed) {
            Ok(p) => p,
            Err(r) => return raise(&r, self.inner.policy),
        };
        if let Some(nn) = NonNull::new(p)
            && self.fast_push(nn)
        {
            return Ok(());
        }
        self.inner.free_slow(p)
    }

    /// Frees an object (`skmem_cache_free`).
    ///
    /// In AUDIT mode every free is validated first (see [`Cache::try_free`]); otherwise the
    /// object goes into this thread's magazine unchecked, exactly like XNU, and misuse is
    /// caught only if it reaches the slab layer (the `skmem_slab_free_locked` report).
    ///
    /// Returns `Err` only under [`Policy::Report`].
    ///
    /// # Safety
    /// Unless the cache is in AUDIT mode (where any address is accepted and misuse is
    /// reported instead), `p` must have been returned by `alloc`/`alloc_batch` of this cache
    /// and not freed since, and must not be used after this call.
    #[inline]
    pub unsafe fn free(&self, p: NonNull<u8>) -> Result<(), Box<Report>> {
        if self.audit {
            return self.free_audited(p);
        }
        if self.fast_push(p) {
            return Ok(());
        }
        self.free_cold(p)
    }

    /// [`Self::free`] in an AUDIT cache, out of line: `free`'s callers (production code)
    /// then keep one call in their cold branch instead of the audit paths' two, and need no
    /// extra saved registers. (`try_free`, the audit API, inlines [`Self::free_audit`].)
    #[cold]
    #[inline(never)]
    fn free_audited(&self, p: NonNull<u8>) -> Result<(), Box<Report>> {
        self.free_audit(p.as_ptr().addr(), false)
    }

    /// The production path past the thread cache (depot, slab layer), out of line.
    #[inline(never)]
    fn free_cold(&self, p: NonNull<u8>) -> Result<(), Box<Report>> {
        self.inner.free_slow(p.as_ptr())
    }

    /// Frees any address, safely: only AUDIT caches can tell a valid object from anything
    /// else, so this returns [`FreeError::NotAudited`] (touching nothing) for other caches.
    /// In an AUDIT cache it validates the address (ours, start of an object, allocated by the
    /// raw API, not already free) with one atomic state transition, so double frees are
    /// caught even while the first copy sits in a magazine and two racing frees cannot both
    /// succeed. It never dereferences `p`: all writes go through the cache's own pointer.
    /// Objects owned by a [`crate::TypedObj`] are refused ([`InvalidReason::OwnedByHandle`]).
    #[inline]
    pub fn try_free(&self, p: *mut u8) -> Result<(), FreeError> {
        if !self.audit {
            return Err(self.not_audited());
        }
        self.free_audit(p.addr(), false).map_err(FreeError::Audit)
    }

    #[cold]
    fn not_audited(&self) -> FreeError {
        FreeError::NotAudited {
            cache: self.inner.name.to_string(),
        }
    }

    /// Allocates up to `n` objects into `out` (`skmem_cache_batch_alloc`); returns how many
    /// were allocated. Magazine rounds come first; with [`Mode::BATCH`] the rest are taken from
    /// the slab layer in one lock hold per slab.
    ///
    /// In [`Mode::AUDIT`] with [`Policy::Report`](crate::Policy::Report), a cached object found modified after free
    /// stops the batch with `Err(AllocError::Audit(report))`, as [`Cache::alloc`] does: the
    /// objects already handed out stay in `out` and belong to the caller (the modified one
    /// went back to the slab layer re-poisoned), so no misuse report is ever lost.
    pub fn alloc_batch(&self, n: usize, out: &mut Vec<NonNull<u8>>) -> Result<usize, AllocError> {
        out.reserve(n);
        let mut got = 0;
        if !self.inner.audit {
            while got < n {
                // The loaded magazine's rounds in one go, then one object through the
                // magazine exchange (which loads the next magazine), and so on.
                got += self.fast_pop_many(n - got, out);
                if got == n {
                    break;
                }
                match self.inner.mag_alloc_one() {
                    Some(p) => {
                        out.push(p);
                        got += 1;
                    }
                    None => break,
                }
            }
            if got < n && self.inner.mode.contains(Mode::BATCH) {
                // `skmem_slab_batch_alloc`: the rest from the slab layer in one lock hold
                // (per slab created), then constructed outside the lock.
                let start = out.len();
                self.inner.slab_alloc_batch(n - got, out);
                for i in start..out.len() {
                    let Some(&p) = out.get(i) else { break };
                    if let Err(e) = self.inner.construct(p.as_ptr()) {
                        // At the first failure the rest go back to the slab layer
                        // (`skm_sl_alloc_fail += remaining`, as XNU).
                        // `construct` already freed out[i]; drop it and return the rest.
                        let rest: Vec<_> = out.drain(i..).skip(1).collect();
                        lock(&self.inner.slab).c.sl_alloc_fail += rest.len() as u64;
                        for q in rest {
                            let _ = self.inner.slab_free(q.as_ptr().addr());
                        }
                        let total = got + (i - start);
                        return if total == 0 { Err(e) } else { Ok(total) };
                    }
                }
                got += out.len() - start;
            }
        }
        while got < n {
            let one = if self.audit {
                // AUDIT: as many as the fast path takes in one visit to the thread cache,
                // then one object through the full path (exchange, slab layer, reports),
                // without asking the fast path again.
                got += self.alloc_audit_many(n - got, out);
                if got == n {
                    break;
                }
                self.alloc_audit_cold(false)
            } else {
                self.alloc()
            };
            match one {
                Ok(p) => {
                    out.push(p);
                    got += 1;
                }
                // A misuse report always reaches the caller, even mid-batch (fuzz finding
                // KB-1: it used to be dropped here once `got > 0`).
                Err(e) if got == 0 || matches!(e, AllocError::Audit(_)) => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got)
    }

    /// Frees a batch (`skmem_cache_batch_free`). Stops at the first report (Report policy)
    /// and returns it; the remaining objects are not freed.
    ///
    /// # Safety
    /// As for [`Cache::free`], for every element.
    pub unsafe fn free_batch(&self, objs: &[NonNull<u8>]) -> Result<(), Box<Report>> {
        if self.audit {
            return self.free_audit_batch(objs);
        }
        // As many as fit into the loaded magazine in one go; when none fit, one `free`
        // through the magazine exchange (which loads an empty magazine).
        in_runs(
            objs,
            |run| self.fast_push_many(run),
            // SAFETY: forwarded from this function's contract.
            |p| unsafe { self.free(p) },
        )
    }

    /// [`Cache::try_free`] for many objects, in order: each is validated as `try_free`
    /// validates one, in runs that visit the thread cache once. Stops at the first misuse:
    /// the objects before it are freed, it and the ones after it are untouched, and the
    /// error carries its report (under [`Policy::Report`](crate::Policy::Report); the other
    /// policies panic or abort there). [`FreeError::NotAudited`] for other caches.
    pub fn try_free_batch(&self, objs: &[NonNull<u8>]) -> Result<(), FreeError> {
        if !self.audit {
            return Err(self.not_audited());
        }
        self.free_audit_batch(objs).map_err(FreeError::Audit)
    }

    /// The AUDIT batch free behind [`Self::free_batch`] and [`Self::try_free_batch`]: fast
    /// runs through the thread cache; each object the fast path declines goes through the
    /// full path (which reports misuse or exchanges the magazine).
    fn free_audit_batch(&self, objs: &[NonNull<u8>]) -> Result<(), Box<Report>> {
        in_runs(
            objs,
            |run| self.free_audit_many(run),
            |p| self.free_audit_cold(p.as_ptr().addr(), false),
        )
    }

    /// [`Self::fast_pop`] for up to `n` rounds at once (production caches).
    fn fast_pop_many(&self, n: usize, out: &mut Vec<NonNull<u8>>) -> usize {
        self.with_current_slot(|_, o| o.pop_many(n, out))
    }

    /// [`Self::fast_push`] for as many of `objs` as fit (production caches).
    fn fast_push_many(&self, objs: &[NonNull<u8>]) -> usize {
        self.with_current_slot(|_, o| o.push_many(objs))
    }

    /// Runs a bulk operation `f` on this thread's cache, then publishes `cp_rounds`; 0 if
    /// there is none to use.
    fn with_current_slot(&self, f: impl FnOnce(&CpuSlot, &mut CpuOwned) -> usize) -> usize {
        self.with_own(|slot, o| {
            let k = f(slot, o);
            slot.rounds.store(o.rounds(), Ordering::Relaxed);
            Some(k)
        })
        .unwrap_or(0)
    }

    pub(crate) fn alloc_typed(&self) -> Result<NonNull<u8>, AllocError> {
        if !self.inner.audit {
            return self.alloc();
        }
        self.alloc_audit(true)
    }

    /// # Safety
    /// `p` came from `alloc_typed` of this cache and is owned by the caller.
    pub(crate) unsafe fn free_typed(&self, p: NonNull<u8>) -> Result<(), Box<Report>> {
        if self.inner.audit {
            return self.free_audit(p.as_ptr().addr(), true);
        }
        // SAFETY: forwarded.
        unsafe { self.free(p) }
    }

    /// `skmem_cache_magazine_purge` + enable: empties the depot and this thread's magazines
    /// into the slab layer now; other threads flush theirs at their next operation on this
    /// cache (the fast path compares a generation number) or at thread exit.
    pub fn purge(&self) {
        self.inner.purge();
    }

    /// `skmem_cache_reap_now(skm, purge)`: purge if `purge` or RECLAIM mode; otherwise make
    /// the whole depot reapable and reap it, and drop previous magazines (this thread now,
    /// other threads at their next depot visit).
    pub fn reap_now(&self, purge: bool) {
        self.inner.reap_now(purge);
    }

    /// `skmem_depot_ws_reap`: destroys the magazines the working set did not need.
    pub fn reap(&self) {
        self.inner.ws_reap();
    }

    /// `skmem_cache_update` (XNU runs it every `SKMEM_CACHE_UPDATE_INTERVAL`, 11 s; call it
    /// periodically): hash rescale check, depot working-set update, and for DYNAMIC caches
    /// a resize to the next magazine type when depot contention since the last update
    /// exceeds the threshold and the chunk size is below the type's `mt_maxbuf`.
    pub fn update(&self) {
        self.inner.update();
    }

    /// `skmem_cache_magazine_resize`: purge and move to the next magazine type, regardless
    /// of contention (no-op past the last type).
    pub fn resize(&self) {
        self.inner.resize();
    }

    /// A statistics snapshot (`sk_stats_cache`).
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    /// The cache's block of `skmem_dump`.
    pub fn dump(&self) -> String {
        crate::stats::dump_cache(&self.inner)
    }

    /// Reports raised where no caller could receive them (Report policy): misuse found while
    /// flushing magazines, or by a `TypedObj` drop. Drains the list.
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *lock(&self.inner.reports))
    }

    /// Returns this thread's magazines for this cache to the depot now, exactly as thread
    /// exit does (full → full list, empty → empty list, partially filled → rounds to the
    /// slab layer). For thread pools and for code that wants the depot complete before it
    /// inspects statistics.
    pub fn flush_thread_cache(&self) {
        let own = cpu::with_mags(|m| {
            if m.get(self.inner.id)?.is_for(&self.inner) {
                m.take(self.inner.id)
            } else {
                None
            }
        })
        .flatten();
        drop(own);
    }

    /// Objects allocated and not cached in any magazine (what destroy would call unfreed).
    pub fn outstanding(&self) -> u64 {
        self.inner.outstanding(false)
    }

    /// `skmem_cache_destroy`, returning the not-empty report instead of only raising it when
    /// the policy is [`Policy::Report`] (Panic and Abort behave as on drop).
    pub fn destroy(mut self) -> Result<(), Box<Report>> {
        self.done = true;
        self.destroy_inner()
    }

    fn destroy_inner(&mut self) -> Result<(), Box<Report>> {
        self.inner.purge();
        // Our own thread cache goes away completely.
        self.flush_thread_cache();
        let unfreed = self.inner.outstanding(false);
        if let Some(reg) = registry::global() {
            reg.unregister(&self.inner);
        }
        crate::sync::ids::give(self.inner.id);
        if unfreed == 0 {
            return Ok(());
        }
        let r = Report {
            kind: ReportKind::NotEmpty { unfreed },
            obj: 0,
            skm: self.inner.skm(),
            cache: self.inner.name.to_string(),
            last_alloc: None,
            last_free: None,
        };
        if self.inner.policy == Policy::Panic && std::thread::panicking() {
            eprintln!("{}", r.panic_line());
            return Err(Box::new(r));
        }
        raise(&r, self.inner.policy)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            if let Err(r) = self.destroy_inner() {
                eprintln!("{}", r.message());
            }
        }
    }
}

impl CacheConfig {
    /// Creates the cache (`skmem_cache_create`).
    pub fn build(self) -> Result<Cache, ConfigError> {
        Cache::create(self, None)
    }
}

/// The audit state byte of the object at `p`, for tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn state_of(cache: &Cache, p: *mut u8) -> Option<u8> {
    let (a, _, i) = cache.inner.audit_locate(p.addr()).ok()?;
    a.get().bc.get(i).map(|b| b.state.load(Ordering::Acquire))
}

/// Frees `objs` in order, as many at a time as `bulk` takes (it returns how many it freed
/// from the front of the slice it is given); an object `bulk` declines goes through `one`.
/// Stops at the first error (the objects after it are not freed).
fn in_runs(
    objs: &[NonNull<u8>],
    mut bulk: impl FnMut(&[NonNull<u8>]) -> usize,
    mut one: impl FnMut(NonNull<u8>) -> Result<(), Box<Report>>,
) -> Result<(), Box<Report>> {
    let mut rest = objs;
    while let Some((&p, tail)) = rest.split_first() {
        let k = bulk(rest);
        if k > 0 {
            rest = rest.get(k..).unwrap_or_default();
            continue;
        }
        one(p)?;
        rest = tail;
    }
    Ok(())
}

//! The CPU layer, per thread: each thread has, for each cache it uses, a [`CpuSlot`]
//! (`struct skmem_cpu_cache`) with a loaded and a previous magazine. The owning thread
//! reaches it through a thread-local table indexed by the cache id, without locks or atomic
//! read-modify-writes; other threads only read its published round counts.

use std::ptr;

use crate::cache::Inner;
use crate::magazine::Mag;
use crate::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use crate::sync::{Arc, UnsafeCell, tls};

/// Owner-only state of a thread's cache for one cache.
#[derive(Debug)]
pub(crate) struct CpuOwned {
    /// `cp_loaded`.
    pub(crate) loaded: Option<Mag>,
    /// `cp_ploaded`.
    pub(crate) ploaded: Option<Mag>,
    /// `cp_rounds`; -1 when nothing is loaded.
    pub(crate) rounds: i32,
    /// `cp_prounds`; -1 when there is no previous magazine.
    pub(crate) prounds: i32,
    /// `cp_magsize`; 0 when the magazine layer is off for this thread.
    pub(crate) magsize: i32,
    /// Depot generation this thread cache is synchronised with.
    pub(crate) generation: u64,
    /// Depot `pgeneration` this thread cache has honoured.
    pub(crate) pgeneration: u64,
    /// `cp_alloc` / `cp_free` (published to the atomics below at every depot visit).
    pub(crate) alloc: u64,
    pub(crate) free: u64,
    /// AUDIT: the audit table and base of the slab this thread touched last (a one-entry
    /// cache in front of the radix map; revalidated against `AuditSlab::base` on use).
    pub(crate) last_audit: *const crate::audit::AuditSlab,
    pub(crate) last_base: usize,
}

impl CpuOwned {
    /// `skmem_cpu_reload`: `mg` (with `rounds` rounds) becomes loaded, loaded becomes previous.
    pub(crate) fn reload(&mut self, mg: Option<Mag>, rounds: i32) {
        self.ploaded = std::mem::replace(&mut self.loaded, mg);
        self.prounds = self.rounds;
        self.rounds = rounds;
    }

    /// Detaches both magazines with their round counts (purge / flush).
    pub(crate) fn detach(&mut self) -> Vec<(Mag, usize)> {
        let mut out = Vec::new();
        if let Some(m) = self.loaded.take() {
            out.push((m, usize::try_from(self.rounds).unwrap_or(0)));
        }
        if let Some(m) = self.ploaded.take() {
            out.push((m, usize::try_from(self.prounds).unwrap_or(0)));
        }
        self.rounds = -1;
        self.prounds = -1;
        out
    }
}

/// One thread's cache for one cache.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct CpuSlot {
    /// The cache this slot belongs to (compared, never dereferenced, on the fast path).
    pub(crate) owner: *const Inner,
    pub(crate) own: UnsafeCell<CpuOwned>,
    /// Published `cp_rounds` / `cp_prounds` (single writer: the owner, relaxed stores).
    pub(crate) rounds: AtomicI32,
    pub(crate) prounds: AtomicI32,
    /// Published `cp_alloc` / `cp_free`.
    pub(crate) alloc: AtomicU64,
    pub(crate) free: AtomicU64,
    /// The owner's thread number.
    pub(crate) thread: u64,
}

// SAFETY: `own` is only ever accessed by the thread whose table holds the slot (see
// `Inner::with_slot`, `Cache::fast_pop`/`fast_push`, `Inner::retire_slot`); every other
// field is atomic. Other threads only read the published atomics.
unsafe impl Sync for CpuSlot {}
// SAFETY: `owner` is only compared, never dereferenced; `last_audit` points to an audit
// table owned by the same cache (type-stable until the cache is dropped, which cannot happen
// while a slot of it is reachable); magazines are Send.
unsafe impl Send for CpuSlot {}

impl CpuSlot {
    pub(crate) fn new(owner: *const Inner, thread: u64, generation: u64, magsize: u32) -> CpuSlot {
        CpuSlot {
            owner,
            own: UnsafeCell::new(CpuOwned {
                loaded: None,
                ploaded: None,
                rounds: -1,
                prounds: -1,
                magsize: i32::try_from(magsize).unwrap_or(i32::MAX),
                generation,
                pgeneration: 0,
                alloc: 0,
                free: 0,
                last_audit: ptr::null(),
                last_base: 0,
            }),
            rounds: AtomicI32::new(-1),
            prounds: AtomicI32::new(-1),
            alloc: AtomicU64::new(0),
            free: AtomicU64::new(0),
            thread,
        }
    }

    /// Publishes the owner's counters (called by the owner).
    pub(crate) fn publish(&self, o: &CpuOwned) {
        self.rounds.store(o.rounds, Ordering::Relaxed);
        self.prounds.store(o.prounds, Ordering::Relaxed);
        self.alloc.store(o.alloc, Ordering::Relaxed);
        self.free.store(o.free, Ordering::Relaxed);
    }
}

/// A thread's entry for one cache. Dropping it returns its magazines to the cache.
#[derive(Debug)]
pub(crate) struct TlsEntry {
    pub(crate) inner: Arc<Inner>,
    pub(crate) slot: Arc<CpuSlot>,
}

impl TlsEntry {
    pub(crate) fn is_for(&self, inner: &Inner) -> bool {
        ptr::eq(Arc::as_ptr(&self.inner), inner)
    }
}

impl Drop for TlsEntry {
    fn drop(&mut self) {
        self.inner.retire_slot(&self.slot);
    }
}

/// Entries of the fast index: one per possible `u8` index, so indexing it with a `u8` needs
/// no bounds check. Cache ids below [`FAST_NONE`] have their slot pointer directly in the
/// thread-local block (one dependent load on the fast path); higher ids use the slow path's
/// table only.
pub(crate) const FAST_SLOTS: usize = 256;

/// The fast index entry that is never set: caches whose id does not fit use it (and so
/// always take the slow path).
pub(crate) const FAST_NONE: u8 = u8::MAX;

/// The fast index of cache id `id` ([`FAST_NONE`] if it has none).
pub(crate) fn fast_index(id: usize) -> u8 {
    u8::try_from(id)
        .ok()
        .filter(|&i| i != FAST_NONE)
        .unwrap_or(FAST_NONE)
}

/// A thread's table of entries, indexed by cache id. Owns the thread caches; its fast index
/// lives in a separate, destructor-free thread-local ([`FAST`]) so that the fast path has no
/// lazy-registration check.
#[derive(Debug)]
pub(crate) struct ThreadMags {
    entries: Vec<Option<TlsEntry>>,
    pub(crate) thread: u64,
}

/// `FAST[i]` is null or points to the slot owned by this thread's `entries[i]`.
type FastIndex = [*const CpuSlot; FAST_SLOTS];

fn set_fast(idx: usize, p: *const CpuSlot) {
    if idx >= usize::from(FAST_NONE) {
        return;
    }
    let _ = FAST.try_with(|f| {
        f.with_mut(|f| {
            // SAFETY: thread-local, and no reference into it outlives `fast_slot`'s closure.
            if let Some(s) = unsafe { &mut *f }.get_mut(idx) {
                *s = p;
            }
        })
    });
}

/// Runs `f` with this thread's slot for cache id `idx`, if it has one in the fast index.
#[inline(always)]
pub(crate) fn fast_slot<R>(idx: u8, f: impl FnOnce(&CpuSlot) -> Option<R>) -> Option<R> {
    FAST.try_with(|fast| {
        fast.with(|a| {
            // SAFETY: thread-local; only `set_fast` writes it, never while this runs.
            // (`FAST_SLOTS` covers every `u8`, so this index needs no bounds check.)
            let p = unsafe { &*a }[usize::from(idx)];
            if p.is_null() {
                return None;
            }
            // SAFETY: a non-null entry points to the slot held (by Arc) in this thread's
            // `entries[idx]`, which `take`/`drop` clear before releasing that Arc.
            f(unsafe { &*p })
        })
    })
    .ok()
    .flatten()
}

impl ThreadMags {
    const fn new() -> ThreadMags {
        ThreadMags {
            entries: Vec::new(),
            thread: 0,
        }
    }

    /// The entry for cache id `idx`.
    pub(crate) fn get(&self, idx: usize) -> Option<&TlsEntry> {
        self.entries.get(idx)?.as_ref()
    }

    /// Installs `e` at `idx` (the slot must be empty: take the old entry first).
    pub(crate) fn set(&mut self, idx: usize, e: TlsEntry) {
        if self.entries.len() <= idx {
            self.entries.resize_with(idx + 1, || None);
        }
        let p = Arc::as_ptr(&e.slot);
        if let Some(s) = self.entries.get_mut(idx) {
            *s = Some(e);
            set_fast(idx, p);
        }
    }

    /// Removes the entry at `idx` (to be dropped outside the table).
    pub(crate) fn take(&mut self, idx: usize) -> Option<TlsEntry> {
        set_fast(idx, ptr::null());
        self.entries.get_mut(idx)?.take()
    }
}

impl Drop for ThreadMags {
    fn drop(&mut self) {
        // Thread exit: every entry returns its magazines to its cache's depot.
        let _ = FAST.try_with(|f| {
            // SAFETY: thread-local; nothing else references it during this drop.
            f.with_mut(|f| unsafe { *f = [ptr::null(); FAST_SLOTS] })
        });
        while let Some(e) = self.entries.pop() {
            drop(e);
        }
    }
}

tls! {
    static MAGS: UnsafeCell<ThreadMags> = UnsafeCell::new(ThreadMags::new());
}

tls! {
    static FAST: UnsafeCell<FastIndex> = UnsafeCell::new([ptr::null(); FAST_SLOTS]);
}

/// Runs `f` on this thread's table; `None` while the thread-local is being destroyed.
///
/// `f` must not call back into anything that could reach this function again (no user
/// callbacks, no dropping of `TlsEntry`s): it gets exclusive access to the table.
#[inline(always)]
pub(crate) fn with_mags<R>(f: impl FnOnce(&mut ThreadMags) -> R) -> Option<R> {
    MAGS.try_with(|cell| {
        cell.with_mut(|p| {
            // SAFETY: the table is thread-local, so only this thread can reach it, and `f`
            // (per this function's contract) never re-enters `with_mags`, so this is the only
            // live reference to it.
            f(unsafe { &mut *p })
        })
    })
    .ok()
}

/// This thread's number (0 until first use) and its last audit transaction number, in one
/// thread-local so that recording a transaction costs one TLS access.
#[derive(Debug)]
struct ThreadIds {
    thread: std::cell::Cell<u64>,
    seq: std::cell::Cell<u64>,
}

tls! {
    static IDS: ThreadIds = ThreadIds {
        thread: std::cell::Cell::new(0),
        seq: std::cell::Cell::new(0),
    };
}

/// Assigns this thread its number (first use).
#[cold]
#[inline(never)]
fn assign_thread(t: &std::cell::Cell<u64>) -> u64 {
    let n = crate::sync::ids::next_thread();
    t.set(n);
    n
}

/// This thread's number and its next audit transaction number.
#[inline(always)]
pub(crate) fn next_txn() -> (u64, u64) {
    IDS.try_with(|ids| {
        let seq = ids.seq.get() + 1;
        ids.seq.set(seq);
        let n = ids.thread.get();
        let thread = if n != 0 {
            n
        } else {
            assign_thread(&ids.thread)
        };
        (thread, seq)
    })
    .unwrap_or((0, 0))
}

/// This thread's process-unique number (1-based, assigned on first use), as recorded in
/// audit transactions.
#[inline]
pub(crate) fn current_thread() -> u64 {
    IDS.try_with(|ids| {
        let n = ids.thread.get();
        if n != 0 {
            n
        } else {
            assign_thread(&ids.thread)
        }
    })
    .unwrap_or(0)
}

/// The thread number stored in a table (same numbering as [`current_thread`]).
pub(crate) fn thread_no(m: &mut ThreadMags) -> u64 {
    if m.thread == 0 {
        m.thread = current_thread();
    }
    m.thread
}

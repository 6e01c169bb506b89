//! The CPU layer, per thread: each thread has, for each cache it uses, a [`CpuSlot`]
//! (`struct skmem_cpu_cache`) with a loaded and a previous magazine. The owning thread
//! reaches it through a thread-local table indexed by the cache id, without locks or atomic
//! read-modify-writes; other threads only read its published round counts.

use std::ptr::{self, NonNull};

use crate::cache::Inner;
use crate::magazine::Mag;
use crate::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use crate::sync::{Arc, UnsafeCell, tls};

/// Owner-only state of a thread's cache for one cache.
#[derive(Debug)]
pub(crate) struct CpuOwned {
    /// `cp_loaded` ([`Mag::none`] when nothing is loaded).
    pub(crate) loaded: Mag,
    /// `cp_ploaded`.
    pub(crate) ploaded: Option<Mag>,
    /// `cp_prounds`; -1 when there is no previous magazine.
    pub(crate) prounds: i32,
    /// `cp_magsize`; 0 when the magazine layer is off for this thread.
    pub(crate) magsize: i32,
    /// Depot generation this thread cache is synchronised with.
    pub(crate) generation: u64,
    /// Depot `pgeneration` this thread cache has honoured.
    pub(crate) pgeneration: u64,
    /// `cp_alloc` / `cp_free` up to the last [`CpuOwned::settle`] (see `word`).
    alloc: u64,
    free: u64,
    /// `cp_rounds` (low 32 bits, as `u32`: `u32::MAX` is -1, nothing loaded) and the pops
    /// since the last settle (high 32 bits), in one word: a fast-path pop adds
    /// `2^32 - 1` and a push adds 1, so each operation updates this one word and nothing
    /// else (a separate counter increment per operation cost about 20% of a pair). Frees are
    /// derived: pops plus the change of `cp_rounds` since the last settle (`rbase`).
    word: u64,
    /// `cp_rounds` at the last settle.
    rbase: i32,
    /// AUDIT: the audit table and base of the slab this thread touched last (a one-entry
    /// cache in front of the radix map; revalidated against `AuditSlab::base` on use).
    pub(crate) last_audit: *const crate::audit::AuditSlab,
    pub(crate) last_base: usize,
}

/// What a fast-path pop adds to [`CpuOwned`]'s packed word: one pop, one round less.
const POP: u64 = (1 << 32) - 1;

impl CpuOwned {
    /// Nothing loaded, counters at zero.
    pub(crate) fn new(generation: u64, magsize: u32) -> CpuOwned {
        CpuOwned {
            loaded: Mag::none(),
            ploaded: None,
            prounds: -1,
            magsize: i32::try_from(magsize).unwrap_or(i32::MAX),
            generation,
            pgeneration: 0,
            alloc: 0,
            free: 0,
            word: u64::from(u32::MAX),
            rbase: -1,
            last_audit: ptr::null(),
            last_base: 0,
        }
    }

    /// `cp_rounds` (-1 when nothing is loaded).
    pub(crate) fn rounds(&self) -> i32 {
        self.word as u32 as i32
    }

    /// Folds the pops counted in the packed word into `cp_alloc` / `cp_free`.
    fn settle(&mut self) {
        (self.alloc, self.free) = self.counts();
        self.rbase = self.rounds();
        self.word = u64::from(self.rbase as u32);
    }

    /// `(cp_alloc, cp_free)`.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let pops = self.word >> 32;
        let delta = i64::from(self.rounds()) - i64::from(self.rbase);
        (
            self.alloc + pops,
            (self.free + pops).wrapping_add_signed(delta),
        )
    }

    /// Sets `cp_rounds` (a magazine change: not an allocation or a free).
    pub(crate) fn set_rounds(&mut self, rounds: i32) {
        self.settle();
        self.rbase = rounds;
        self.word = u64::from(rounds as u32);
    }

    /// Pops the top round of the loaded magazine (`cp_alloc++`, `cp_rounds--`); also returns
    /// the new `cp_rounds`. `None` when the magazine is empty or nothing is loaded: the
    /// index `cp_rounds - 1`, taken as `u32`, then wraps past any magazine length, so one
    /// bounds check covers all three.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<(NonNull<u8>, i32)> {
        let p = self.peek()?;
        Some((p, self.pop_peeked()))
    }

    /// The round [`Self::pop`] would return, left in place (`None` as for `pop`).
    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<NonNull<u8>> {
        let r = (self.word as u32).wrapping_sub(1);
        self.loaded.round.get(r as usize).copied()
    }

    /// Pops the round [`Self::peek`] just returned (the caller saw `Some`, so the magazine
    /// holds at least one); returns the new `cp_rounds`.
    #[inline(always)]
    pub(crate) fn pop_peeked(&mut self) -> i32 {
        let r = (self.word as u32).wrapping_sub(1);
        self.count_pops(1);
        r as i32
    }

    /// Adds `k` pops (at most `cp_rounds`) to the packed word: `k` more on the counter, `k`
    /// fewer rounds (which stay >= 0, so nothing borrows from the counter). When the
    /// counter passes 2^32 it carries out of the word, and those 2^32 pops are folded into
    /// the settled counts at once.
    #[inline(always)]
    fn count_pops(&mut self, k: u64) {
        let (w, wrapped) = self.word.overflowing_add(k * POP);
        self.word = w;
        if wrapped {
            self.alloc += 1 << 32;
            self.free += 1 << 32;
        }
    }

    /// Pops up to `n` rounds off the loaded magazine into `out`, top first (the order single
    /// pops would give); returns how many. Counted like that many [`CpuOwned::pop`]s.
    pub(crate) fn pop_many(&mut self, n: usize, out: &mut Vec<NonNull<u8>>) -> usize {
        let r = usize::try_from(self.rounds()).unwrap_or(0);
        let k = n.min(r);
        let Some(top) = self.loaded.round.get(r - k..r) else {
            return 0;
        };
        out.extend(top.iter().rev());
        self.count_pops(k as u64);
        k
    }

    /// Pushes as many of `objs` as fit onto the loaded magazine, in order (the last one
    /// pushed ends on top, as with single pushes); returns how many.
    pub(crate) fn push_many(&mut self, objs: &[NonNull<u8>]) -> usize {
        let r = self.word as u32 as usize;
        // (-1, nothing loaded, is `u32::MAX` here: past any magazine length.)
        let room = self.loaded.round.len().saturating_sub(r);
        let k = objs.len().min(room);
        let (Some(dst), Some(src)) = (self.loaded.round.get_mut(r..r + k), objs.get(..k)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        self.word += k as u64;
        k
    }

    /// Takes back the round [`CpuOwned::push`] just pushed (the caller then refused the
    /// object): as if the push never happened.
    #[inline(always)]
    pub(crate) fn unpush(&mut self) {
        self.word -= 1;
    }

    /// Pushes `p` onto the loaded magazine (`cp_free++`, `cp_rounds++`); returns the new
    /// `cp_rounds`. `None` when it is full or nothing is loaded (a loaded magazine of the
    /// current generation has exactly `cp_magsize` rounds, so its bounds check is the "full"
    /// check; -1 wraps).
    #[inline(always)]
    pub(crate) fn push(&mut self, p: NonNull<u8>) -> Option<i32> {
        let w = self.word;
        let r = w as u32;
        *self.loaded.round.get_mut(r as usize)? = p;
        self.word = w + 1;
        Some(r as i32 + 1)
    }

    /// `skmem_cpu_reload`: `mg` (with `rounds` rounds) becomes loaded, loaded becomes previous.
    pub(crate) fn reload(&mut self, mg: Option<Mag>, rounds: i32) {
        self.ploaded = std::mem::replace(&mut self.loaded, mg.unwrap_or_else(Mag::none)).some();
        self.prounds = self.rounds();
        self.set_rounds(rounds);
    }

    /// Detaches both magazines with their round counts (purge / flush).
    pub(crate) fn detach(&mut self) -> Vec<(Mag, usize)> {
        let mut out = Vec::new();
        if let Some(m) = std::mem::replace(&mut self.loaded, Mag::none()).some() {
            out.push((m, usize::try_from(self.rounds()).unwrap_or(0)));
        }
        if let Some(m) = self.ploaded.take() {
            out.push((m, usize::try_from(self.prounds).unwrap_or(0)));
        }
        self.set_rounds(-1);
        self.prounds = -1;
        out
    }
}

/// One thread's cache for one cache.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct CpuSlot {
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
// SAFETY: `last_audit` points to an audit
// table owned by the same cache (type-stable until the cache is dropped, which cannot happen
// while a slot of it is reachable); magazines are Send.
unsafe impl Send for CpuSlot {}

impl CpuSlot {
    pub(crate) fn new(thread: u64, generation: u64, magsize: u32) -> CpuSlot {
        CpuSlot {
            own: UnsafeCell::new(CpuOwned::new(generation, magsize)),
            rounds: AtomicI32::new(-1),
            prounds: AtomicI32::new(-1),
            alloc: AtomicU64::new(0),
            free: AtomicU64::new(0),
            thread,
        }
    }

    /// Publishes the owner's counters (called by the owner).
    pub(crate) fn publish(&self, o: &CpuOwned) {
        let (alloc, free) = o.counts();
        self.rounds.store(o.rounds(), Ordering::Relaxed);
        self.prounds.store(o.prounds, Ordering::Relaxed);
        self.alloc.store(alloc, Ordering::Relaxed);
        self.free.store(free, Ordering::Relaxed);
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

/// This thread's next audit transaction number (for callers that already know the thread
/// number, e.g. from their [`CpuSlot`]).
#[inline(always)]
pub(crate) fn next_seq() -> u64 {
    IDS.try_with(|ids| {
        let seq = ids.seq.get() + 1;
        ids.seq.set(seq);
        seq
    })
    .unwrap_or(0)
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn owned(magsize: u32) -> CpuOwned {
        let mut o = CpuOwned::new(1, magsize);
        o.reload(Some(Mag::new(magsize)), 0);
        o
    }

    fn obj(i: usize) -> NonNull<u8> {
        NonNull::new(std::ptr::without_provenance_mut(8 * (i + 1))).expect("non-null")
    }

    #[test]
    fn packed_word_counts_pops_and_pushes() {
        let mut o = owned(4);
        assert_eq!(o.counts(), (0, 0));
        assert_eq!(o.pop(), None, "empty magazine");
        for i in 0..4 {
            assert_eq!(o.push(obj(i)), Some(i as i32 + 1));
        }
        assert_eq!(o.push(obj(9)), None, "full magazine");
        assert_eq!(o.pop(), Some((obj(3), 3)), "LIFO");
        assert_eq!(o.pop(), Some((obj(2), 2)));
        assert_eq!(o.push(obj(7)), Some(3));
        assert_eq!((o.rounds(), o.counts()), (3, (2, 5)));
        // A magazine change re-bases cp_rounds without counting anything.
        o.reload(Some(Mag::new(4)), 4);
        assert_eq!((o.rounds(), o.prounds, o.counts()), (4, 3, (2, 5)));
        assert_eq!(o.pop().map(|(_, r)| r), Some(3));
        assert_eq!(o.counts(), (3, 5));
        let mags = o.detach();
        assert_eq!(mags.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![3, 3]);
        assert_eq!((o.rounds(), o.counts()), (-1, (3, 5)));
        assert_eq!(o.pop(), None, "nothing loaded");
        assert_eq!(o.push(obj(1)), None, "nothing loaded");
    }

    #[test]
    fn bulk_pops_and_pushes_match_single_ones() {
        let mut bulk = owned(6);
        let mut single = owned(6);
        let objs: Vec<_> = (0..8).map(obj).collect();
        assert_eq!(bulk.push_many(&objs), 6, "only what fits");
        for &p in &objs[..6] {
            single.push(p);
        }
        let mut out = Vec::new();
        assert_eq!(bulk.pop_many(4, &mut out), 4);
        let singles: Vec<_> = (0..4).map(|_| single.pop().unwrap().0).collect();
        assert_eq!(out, singles, "top first, like single pops");
        assert_eq!(
            (bulk.rounds(), bulk.counts()),
            (single.rounds(), single.counts())
        );
        assert_eq!(bulk.counts(), (4, 6));
        out.clear();
        assert_eq!(bulk.pop_many(10, &mut out), 2, "only what is there");
        assert_eq!(bulk.pop_many(1, &mut out), 0);
        assert_eq!((bulk.rounds(), bulk.counts()), (0, (6, 6)));
        bulk.detach();
        assert_eq!(bulk.push_many(&objs), 0, "nothing loaded");
        assert_eq!(bulk.pop_many(3, &mut out), 0, "nothing loaded");
        // A bulk pop that wraps the pop counter is not lost either.
        let mut w = owned(4);
        w.push_many(&objs[..4]);
        w.word += (u64::from(u32::MAX) - 1) << 32;
        let before = w.counts();
        assert_eq!(w.pop_many(3, &mut out), 3);
        assert_eq!(w.counts(), (before.0 + 3, before.1));
    }

    #[test]
    fn pop_counter_wraps_into_the_settled_counts() {
        let mut o = owned(2);
        o.push(obj(0));
        o.push(obj(1));
        // Pretend 2^32 - 1 pops (and as many pushes) happened since the last settle.
        o.word += u64::from(u32::MAX) << 32;
        let before = o.counts();
        assert_eq!(before, (u64::from(u32::MAX), u64::from(u32::MAX) + 2));
        assert_eq!(o.pop(), Some((obj(1), 1)));
        assert_eq!(
            o.counts(),
            (before.0 + 1, before.1),
            "the 2^32nd pop is not lost"
        );
        assert_eq!(o.pop(), Some((obj(0), 0)));
        assert_eq!(o.push(obj(5)), Some(1));
        assert_eq!(o.counts(), (before.0 + 2, before.1 + 1));
    }
}

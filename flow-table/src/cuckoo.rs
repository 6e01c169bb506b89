//! A concurrent bucketized cuckoo hash table in the style of skywalk's
//! `cuckoo_hashtable.c`, with lock-free lookups.
//!
//! * Buckets hold 6 slots (`{hash, node}`); a node lives in its primary bucket
//!   `hash & mask` or its alternate `alt_hash(hash) & mask` with
//!   `alt_hash(h) = h ^ (((h >> 16) + 1) * 0x5bd1e995)`.
//! * Adds that find both buckets full run a breadth-first search for a chain of moves
//!   (queue capped at 255 − 6 entries); moves put the node in its new bucket before taking
//!   it out of the old one and bump a sequence counter (odd while a move or resize runs),
//!   and a lookup that misses while the counter moved retries, so a concurrent lookup never
//!   misses a live node.
//! * When the search fails the table doubles (`cuckoo_resize(EXPAND)`); `try_shrink`
//!   halves it at ≤ 40 % load.
//!
//! Differences from skywalk, chosen for speed:
//! * **Lookups take no lock and write no shared memory.** Slots are atomics (`hash`, and
//!   the node as a pointer owning one `Arc` strong count); a lookup pins the current epoch
//!   (`crossbeam-epoch`, the RCU read side), compares hashes, then the node's key, and
//!   trusts a miss only when the move counter was even and unchanged (a seqlock over moves
//!   and resizes). Every slot store is `Release` and every slot load `Acquire`, so a
//!   lookup that observes any part of a move also observes the counter it bumped.
//! * Removed nodes are *retired*: the table's `Arc` is dropped only after every pinned
//!   reader that could still hold the pointer has unpinned (`Guard::defer`), the
//!   conntrack/RCU pattern. A lookup can therefore find an entry that is being removed
//!   (the flow manager's retain refuses a count that already reached 0 and reports a miss).
//! * No table lock on the read path: a resize builds the new bucket array, publishes it
//!   as the next *generation* (arrays are kept until the table is dropped, so a reader's
//!   reference never dangles), then empties the old array. At most [`GENERATIONS`]
//!   resizes over the table's life (a doubling from 6 to 2^24 takes 22).
//! * Writers (add, delete, resize) are serialised by one writer mutex, which keeps move
//!   paths valid without skywalk's trylock dance and makes slot updates single-writer.
//! * Nodes with exactly equal 32-bit hashes take separate slots instead of being chained
//!   through an intrusive `next` pointer.
//!
//! # Safety
//!
//! This module holds the crate's only `unsafe` code: turning a slot's pointer back into a
//! reference or an `Arc`. The invariants are:
//! 1. a non-null slot pointer came from `Arc::into_raw` and the table owns that strong
//!    count (moves and resizes transfer it, never duplicate it: exactly one slot of the
//!    live generation holds it);
//! 2. a pointer leaves the table only through [`CuckooTable::del`], which clears the slot
//!    and retires the owned `Arc` through the epoch, or through `Drop` (`&mut self`: no
//!    reader is left);
//! 3. readers dereference slot pointers only while pinned, and only for as long as the
//!    guard (and the table borrow) lives.
//!
//! The unit tests at the end of this file run under Miri (`MIRIFLAGS="-Zmiri-tree-borrows
//! -Zmiri-permissive-provenance -Zmiri-ignore-leaks" cargo +nightly miri test -p flow-table
//! --lib cuckoo`; the flags are for `crossbeam-epoch`'s own internals), and the loom models
//! in `tests/loom_cuckoo.rs` explore lookups racing moves, resizes and removals.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::OnceLock;

use crate::sync::{Arc, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Guard, Mutex, Ordering, pin};

/// Slots per bucket (`_CHT_BUCKET_SLOTS` on LP64).
pub const BUCKET_SLOTS: usize = 6;
/// `_CHT_BFS_QUEUE_LEN`.
pub const BFS_QUEUE_LEN: usize = 255;
/// `CUCKOO_HASHTABLE_ENTRIES_MAX`.
pub const ENTRIES_MAX: usize = 1 << 24;
/// `_CHT_MAX_LOAD_SHRINK` (percent).
pub const MAX_LOAD_SHRINK: usize = 40;
/// How many bucket arrays (resizes + 1) a table can go through. Shrinks stop while only
/// the generations needed to grow to [`ENTRIES_MAX`] remain, so growth never runs out.
pub const GENERATIONS: usize = 64;

/// `__alt_hash`.
pub fn alt_hash(h: u32) -> u32 {
    h ^ ((h >> 16).wrapping_add(1)).wrapping_mul(0x5bd1_e995)
}

/// Errors from the table (the kernel's errno in the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CuckooError {
    /// The node is already in the table.
    #[error("node already present (EEXIST)")]
    Exists,
    /// The node is not in the table.
    #[error("node not found (ENOENT)")]
    NotFound,
    /// The table cannot grow past `ENTRIES_MAX`.
    #[error("table full (ENOMEM)")]
    Full,
}

/// A read-side critical section (an epoch pin): nodes found while it lives stay valid
/// until it is dropped, even if a writer removes them meanwhile. Cheap to create; hold one
/// across a burst of lookups (a packet batch) and drop it between bursts so retired nodes
/// can be reclaimed. Not `Send`: a pin belongs to its thread.
pub struct ReadGuard {
    inner: Guard,
}

impl std::fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGuard").finish_non_exhaustive()
    }
}

impl ReadGuard {
    /// Pins the current epoch.
    pub fn pin() -> Self {
        ReadGuard { inner: pin() }
    }
}

/// Two cache lines: the six hashes (the tags a lookup scans) and the six node pointers.
#[repr(align(128))]
struct Bucket<T> {
    hashes: [AtomicU32; BUCKET_SLOTS],
    nodes: [AtomicPtr<T>; BUCKET_SLOTS],
}

impl<T> Bucket<T> {
    fn new() -> Self {
        Bucket {
            hashes: std::array::from_fn(|_| AtomicU32::new(0)),
            nodes: std::array::from_fn(|_| AtomicPtr::null()),
        }
    }

    /// Writer side (under the writer mutex).
    fn node(&self, i: usize) -> *mut T {
        self.nodes[i].load(Ordering::Acquire)
    }

    fn free_slot(&self) -> Option<usize> {
        (0..BUCKET_SLOTS).find(|&i| self.node(i).is_null())
    }

    /// Publishes `p` in slot `i`: hash first, then the pointer (`Release` both).
    fn store(&self, i: usize, h: u32, p: *mut T) {
        self.hashes[i].store(h, Ordering::Release);
        self.nodes[i].store(p, Ordering::Release);
    }

    fn clear(&self, i: usize) {
        self.nodes[i].store(std::ptr::null_mut(), Ordering::Release);
    }
}

struct Buckets<T> {
    buckets: Box<[Bucket<T>]>,
    mask: u32,
}

impl<T> Buckets<T> {
    fn with_buckets(n: usize) -> Self {
        let n = n.max(1).next_power_of_two();
        Buckets {
            buckets: (0..n).map(|_| Bucket::new()).collect(),
            mask: (n - 1) as u32,
        }
    }

    fn capacity(&self) -> usize {
        self.buckets.len() * BUCKET_SLOTS
    }

    fn bucket(&self, idx: u32) -> &Bucket<T> {
        // idx is always `x & mask`, and buckets.len() == mask + 1.
        &self.buckets[(idx & self.mask) as usize]
    }

    fn primary(&self, h: u32) -> u32 {
        h & self.mask
    }

    fn alternate(&self, h: u32) -> u32 {
        alt_hash(h) & self.mask
    }

    fn other(&self, bucket: u32, h: u32) -> u32 {
        let p = self.primary(h);
        if p == bucket { self.alternate(h) } else { p }
    }

    /// Places `p` in its primary or alternate bucket if either has room (writer side).
    fn add_direct(&self, h: u32, p: *mut T) -> bool {
        for b in [self.primary(h), self.alternate(h)] {
            let bucket = self.bucket(b);
            if let Some(i) = bucket.free_slot() {
                bucket.store(i, h, p);
                return true;
            }
        }
        false
    }
}

fn on_path(queue: &[BfsEntry], mut idx: usize, bucket: u32) -> bool {
    loop {
        let Some(e) = queue.get(idx) else {
            return false;
        };
        if e.bucket == bucket {
            return true;
        }
        match e.parent {
            Some(p) => idx = p as usize,
            None => return false,
        }
    }
}

#[derive(Clone, Copy)]
struct BfsEntry {
    bucket: u32,
    parent: Option<u16>,
    slot: u8,
    /// Hash of the node in the parent's `slot` when the search saw it.
    hash: u32,
}

/// What lookups read on every call, kept off the writers' cache line.
#[repr(align(128))]
struct ReadMostly {
    cur: AtomicUsize,
    moves: AtomicU64,
}

/// What writers update on every add and delete.
#[repr(align(128))]
struct WriteSide {
    writer: Mutex<()>,
    n_entries: AtomicUsize,
    resizes: AtomicU64,
}

/// The table. `T` is the intrusive object (a flow entry); the table holds one `Arc` per
/// node (the "table reference").
pub struct CuckooTable<T> {
    /// Bucket arrays, one per generation; `rd.cur` names the live one.
    gens: Box<[OnceLock<Buckets<T>>]>,
    rd: ReadMostly,
    wr: WriteSide,
    requested: usize,
    /// Loom only: retired nodes, kept until the table is dropped (the model's stand-in
    /// for the epoch's deferred destruction).
    #[cfg(loom)]
    limbo: Mutex<Vec<Arc<T>>>,
    /// The table owns `Arc<T>`s (through its slot pointers): `Send`/`Sync` follow them.
    _owns: PhantomData<Arc<T>>,
}

impl<T> std::fmt::Debug for CuckooTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CuckooTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<T> CuckooTable<T> {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.wr.n_entries.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current capacity (`n_buckets * 6`).
    pub fn capacity(&self) -> usize {
        self.current().map_or(0, Buckets::capacity)
    }

    /// How many times the table was resized.
    pub fn resizes(&self) -> u64 {
        self.wr.resizes.load(Ordering::Relaxed)
    }

    /// Generations still available for resizes.
    pub fn generations_left(&self) -> usize {
        GENERATIONS - 1 - self.rd.cur.load(Ordering::Acquire)
    }

    /// The live bucket array (always set: generation 0 at creation, each later one before
    /// `cur` names it).
    fn current(&self) -> Option<&Buckets<T>> {
        self.gens.get(self.rd.cur.load(Ordering::Acquire))?.get()
    }
}

impl<T: Send + Sync + 'static> CuckooTable<T> {
    /// `cuckoo_hashtable_create`: `n_buckets = align32pow2(capacity / 6)`; the capacity is
    /// clamped to 6 ..= 2^24.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(BUCKET_SLOTS, ENTRIES_MAX);
        let gens: Box<[OnceLock<Buckets<T>>]> = (0..GENERATIONS).map(|_| OnceLock::new()).collect();
        let _ = gens[0].set(Buckets::with_buckets(capacity / BUCKET_SLOTS));
        CuckooTable {
            gens,
            rd: ReadMostly {
                cur: AtomicUsize::new(0),
                moves: AtomicU64::new(0),
            },
            wr: WriteSide {
                writer: Mutex::new(()),
                n_entries: AtomicUsize::new(0),
                resizes: AtomicU64::new(0),
            },
            requested: capacity,
            #[cfg(loom)]
            limbo: Mutex::new(Vec::new()),
            _owns: PhantomData,
        }
    }

    /// The lock-free search: the first node with hash `h` for which `matches` holds.
    /// The pointer stays valid while `_guard` lives (invariants 1–3 in the module docs).
    fn find_ptr(&self, _guard: &Guard, h: u32, matches: impl Fn(&T) -> bool) -> Option<*mut T> {
        loop {
            let seq = self.rd.moves.load(Ordering::Acquire);
            let table = self.current()?;
            for b in [table.primary(h), table.alternate(h)] {
                let bucket = table.bucket(b);
                for i in 0..BUCKET_SLOTS {
                    if bucket.hashes[i].load(Ordering::Acquire) != h {
                        continue;
                    }
                    let p = bucket.nodes[i].load(Ordering::Acquire);
                    if p.is_null() {
                        continue;
                    }
                    // SAFETY: a non-null slot pointer came from `Arc::into_raw` and the
                    // table's strong count for it is dropped only after every guard pinned
                    // before it was unlinked is gone (invariants 1–3); we hold `_guard`.
                    let node = unsafe { &*p };
                    if matches(node) {
                        return Some(p);
                    }
                }
            }
            // A miss is only trusted if no move or resize ran meanwhile: any slot value a
            // move wrote was read with `Acquire`, which makes its counter bump visible here.
            if seq & 1 == 0 && self.rd.moves.load(Ordering::Acquire) == seq {
                return None;
            }
            crate::sync::spin_hint();
        }
    }

    /// `cuckoo_hashtable_find_with_hash`: the first node with hash `h` for which `matches`
    /// holds, passed to `retain` (which typically clones the `Arc`). Lock-free: the node
    /// may be removed concurrently, so `retain` must cope with a node on its way out.
    pub fn find<R>(
        &self,
        h: u32,
        matches: impl Fn(&T) -> bool,
        retain: impl FnOnce(&Arc<T>) -> R,
    ) -> Option<R> {
        let guard = pin();
        let p = self.find_ptr(&guard, h, matches)?;
        // SAFETY: `p` came from `Arc::into_raw` and stays alive while `guard` is pinned
        // (as in `find_ptr`); `ManuallyDrop` keeps the borrowed `Arc` from giving back a
        // strong count it does not own.
        let node = ManuallyDrop::new(unsafe { Arc::from_raw(p.cast_const()) });
        let r = retain(&node);
        drop(guard);
        Some(r)
    }

    /// Like [`CuckooTable::find`], but lends the node for as long as `guard` (and the
    /// table borrow) lives: no reference count is touched.
    pub fn find_in<'a>(
        &'a self,
        guard: &'a ReadGuard,
        h: u32,
        matches: impl Fn(&T) -> bool,
    ) -> Option<&'a T> {
        let p = self.find_ptr(&guard.inner, h, matches)?;
        // SAFETY: `p` is alive while `guard` is pinned (invariant 3), and the returned
        // borrow cannot outlive `guard`; it cannot outlive `self` either, whose `Drop`
        // releases the nodes still in the table.
        Some(unsafe { &*p })
    }

    /// `cuckoo_hashtable_add_with_hash`: inserts `node` (the table takes its own reference).
    pub fn add(&self, h: u32, node: &Arc<T>) -> Result<(), CuckooError> {
        let _w = self.wr.writer.lock();
        let p = Arc::as_ptr(node).cast_mut();
        loop {
            let table = self.current().ok_or(CuckooError::Full)?;
            if Self::contains_ptr(table, h, p) {
                return Err(CuckooError::Exists);
            }
            if table.add_direct(h, p) || self.add_by_moves(table, h, p) {
                // The slot now owns a strong count (invariant 1); `node` keeps the object
                // alive until then.
                let owned = Arc::into_raw(Arc::clone(node));
                debug_assert_eq!(owned, p.cast_const());
                self.wr.n_entries.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // ENOMEM from the probe: expand and retry.
            let cap = table.capacity();
            if cap >= ENTRIES_MAX || !self.resize_locked(table, table.buckets.len() * 2) {
                return Err(CuckooError::Full);
            }
        }
    }

    fn contains_ptr(table: &Buckets<T>, h: u32, p: *mut T) -> bool {
        [table.primary(h), table.alternate(h)]
            .iter()
            .any(|&b| (0..BUCKET_SLOTS).any(|i| table.bucket(b).node(i) == p))
    }

    /// `cuckoo_probe` + `cuckoo_move`: BFS for a bucket with room, then shift the path.
    fn add_by_moves(&self, table: &Buckets<T>, h: u32, p: *mut T) -> bool {
        let limit = BFS_QUEUE_LEN - BUCKET_SLOTS;
        let mut queue: Vec<BfsEntry> = Vec::with_capacity(BFS_QUEUE_LEN);
        queue.push(BfsEntry {
            bucket: table.primary(h),
            parent: None,
            slot: 0,
            hash: h,
        });
        queue.push(BfsEntry {
            bucket: table.alternate(h),
            parent: None,
            slot: 0,
            hash: h,
        });
        let mut head = 0;
        while head < queue.len() {
            let e = queue[head];
            let qi = head;
            head += 1;
            let bucket = table.bucket(e.bucket);
            if e.parent.is_some() && bucket.free_slot().is_some() {
                return self.shift_path(table, &queue, qi, h, p);
            }
            for j in 0..BUCKET_SLOTS {
                if queue.len() >= limit {
                    break;
                }
                let hj = bucket.hashes[j].load(Ordering::Acquire);
                let other = table.other(e.bucket, hj);
                if other == e.bucket || on_path(&queue, qi, other) {
                    continue;
                }
                queue.push(BfsEntry {
                    bucket: other,
                    parent: Some(qi as u16),
                    slot: j as u8,
                    hash: hj,
                });
            }
        }
        false
    }

    fn shift_path(
        &self,
        table: &Buckets<T>,
        queue: &[BfsEntry],
        found: usize,
        h: u32,
        p: *mut T,
    ) -> bool {
        let mut cur = found;
        while let Some(parent) = queue[cur].parent {
            let dst = queue[cur].bucket;
            let src = queue[parent as usize].bucket;
            let slot = queue[cur].slot as usize;
            if !self.move_slot(table, src, slot, queue[cur].hash, dst) {
                return false;
            }
            cur = parent as usize;
        }
        // The root bucket now has the slot the first move vacated.
        table.add_direct(h, p)
    }

    /// Moves the node in `src[slot]` (expected hash `h`) to a free slot of `dst`: the node
    /// is visible in `dst` before it leaves `src`, with the move counter odd meanwhile.
    /// Returns false (moving nothing) if the path went stale.
    fn move_slot(&self, table: &Buckets<T>, src: u32, slot: usize, h: u32, dst: u32) -> bool {
        if src == dst {
            return false;
        }
        let (s, d) = (table.bucket(src), table.bucket(dst));
        let node = s.node(slot);
        let valid = s.hashes[slot].load(Ordering::Acquire) == h && !node.is_null();
        let (true, Some(free)) = (valid, d.free_slot()) else {
            return false;
        };
        self.rd.moves.fetch_add(1, Ordering::AcqRel);
        // Ownership of the strong count moves with the pointer (invariant 1).
        d.store(free, h, node);
        s.clear(slot);
        self.rd.moves.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// `cuckoo_hashtable_del`: removes exactly `node`, returning the table's reference.
    /// The table's own strong count is retired: dropped once no lookup can still see it.
    pub fn del(&self, h: u32, node: &Arc<T>) -> Result<Arc<T>, CuckooError> {
        let _w = self.wr.writer.lock();
        let table = self.current().ok_or(CuckooError::NotFound)?;
        let target = Arc::as_ptr(node).cast_mut();
        for b in [table.primary(h), table.alternate(h)] {
            let bucket = table.bucket(b);
            for i in 0..BUCKET_SLOTS {
                if bucket.hashes[i].load(Ordering::Acquire) == h && bucket.node(i) == target {
                    bucket.clear(i);
                    self.wr.n_entries.fetch_sub(1, Ordering::Relaxed);
                    // SAFETY: the slot held `target` with the strong count the table owns
                    // (invariant 1); it is unlinked now, so this is the only owner.
                    let owned = unsafe { Arc::from_raw(target.cast_const()) };
                    let handed_back = Arc::clone(&owned);
                    self.retire(owned);
                    return Ok(handed_back);
                }
            }
        }
        Err(CuckooError::NotFound)
    }

    /// Drops the table's reference to an unlinked node once no pinned reader is left that
    /// could have seen it (invariant 2).
    fn retire(&self, node: Arc<T>) {
        #[cfg(not(loom))]
        pin().defer(move || drop(node));
        #[cfg(loom)]
        self.limbo.lock().push(node);
    }

    /// `cuckoo_hashtable_try_shrink`: halves the table when load ≤ 40 % and it is larger
    /// than the requested capacity. Returns whether it shrank.
    pub fn try_shrink(&self) -> bool {
        let _w = self.wr.writer.lock();
        let Some(table) = self.current() else {
            return false;
        };
        let cap = table.capacity();
        if cap <= self.requested || self.len() * 100 > cap * MAX_LOAD_SHRINK {
            return false;
        }
        let half = (table.buckets.len() / 2).max(1);
        if half == table.buckets.len() {
            return false;
        }
        // Keep enough generations to grow from the shrunk size to ENTRIES_MAX, so a table
        // that shrank can always grow again.
        let left = self.generations_left();
        let growth = (ENTRIES_MAX / (half * BUCKET_SLOTS)).max(1).ilog2() as usize + 1;
        if left <= growth + 1 {
            return false;
        }
        self.resize_locked(table, half)
    }

    /// Rebuilds into `n_buckets` buckets (doubling further if the nodes do not fit),
    /// publishes the result as the next generation and empties the old array. Returns
    /// false (changing nothing) when every generation is used up.
    fn resize_locked(&self, old: &Buckets<T>, n_buckets: usize) -> bool {
        let next = self.rd.cur.load(Ordering::Acquire) + 1;
        let Some(slot) = self.gens.get(next) else {
            return false;
        };
        let mut n = n_buckets;
        let fresh = loop {
            // The fresh array only borrows the pointers until it is published; a failed
            // attempt is dropped without touching any count.
            let fresh = Buckets::with_buckets(n);
            let mut ok = true;
            'all: for bucket in old.buckets.iter() {
                for i in 0..BUCKET_SLOTS {
                    let p = bucket.node(i);
                    if !p.is_null() {
                        let h = bucket.hashes[i].load(Ordering::Acquire);
                        if !(fresh.add_direct(h, p) || self.add_by_moves(&fresh, h, p)) {
                            ok = false;
                            break 'all;
                        }
                    }
                }
            }
            if ok {
                break fresh;
            }
            n *= 2;
        };
        if slot.set(fresh).is_err() {
            return false;
        }
        // Readers that miss from now until the old array is empty will retry.
        self.rd.moves.fetch_add(1, Ordering::AcqRel);
        self.rd.cur.store(next, Ordering::Release);
        for bucket in old.buckets.iter() {
            for i in 0..BUCKET_SLOTS {
                bucket.clear(i);
            }
        }
        self.rd.moves.fetch_add(1, Ordering::AcqRel);
        self.wr.resizes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// `cuckoo_hashtable_foreach`: visits every node, with writers held off meanwhile
    /// (so `f` must not add to or delete from this table). Stops early when `f` returns
    /// false.
    pub fn for_each(&self, mut f: impl FnMut(u32, &Arc<T>) -> bool) {
        let _w = self.wr.writer.lock();
        let Some(table) = self.current() else {
            return;
        };
        for bucket in table.buckets.iter() {
            for i in 0..BUCKET_SLOTS {
                let p = bucket.node(i);
                if p.is_null() {
                    continue;
                }
                // SAFETY: writers are held off, so the slot keeps its strong count
                // (invariant 1) while `f` runs; `ManuallyDrop` does not give it back.
                let node = ManuallyDrop::new(unsafe { Arc::from_raw(p.cast_const()) });
                if !f(bucket.hashes[i].load(Ordering::Acquire), &node) {
                    return;
                }
            }
        }
    }

    /// Debug health check (the DEV kernel's `stray hash` / `seen != n_entries` panics):
    /// every node sits in its primary or alternate bucket, no node is in two slots, and the
    /// count agrees.
    pub fn health_check(&self) -> Result<(), String> {
        let _w = self.wr.writer.lock();
        let Some(table) = self.current() else {
            return Err("no live bucket array".into());
        };
        let mut seen = std::collections::HashSet::new();
        for (bi, bucket) in table.buckets.iter().enumerate() {
            for i in 0..BUCKET_SLOTS {
                let p = bucket.node(i);
                if p.is_null() {
                    continue;
                }
                let h = bucket.hashes[i].load(Ordering::Acquire);
                let b = bi as u32;
                if table.primary(h) != b && table.alternate(h) != b {
                    return Err(format!("[{bi}][{i}] stray hash {h:x} node {p:p}"));
                }
                if !seen.insert(p) {
                    return Err(format!("[{bi}][{i}] node {p:p} in two slots"));
                }
            }
        }
        if seen.len() != self.len() {
            return Err(format!("seen {} != n_entries {}", seen.len(), self.len()));
        }
        Ok(())
    }
}

impl<T> Drop for CuckooTable<T> {
    fn drop(&mut self) {
        // Only the live generation owns counts (resizes emptied the older ones).
        let Some(table) = self.current() else {
            return;
        };
        for bucket in table.buckets.iter() {
            for i in 0..BUCKET_SLOTS {
                let p = bucket.node(i);
                if !p.is_null() {
                    bucket.clear(i);
                    // SAFETY: the slot owned this strong count (invariant 1) and `&mut
                    // self` means no reader is left (invariant 2).
                    drop(unsafe { Arc::from_raw(p.cast_const()) });
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn find(t: &CuckooTable<u64>, h: u32, v: u64) -> Option<u64> {
        t.find(h, |n| *n == v, |n| **n)
    }

    #[test]
    fn alt_hash_reference_formula() {
        assert_eq!(alt_hash(0), 0x5bd1_e995);
        assert_eq!(
            alt_hash(0x0001_0000),
            0x0001_0000 ^ 2u32.wrapping_mul(0x5bd1_e995)
        );
    }

    #[test]
    fn add_find_del_and_grow() {
        let t = CuckooTable::with_capacity(12);
        assert_eq!(t.capacity(), 12);
        let mut nodes = Vec::new();
        let total: u64 = if cfg!(miri) { 400 } else { 5000 };
        for v in 0..total {
            let h = (v.wrapping_mul(0x9E37_79B9) >> 7) as u32;
            let n = Arc::new(v);
            t.add(h, &n).unwrap();
            nodes.push((h, n));
        }
        assert_eq!(t.len(), total as usize);
        assert!(t.resizes() > 0);
        t.health_check().unwrap();
        for (h, n) in &nodes {
            assert_eq!(find(&t, *h, **n), Some(**n));
        }
        assert_eq!(t.add(nodes[3].0, &nodes[3].1), Err(CuckooError::Exists));
        for (h, n) in nodes.iter().skip(100) {
            let removed = t.del(*h, n).unwrap();
            assert!(Arc::ptr_eq(&removed, n));
        }
        assert_eq!(
            t.del(nodes[200].0, &nodes[200].1),
            Err(CuckooError::NotFound)
        );
        assert_eq!(t.len(), 100);
        let before = t.capacity();
        while t.try_shrink() {}
        assert!(t.capacity() < before);
        t.health_check().unwrap();
        for (h, n) in nodes.iter().take(100) {
            assert_eq!(find(&t, *h, **n), Some(**n));
        }
        assert_eq!(find(&t, nodes[150].0, 150), None);
    }

    #[test]
    fn shrink_keeps_room_to_grow() {
        let t = CuckooTable::with_capacity(6);
        let nodes: Vec<Arc<u64>> = (0..64u64).map(Arc::new).collect();
        for _ in 0..if cfg!(miri) { 4 } else { 40 } {
            for (i, n) in nodes.iter().enumerate() {
                t.add(i as u32 * 7919, n).unwrap();
            }
            for (i, n) in nodes.iter().enumerate() {
                t.del(i as u32 * 7919, n).unwrap();
            }
            while t.try_shrink() {}
        }
        // Oscillating load used up the shrink budget, never the growth budget: the table
        // can still double all the way to ENTRIES_MAX.
        let need = (ENTRIES_MAX / t.capacity()).ilog2() as usize;
        assert!(
            t.generations_left() >= need,
            "{} < {need}",
            t.generations_left()
        );
        assert!(!t.try_shrink());
        for (i, n) in nodes.iter().enumerate() {
            t.add(i as u32 * 7919, n).unwrap();
        }
        t.health_check().unwrap();
    }

    #[test]
    fn equal_hashes_take_separate_slots() {
        let t = CuckooTable::with_capacity(64);
        let a = Arc::new(1u64);
        let b = Arc::new(2u64);
        t.add(7, &a).unwrap();
        t.add(7, &b).unwrap();
        assert_eq!(find(&t, 7, 1), Some(1));
        assert_eq!(find(&t, 7, 2), Some(2));
        t.del(7, &a).unwrap();
        assert_eq!(find(&t, 7, 1), None);
        assert_eq!(find(&t, 7, 2), Some(2));
    }

    /// Advances the epoch until `n`'s strong count drops to `want` (the retired table
    /// reference is destroyed once no pinned reader can still see it).
    /// Other test threads may hold pins meanwhile, so this waits (up to ~5 s) for them.
    fn reclaim_until(n: &Arc<u64>, want: usize) -> bool {
        for _ in 0..5_000 {
            if Arc::strong_count(n) == want {
                return true;
            }
            advance_epoch();
        }
        Arc::strong_count(n) == want
    }

    fn advance_epoch() {
        crossbeam_epoch::pin().flush();
        if cfg!(miri) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn table_reference_is_dropped_on_delete() {
        let t = CuckooTable::with_capacity(6);
        let n = Arc::new(9u64);
        t.add(1, &n).unwrap();
        assert_eq!(Arc::strong_count(&n), 2);
        drop(t.del(1, &n).unwrap());
        assert!(reclaim_until(&n, 1), "count {}", Arc::strong_count(&n));
    }

    #[test]
    fn borrowed_node_outlives_its_removal_while_pinned() {
        let t = CuckooTable::with_capacity(6);
        let n = Arc::new(41u64);
        t.add(5, &n).unwrap();
        let weak = Arc::downgrade(&n);
        drop(n);
        let guard = ReadGuard::pin();
        let seen = t.find_in(&guard, 5, |v| *v == 41).unwrap();
        drop(t.del(5, &weak.upgrade().unwrap()).unwrap());
        assert_eq!(find(&t, 5, 41), None);
        // Removed and every other reference gone, but the pinned borrow still reads it.
        assert_eq!(*seen, 41);
        drop(guard);
        let mut freed = false;
        for _ in 0..5_000 {
            if weak.strong_count() == 0 {
                freed = true;
                break;
            }
            advance_epoch();
        }
        assert!(freed, "retired node never reclaimed");
    }

    #[test]
    fn drop_releases_the_nodes_still_in_the_table() {
        let t = CuckooTable::with_capacity(6);
        let nodes: Vec<Arc<u64>> = (0..20u64).map(Arc::new).collect();
        for (i, n) in nodes.iter().enumerate() {
            t.add(i as u32 * 31, n).unwrap();
        }
        assert!(t.resizes() > 0);
        assert!(nodes.iter().all(|n| Arc::strong_count(n) == 2));
        drop(t);
        assert!(nodes.iter().all(|n| Arc::strong_count(n) == 1));
    }

    #[test]
    fn concurrent_lookups_racing_moves_and_removals_never_miss_a_live_node() {
        let t = Arc::new(CuckooTable::with_capacity(6));
        let stable: Vec<Arc<u64>> = (0..64u64).map(Arc::new).collect();
        for n in &stable {
            t.add((**n as u32).wrapping_mul(0x9E37_79B9), n).unwrap();
        }
        let rounds = if cfg!(miri) { 2 } else { 50 };
        std::thread::scope(|s| {
            let t2 = Arc::clone(&t);
            let stable = &stable;
            s.spawn(move || {
                for _ in 0..rounds {
                    for n in stable {
                        let h = (**n as u32).wrapping_mul(0x9E37_79B9);
                        assert_eq!(find(&t2, h, **n), Some(**n));
                    }
                }
            });
            // Churn: adds force moves and resizes, deletes retire nodes.
            for r in 0..rounds as u64 {
                let churn: Vec<Arc<u64>> =
                    (0..64u64).map(|i| Arc::new(1000 + r * 64 + i)).collect();
                for n in &churn {
                    t.add((**n as u32).wrapping_mul(0x9E37_79B9), n).unwrap();
                }
                for n in &churn {
                    t.del((**n as u32).wrapping_mul(0x9E37_79B9), n).unwrap();
                }
                while t.try_shrink() {}
            }
        });
        t.health_check().unwrap();
        assert_eq!(t.len(), 64);
    }
}

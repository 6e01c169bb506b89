//! A concurrent bucketized cuckoo hash table in the style of skywalk's
//! `cuckoo_hashtable.c`.
//!
//! * Buckets hold 6 slots (`{hash, node}`) under a per-bucket mutex; a node lives in its
//!   primary bucket `hash & mask` or its alternate `alt_hash(hash) & mask` with
//!   `alt_hash(h) = h ^ (((h >> 16) + 1) * 0x5bd1e995)`.
//! * Lookups take the table lock shared, then one bucket lock at a time, and return the
//!   node *retained* (the caller's `retain` closure runs under the bucket lock).
//! * Adds that find both buckets full run a breadth-first search for a chain of moves
//!   (queue capped at 255 − 6 entries); moves put the node in its new bucket before taking
//!   it out of the old one and bump a sequence counter, and a lookup that misses while a
//!   move ran retries, so a concurrent lookup never misses a live node.
//! * When the search fails the table doubles (`cuckoo_resize(EXPAND)`); `try_shrink`
//!   halves it at ≤ 40 % load.
//!
//! Differences from skywalk, chosen for speed and safety:
//! * no table lock on the read path. A resize builds the new bucket array, publishes it as
//!   the next *generation* (arrays are kept until the table is dropped, so a reader's
//!   reference never dangles), then empties the old array; readers that miss while a
//!   resize or move ran see the sequence counter change and retry. At most
//!   [`GENERATIONS`] resizes over the table's life (a doubling from 6 to 2^24 takes 22).
//! * writers (add, delete, resize) are serialised by one writer mutex, which keeps move
//!   paths valid without skywalk's trylock dance;
//! * nodes with exactly equal 32-bit hashes take separate slots instead of being chained
//!   through an intrusive `next` pointer.

use std::sync::OnceLock;

use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};

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

struct Bucket<T> {
    hashes: [u32; BUCKET_SLOTS],
    nodes: [Option<Arc<T>>; BUCKET_SLOTS],
}

impl<T> Bucket<T> {
    fn new() -> Self {
        Bucket {
            hashes: [0; BUCKET_SLOTS],
            nodes: Default::default(),
        }
    }

    fn free_slot(&self) -> Option<usize> {
        self.nodes.iter().position(Option::is_none)
    }
}

#[repr(align(128))]
struct PaddedBucket<T>(Mutex<Bucket<T>>);

struct Buckets<T> {
    buckets: Box<[PaddedBucket<T>]>,
    mask: u32,
}

impl<T> Buckets<T> {
    fn with_buckets(n: usize) -> Self {
        let n = n.max(1).next_power_of_two();
        Buckets {
            buckets: (0..n)
                .map(|_| PaddedBucket(Mutex::new(Bucket::new())))
                .collect(),
            mask: (n - 1) as u32,
        }
    }

    fn capacity(&self) -> usize {
        self.buckets.len() * BUCKET_SLOTS
    }

    fn bucket(&self, idx: u32) -> &Mutex<Bucket<T>> {
        // idx is always `x & mask`, and buckets.len() == mask + 1.
        &self.buckets[(idx & self.mask) as usize].0
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

    /// Places `node` in its primary or alternate bucket if either has room.
    fn add_direct(&self, h: u32, node: &Arc<T>) -> bool {
        for b in [self.primary(h), self.alternate(h)] {
            let mut g = self.bucket(b).lock();
            if let Some(i) = g.free_slot() {
                g.hashes[i] = h;
                g.nodes[i] = Some(Arc::clone(node));
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

/// The table. `T` is the intrusive object (a flow entry); the table holds one `Arc` per
/// node (the "table reference").
pub struct CuckooTable<T> {
    /// Bucket arrays, one per generation; `cur` names the live one.
    gens: Box<[OnceLock<Buckets<T>>]>,
    cur: AtomicUsize,
    writer: Mutex<()>,
    n_entries: AtomicUsize,
    moves: AtomicU64,
    requested: usize,
    resizes: AtomicU64,
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
    /// `cuckoo_hashtable_create`: `n_buckets = align32pow2(capacity / 6)`; the capacity is
    /// clamped to 6 ..= 2^24.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(BUCKET_SLOTS, ENTRIES_MAX);
        let gens: Box<[OnceLock<Buckets<T>>]> = (0..GENERATIONS).map(|_| OnceLock::new()).collect();
        let _ = gens[0].set(Buckets::with_buckets(capacity / BUCKET_SLOTS));
        CuckooTable {
            gens,
            cur: AtomicUsize::new(0),
            writer: Mutex::new(()),
            n_entries: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            requested: capacity,
            resizes: AtomicU64::new(0),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n_entries.load(Ordering::Relaxed)
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
        self.resizes.load(Ordering::Relaxed)
    }

    /// The live bucket array (always set: generation 0 at creation, each later one before
    /// `cur` names it).
    fn current(&self) -> Option<&Buckets<T>> {
        self.gens.get(self.cur.load(Ordering::SeqCst))?.get()
    }

    /// `cuckoo_hashtable_find_with_hash`: the first node with hash `h` for which `matches`
    /// holds, passed to `retain` while its bucket is still locked.
    pub fn find<R>(
        &self,
        h: u32,
        matches: impl Fn(&T) -> bool,
        retain: impl FnOnce(&Arc<T>) -> R,
    ) -> Option<R> {
        let mut retain = Some(retain);
        loop {
            let seq = self.moves.load(Ordering::SeqCst);
            let table = self.current()?;
            for b in [table.primary(h), table.alternate(h)] {
                let g = table.bucket(b).lock();
                for i in 0..BUCKET_SLOTS {
                    if g.hashes[i] != h {
                        continue;
                    }
                    if let Some(n) = &g.nodes[i] {
                        if matches(n) {
                            return retain.take().map(|r| r(n));
                        }
                    }
                }
            }
            // A miss is only trusted if no move ran meanwhile.
            if seq & 1 == 0 && self.moves.load(Ordering::SeqCst) == seq {
                return None;
            }
            crate::sync::spin_hint();
        }
    }

    /// `cuckoo_hashtable_add_with_hash`: inserts `node` (the table takes its own reference).
    pub fn add(&self, h: u32, node: &Arc<T>) -> Result<(), CuckooError> {
        let _w = self.writer.lock();
        loop {
            let table = self.current().ok_or(CuckooError::Full)?;
            if self.contains_node(table, h, node) {
                return Err(CuckooError::Exists);
            }
            if table.add_direct(h, node) || self.add_by_moves(table, h, node) {
                self.n_entries.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // ENOMEM from the probe: expand and retry.
            let cap = table.capacity();
            if cap >= ENTRIES_MAX || !self.resize_locked(table, table.buckets.len() * 2) {
                return Err(CuckooError::Full);
            }
        }
    }

    fn contains_node(&self, table: &Buckets<T>, h: u32, node: &Arc<T>) -> bool {
        [table.primary(h), table.alternate(h)].iter().any(|&b| {
            let g = table.bucket(b).lock();
            g.nodes.iter().flatten().any(|n| Arc::ptr_eq(n, node))
        })
    }

    /// `cuckoo_probe` + `cuckoo_move`: BFS for a bucket with room, then shift the path.
    fn add_by_moves(&self, table: &Buckets<T>, h: u32, node: &Arc<T>) -> bool {
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
            let hashes = {
                let g = table.bucket(e.bucket).lock();
                if e.parent.is_some() && g.free_slot().is_some() {
                    drop(g);
                    return self.shift_path(table, &queue, qi, h, node);
                }
                g.hashes
            };
            for (j, &hj) in hashes.iter().enumerate() {
                if queue.len() >= limit {
                    break;
                }
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
        node: &Arc<T>,
    ) -> bool {
        let mut cur = found;
        while let Some(p) = queue[cur].parent {
            let dst = queue[cur].bucket;
            let src = queue[p as usize].bucket;
            let slot = queue[cur].slot as usize;
            if !self.move_slot(table, src, slot, queue[cur].hash, dst) {
                return false;
            }
            cur = p as usize;
        }
        // The root bucket now has the slot the first move vacated.
        table.add_direct(h, node)
    }

    /// Moves the node in `src[slot]` (expected hash `h`) to a free slot of `dst`: the node
    /// is visible in `dst` before it leaves `src`, both bucket locks held, with the move
    /// counter odd meanwhile. Returns false (moving nothing) if the path went stale.
    fn move_slot(&self, table: &Buckets<T>, src: u32, slot: usize, h: u32, dst: u32) -> bool {
        if src == dst {
            return false;
        }
        self.moves.fetch_add(1, Ordering::SeqCst);
        let moved = {
            let mut d = table.bucket(dst).lock();
            let mut s = table.bucket(src).lock();
            let valid = s.hashes[slot] == h && s.nodes[slot].is_some();
            match (valid, d.free_slot()) {
                (true, Some(free)) => {
                    d.hashes[free] = h;
                    d.nodes[free] = s.nodes[slot].take();
                    true
                }
                _ => false,
            }
        };
        self.moves.fetch_add(1, Ordering::SeqCst);
        moved
    }

    /// `cuckoo_hashtable_del`: removes exactly `node`, returning the table's reference.
    pub fn del(&self, h: u32, node: &Arc<T>) -> Result<Arc<T>, CuckooError> {
        let _w = self.writer.lock();
        let table = self.current().ok_or(CuckooError::NotFound)?;
        for b in [table.primary(h), table.alternate(h)] {
            let mut g = table.bucket(b).lock();
            for i in 0..BUCKET_SLOTS {
                let hit =
                    g.hashes[i] == h && g.nodes[i].as_ref().is_some_and(|n| Arc::ptr_eq(n, node));
                if hit {
                    if let Some(n) = g.nodes[i].take() {
                        self.n_entries.fetch_sub(1, Ordering::Relaxed);
                        return Ok(n);
                    }
                }
            }
        }
        Err(CuckooError::NotFound)
    }

    /// `cuckoo_hashtable_try_shrink`: halves the table when load ≤ 40 % and it is larger
    /// than the requested capacity. Returns whether it shrank.
    pub fn try_shrink(&self) -> bool {
        let _w = self.writer.lock();
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
        let left = GENERATIONS - 1 - self.cur.load(Ordering::SeqCst);
        let growth = (ENTRIES_MAX / (half * BUCKET_SLOTS)).max(1).ilog2() as usize + 1;
        if left <= growth + 1 {
            return false;
        }
        self.resize_locked(table, half)
    }

    /// Generations still available for resizes.
    pub fn generations_left(&self) -> usize {
        GENERATIONS - 1 - self.cur.load(Ordering::SeqCst)
    }

    /// Rebuilds into `n_buckets` buckets (doubling further if the nodes do not fit),
    /// publishes the result as the next generation and empties the old array. Returns
    /// false (changing nothing) when every generation is used up.
    fn resize_locked(&self, old: &Buckets<T>, n_buckets: usize) -> bool {
        let next = self.cur.load(Ordering::SeqCst) + 1;
        let Some(slot) = self.gens.get(next) else {
            return false;
        };
        let mut n = n_buckets;
        let fresh = loop {
            let fresh = Buckets::with_buckets(n);
            let mut ok = true;
            'all: for pb in old.buckets.iter() {
                let g = pb.0.lock();
                for i in 0..BUCKET_SLOTS {
                    if let Some(node) = &g.nodes[i] {
                        let h = g.hashes[i];
                        if !(fresh.add_direct(h, node) || self.add_by_moves(&fresh, h, node)) {
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
        self.moves.fetch_add(1, Ordering::SeqCst);
        self.cur.store(next, Ordering::SeqCst);
        for pb in old.buckets.iter() {
            let mut g = pb.0.lock();
            for n in g.nodes.iter_mut() {
                n.take();
            }
        }
        self.moves.fetch_add(1, Ordering::SeqCst);
        self.resizes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// `cuckoo_hashtable_foreach`: visits every node (concurrent changes may or may not be
    /// seen). Stops early when `f` returns false.
    pub fn for_each(&self, mut f: impl FnMut(u32, &Arc<T>) -> bool) {
        let Some(table) = self.current() else {
            return;
        };
        for pb in table.buckets.iter() {
            let g = pb.0.lock();
            for i in 0..BUCKET_SLOTS {
                if let Some(n) = &g.nodes[i] {
                    if !f(g.hashes[i], n) {
                        return;
                    }
                }
            }
        }
    }

    /// Debug health check (the DEV kernel's `stray hash` / `seen != n_entries` panics):
    /// every node sits in its primary or alternate bucket and the count agrees.
    pub fn health_check(&self) -> Result<(), String> {
        let Some(table) = self.current() else {
            return Err("no live bucket array".into());
        };
        let mut seen = 0usize;
        for (bi, pb) in table.buckets.iter().enumerate() {
            let g = pb.0.lock();
            for i in 0..BUCKET_SLOTS {
                if let Some(n) = &g.nodes[i] {
                    let h = g.hashes[i];
                    let b = bi as u32;
                    if table.primary(h) != b && table.alternate(h) != b {
                        return Err(format!(
                            "[{bi}][{i}] stray hash {h:x} node {:p}",
                            Arc::as_ptr(n)
                        ));
                    }
                    seen += 1;
                }
            }
        }
        if seen != self.len() {
            return Err(format!("seen {seen} != n_entries {}", self.len()));
        }
        Ok(())
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
        for v in 0..5000u64 {
            let h = (v.wrapping_mul(0x9E37_79B9) >> 7) as u32;
            let n = Arc::new(v);
            t.add(h, &n).unwrap();
            nodes.push((h, n));
        }
        assert_eq!(t.len(), 5000);
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
        for _ in 0..40 {
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

    #[test]
    fn table_reference_is_dropped_on_delete() {
        let t = CuckooTable::with_capacity(6);
        let n = Arc::new(9u64);
        t.add(1, &n).unwrap();
        assert_eq!(Arc::strong_count(&n), 2);
        drop(t.del(1, &n).unwrap());
        assert_eq!(Arc::strong_count(&n), 1);
    }
}

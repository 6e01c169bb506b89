//! Audit-mode metadata: per-object state bytes, last transactions, poison patterns.
//!
//! Every slab of an AUDIT cache has an [`AuditSlab`]: a type-stable side table (never freed
//! before its cache, recycled between slabs of the same cache) that lock-free readers find
//! through the cache's [`crate::radix::Radix`]. Each object has one atomic state byte; a free
//! is valid only if it moves the byte from [`IN_USE`] (raw) or [`TYPED`] (handle) to
//! [`CACHED`] with a compare-exchange, so every double free is caught at the free call, even
//! when the first copy still sits in a magazine, and two racing frees cannot both win.

use std::ptr;

use crate::report::{Transaction, TxnKind};
use crate::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};
use crate::sync::{Mutex, try_lock};

/// On a slab free list.
pub(crate) const SLAB_FREE: u8 = 0;
/// Allocated from the slab, cached in a magazine or the depot (or in flight between them).
pub(crate) const CACHED: u8 = 1;
/// Handed out through the raw API.
pub(crate) const IN_USE: u8 = 2;
/// Handed out to a [`crate::TypedObj`] handle.
pub(crate) const TYPED: u8 = 3;

/// `MCACHE_FREE_PATTERN`.
pub const FREE_PATTERN: u64 = 0xdead_beef_dead_beef;
/// `MCACHE_UNINITIALIZED_PATTERN`.
pub const UNINITIALIZED_PATTERN: u64 = 0xbadd_cafe_badd_cafe;

/// Audit record of one object (the `skmem_bufctl_audit` extension): the state byte and the
/// last alloc and free, each as one word (thread number in the low 32 bits, the thread's
/// transaction number in the high 32 bits; 0 = none). 32 bytes and 32-aligned, so a record
/// never straddles a cache line and two share one; timestamps and backtraces, when asked
/// for, live in side tables of the [`AuditSlab`].
#[derive(Debug)]
#[repr(C, align(32))]
pub(crate) struct AuditBc {
    alloc: AtomicU64,
    free: AtomicU64,
    pub(crate) state: AtomicU8,
}

/// One transaction word: `thread` (at most `u32::MAX`, see `next_thread`) and the low 32
/// bits of `seq`.
#[inline(always)]
fn txn_word(thread: u64, seq: u64) -> u64 {
    (seq << 32) | (thread & 0xffff_ffff)
}

impl AuditBc {
    fn new() -> AuditBc {
        AuditBc {
            alloc: AtomicU64::new(0),
            free: AtomicU64::new(0),
            state: AtomicU8::new(SLAB_FREE),
        }
    }

    /// Records a transaction of the calling thread (its number and next sequence number).
    #[inline(always)]
    pub(crate) fn stamp(&self, kind: TxnKind) {
        let (thread, seq) = crate::cpu::next_txn();
        self.stamp_as(kind, thread, seq);
    }

    /// [`AuditBc::stamp`] for a caller that knows its thread number and has drawn `seq`
    /// (the thread-cache fast paths: the slot holds the thread number).
    #[inline(always)]
    pub(crate) fn stamp_as(&self, kind: TxnKind, thread: u64, seq: u64) {
        let w = match kind {
            TxnKind::Alloc => &self.alloc,
            TxnKind::Free => &self.free,
        };
        w.store(txn_word(thread, seq), Ordering::Relaxed);
    }
}

/// Where a transaction kind's time sits in an object's `times` pair.
fn time_slot(kind: TxnKind) -> usize {
    match kind {
        TxnKind::Alloc => 0,
        TxnKind::Free => 1,
    }
}

/// Backtraces of one object's last alloc and free (only with `AuditOptions::backtraces`).
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    alloc: Option<std::backtrace::Backtrace>,
    free: Option<std::backtrace::Backtrace>,
}

/// The audit side table of one slab.
#[derive(Debug)]
pub(crate) struct AuditSlab {
    /// Slab base while the slab is live, null while pooled.
    pub(crate) base: AtomicPtr<u8>,
    pub(crate) bc: Box<[AuditBc]>,
    /// Milliseconds of the last alloc and free per object (only with
    /// `AuditOptions::timestamps`; empty otherwise).
    times: Box<[[AtomicU64; 2]]>,
    stacks: Box<[Mutex<Stacks>]>,
}

impl AuditSlab {
    pub(crate) fn new(chunks: usize, timestamps: bool, backtraces: bool) -> AuditSlab {
        let times = if timestamps {
            (0..chunks)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect()
        } else {
            Vec::new().into_boxed_slice()
        };
        let stacks = if backtraces {
            (0..chunks).map(|_| Mutex::new(Stacks::default())).collect()
        } else {
            Vec::new().into_boxed_slice()
        };
        AuditSlab {
            base: AtomicPtr::new(ptr::null_mut()),
            bc: (0..chunks).map(|_| AuditBc::new()).collect(),
            times,
            stacks,
        }
    }

    /// Records a transaction on object `idx`: thread, the thread's transaction sequence
    /// number, and (with timestamps) the coarse-clock milliseconds.
    #[inline(always)]
    pub(crate) fn record(&self, idx: usize, kind: TxnKind) {
        let Some(bc) = self.bc.get(idx) else { return };
        bc.stamp(kind);
        if let Some(t) = self.times.get(idx) {
            t[time_slot(kind)].store(uptime_ms(), Ordering::Relaxed);
        }
        if !self.stacks.is_empty() {
            self.record_stack(idx, kind);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_stack(&self, idx: usize, kind: TxnKind) {
        if let Some(m) = self.stacks.get(idx) {
            // Captured unresolved; symbols are resolved only when a report prints it.
            let bt = std::backtrace::Backtrace::force_capture();
            // try_lock: a lock orphaned by fork() must never block the child.
            let Some(mut s) = try_lock(m) else { return };
            match kind {
                TxnKind::Alloc => s.alloc = Some(bt),
                TxnKind::Free => s.free = Some(bt),
            }
        }
    }

    /// The last recorded alloc and free of object `idx`.
    pub(crate) fn transactions(&self, idx: usize) -> (Option<Transaction>, Option<Transaction>) {
        let Some(bc) = self.bc.get(idx) else {
            return (None, None);
        };
        let (sa, sf) = match self.stacks.get(idx) {
            Some(m) => match try_lock(m) {
                Some(s) => (
                    s.alloc.as_ref().map(ToString::to_string),
                    s.free.as_ref().map(ToString::to_string),
                ),
                None => (None, None),
            },
            None => (None, None),
        };
        let mk = |kind: TxnKind, word: &AtomicU64, bt| {
            let w = word.load(Ordering::Relaxed);
            let thread = w & 0xffff_ffff;
            (thread != 0).then(|| Transaction {
                kind,
                thread,
                seq: w >> 32,
                timestamp_ms: self
                    .times
                    .get(idx)
                    .map_or(0, |t| t[time_slot(kind)].load(Ordering::Relaxed)),
                backtrace: bt,
            })
        };
        (
            mk(TxnKind::Alloc, &bc.alloc, sa),
            mk(TxnKind::Free, &bc.free, sf),
        )
    }
}

/// Fills `len` bytes at `p` with the 64-bit `pattern`.
///
/// Inline and call-free for every length (a plain word loop the compiler vectorizes; the
/// 64-byte case is four wide stores), so that the AUDIT fast paths that use it stay leaf
/// functions.
///
/// # Safety
/// `p` must be valid for writes of `len` bytes, 8-byte aligned, and `len` a multiple of 8;
/// nobody else may access those bytes during the call.
#[inline(always)]
pub(crate) unsafe fn fill(p: *mut u8, len: usize, pattern: u64) {
    if len == 64 {
        // One cache line (every chunk of 33-64 byte objects): four wide stores, no loop.
        // SAFETY: as below; 64 valid, 8-aligned, exclusively ours bytes are one `[u64; 8]`.
        unsafe { p.cast::<[u64; 8]>().write([pattern; 8]) };
        return;
    }
    // SAFETY: the caller guarantees `len` bytes of 8-aligned words at `p`, valid for writes
    // and used by nobody else during this call.
    let words = unsafe { std::slice::from_raw_parts_mut(p.cast::<u64>(), len / 8) };
    words.fill(pattern);
}

/// Whether all `len` bytes at `p` still hold `pattern` (the AUDIT fast path's check:
/// inline and call-free; [`verify`] finds the offending word once this says no).
///
/// # Safety
/// As for [`fill`], with reads instead of writes.
#[inline(always)]
pub(crate) unsafe fn intact(p: *const u8, len: usize, pattern: u64) -> bool {
    if len == 64 {
        // As four 16-byte lanes, so that the check compiles to a few vector compares.
        // SAFETY: 64 readable bytes nobody writes meanwhile; an unaligned read has no
        // alignment demand.
        let lanes = unsafe { p.cast::<[u128; 4]>().read_unaligned() };
        let pat = u128::from(pattern) << 64 | u128::from(pattern);
        return lanes.iter().fold(0, |d, w| d | (w ^ pat)) == 0;
    }
    // SAFETY: the caller guarantees `len` bytes of 8-aligned words at `p`, valid for reads
    // and written by nobody else during this call.
    let words = unsafe { std::slice::from_raw_parts(p.cast::<u64>(), len / 8) };
    words.iter().fold(0, |d, w| d | (w ^ pattern)) == 0
}

/// Checks that `len` bytes at `p` hold `pattern`; returns the first differing word's byte
/// offset and value: [`intact`]'s branch-free check, then a search only on a mismatch.
///
/// # Safety
/// As for [`fill`], with reads instead of writes.
#[inline(always)]
pub(crate) unsafe fn verify(p: *const u8, len: usize, pattern: u64) -> Option<(usize, u64)> {
    // SAFETY: forwarded from this function's contract.
    if unsafe { intact(p, len, pattern) } {
        return None;
    }
    // SAFETY: the caller guarantees `len` bytes of 8-aligned words at `p`, valid for reads
    // and written by nobody else during this call.
    let words = unsafe { std::slice::from_raw_parts(p.cast::<u64>(), len / 8) };
    first_difference(words, pattern)
}

/// The byte offset and value of the first word of `words` that is not `pattern` (out of line:
/// only a damaged object gets here, and keeping it apart keeps [`intact`] branch-free).
#[cold]
#[inline(never)]
fn first_difference(words: &[u64], pattern: u64) -> Option<(usize, u64)> {
    words
        .iter()
        .position(|&w| w != pattern)
        .and_then(|i| Some((i * 8, *words.get(i)?)))
}

/// Milliseconds of uptime from a coarse monotonic clock (`bc_timestamp`'s unit).
#[inline]
pub(crate) fn uptime_ms() -> u64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc == 0 {
            let s = u64::try_from(ts.tv_sec).unwrap_or(0);
            let ns = u64::try_from(ts.tv_nsec).unwrap_or(0);
            return s * 1000 + ns / 1_000_000;
        }
        0
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod poison_tests {
    use super::{FREE_PATTERN, fill, intact, verify};

    /// Every object length the line/word split can produce (less than one line, exactly
    /// one, lines plus odd words): fill then verify is clean and `intact` agrees, and a
    /// change to any single word is found at that word's offset with the value written
    /// (and makes `intact` say no).
    #[test]
    fn fill_and_verify_find_every_modified_word() {
        for words in [1usize, 3, 7, 8, 9, 15, 16, 17, 24] {
            let mut buf = vec![0u64; words];
            let len = words * 8;
            let p = buf.as_mut_ptr().cast::<u8>();
            // SAFETY: `buf` is `len` bytes of 8-aligned words, used only through `p` here.
            unsafe { fill(p, len, FREE_PATTERN) };
            assert!(buf.iter().all(|&w| w == FREE_PATTERN));
            // SAFETY: as above.
            assert_eq!(unsafe { verify(p, len, FREE_PATTERN) }, None);
            // SAFETY: as above.
            assert!(unsafe { intact(p, len, FREE_PATTERN) });
            for i in 0..words {
                let p = buf.as_mut_ptr();
                // SAFETY: `i < words`, inside `buf`.
                unsafe { p.add(i).write(0x41) };
                // SAFETY: as above.
                let found = unsafe { verify(p.cast::<u8>(), len, FREE_PATTERN) };
                assert_eq!(found, Some((i * 8, 0x41)), "{words} words, word {i}");
                // SAFETY: as above.
                assert!(!unsafe { intact(p.cast::<u8>(), len, FREE_PATTERN) });
                // SAFETY: as above.
                unsafe { p.add(i).write(FREE_PATTERN) };
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod record_tests {
    use super::{AuditSlab, TxnKind};

    /// One word per transaction: the thread number and the low 32 bits of the sequence
    /// number come back as stored, each direction separately; timestamps only when asked.
    #[test]
    fn transaction_words_round_trip() {
        let a = AuditSlab::new(2, false, false);
        assert_eq!(a.transactions(1), (None, None));
        a.bc[1].stamp_as(TxnKind::Alloc, 7, (1 << 32) + 5);
        a.bc[1].stamp_as(TxnKind::Free, u64::from(u32::MAX), 9);
        let (al, fr) = a.transactions(1);
        let (al, fr) = (al.expect("alloc"), fr.expect("free"));
        assert_eq!(
            (al.kind, al.thread, al.seq, al.timestamp_ms),
            (TxnKind::Alloc, 7, 5, 0)
        );
        assert_eq!(
            (fr.kind, fr.thread, fr.seq),
            (TxnKind::Free, u64::from(u32::MAX), 9)
        );
        assert_eq!(a.transactions(0), (None, None), "object 0 untouched");

        let t = AuditSlab::new(1, true, false);
        t.record(0, TxnKind::Free);
        let (none, fr) = t.transactions(0);
        assert!(none.is_none());
        let fr = fr.expect("free");
        assert!(fr.thread != 0 && fr.seq != 0);
        // Milliseconds of uptime (coarse clock): set, and not in the future.
        assert!(fr.timestamp_ms <= super::uptime_ms());
        #[cfg(all(target_os = "linux", not(miri)))]
        assert!(fr.timestamp_ms > 0);
    }
}

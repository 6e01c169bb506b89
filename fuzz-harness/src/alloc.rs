//! `alloc_ops`: sequences of alloc / free / batch alloc / batch free / purge / resize /
//! reap / update and misuse (double free, foreign, interior and other-cache pointers,
//! write after free) across three AUDIT caches with [`Policy::Report`], checked against a
//! reference model.
//!
//! Oracles:
//! * every misuse is reported at the offending call (or, for a write after free, when the
//!   object is next handed out or flushed from its magazine) with the right
//!   [`ReportKind`], object address and kernel wording;
//! * no valid operation is refused and no misuse is accepted;
//! * the objects handed out are distinct, 8-aligned and inside their cache's slabs' bounds;
//! * statistics agree with the model: [`Cache::outstanding`] equals the objects the
//!   client holds, and after a purge `sl_allocated` does too;
//! * nothing leaks: at the end every object is freed, every pending write-after-free was
//!   reported, and [`Cache::destroy`] succeeds — or, when the input asks to end with live
//!   objects, reports exactly that many as `not empty`.
//!
//! `FLOWSLAB_FUZZ_STOP_ON=<kind>` (`double-free`, `foreign`, `interior`, `other-cache`,
//! `modified-after-free`, `not-empty`) makes the harness panic as soon as that kind of
//! misuse was generated and correctly reported: the time-to-find measurement for each
//! misuse kind.

use std::collections::{BTreeMap, BTreeSet};
use std::ptr::NonNull;
use std::sync::OnceLock;

use alloc_core::{
    AllocError, Cache, FREE_PATTERN, FreeError, InvalidReason, Mode, Policy, Report, ReportKind,
};

use crate::bytes::Reader;

/// Caches per run.
pub const CACHES: usize = 3;
/// Object sizes the caches are built with (chosen by the first input byte).
pub const SIZES: [usize; 6] = [8, 24, 64, 200, 1000, 4096];
/// Most objects the client holds per cache (keeps runs fast).
pub const MAX_LIVE: usize = 96;
/// Most operations per input.
pub const MAX_OPS: usize = 400;

/// A misuse kind, as named by `FLOWSLAB_FUZZ_STOP_ON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misuse {
    /// Freeing a free object.
    DoubleFree,
    /// Freeing an address no cache owns.
    Foreign,
    /// Freeing an address inside an object.
    Interior,
    /// Freeing another cache's object.
    OtherCache,
    /// Writing to a free object.
    ModifiedAfterFree,
    /// Destroying a cache with objects outstanding.
    NotEmpty,
}

impl Misuse {
    /// Every kind.
    pub const ALL: [Misuse; 6] = [
        Misuse::DoubleFree,
        Misuse::Foreign,
        Misuse::Interior,
        Misuse::OtherCache,
        Misuse::ModifiedAfterFree,
        Misuse::NotEmpty,
    ];

    /// The `FLOWSLAB_FUZZ_STOP_ON` name.
    pub fn name(self) -> &'static str {
        match self {
            Misuse::DoubleFree => "double-free",
            Misuse::Foreign => "foreign",
            Misuse::Interior => "interior",
            Misuse::OtherCache => "other-cache",
            Misuse::ModifiedAfterFree => "modified-after-free",
            Misuse::NotEmpty => "not-empty",
        }
    }

    fn from_env() -> Option<Misuse> {
        static STOP: OnceLock<Option<Misuse>> = OnceLock::new();
        *STOP.get_or_init(|| {
            let v = std::env::var("FLOWSLAB_FUZZ_STOP_ON").ok()?;
            let v = v.trim();
            if v.is_empty() {
                return None;
            }
            Some(
                Misuse::ALL
                    .into_iter()
                    .find(|m| m.name() == v)
                    .unwrap_or_else(|| panic!("FLOWSLAB_FUZZ_STOP_ON: unknown kind {v:?}")),
            )
        })
    }
}

/// The harness body of `alloc_ops` (stop kind from the environment).
pub fn run(data: &[u8]) {
    run_with(Misuse::from_env(), data);
}

/// The harness body; panics with `alloc_ops: found <kind>` once `stop_on` was reported.
///
/// # Panics
/// When an oracle fails, or on `stop_on`.
pub fn run_with(stop_on: Option<Misuse>, data: &[u8]) {
    let mut r = Reader::new(data);
    let config = r.u8();
    let mut h = Harness::new(config, stop_on);
    let mut n = 0;
    let trace = std::env::var_os("FLOWSLAB_FUZZ_TRACE").is_some();
    while !r.is_empty() && n < MAX_OPS {
        let before = r.clone();
        h.step(&mut r);
        if trace {
            h.trace(&before);
        }
        h.check();
        n += 1;
    }
    h.finish(config & 0x80 != 0);
}

/// Operation tags (first byte of each operation, modulo [`OpTag::COUNT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpTag {
    /// `cache`
    Alloc = 0,
    /// `cache, index`
    Free,
    /// `cache, n`
    AllocBatch,
    /// `cache, n, safe?` (`try_free_batch` or the unsafe `free_batch`)
    FreeBatch,
    /// `cache`
    Purge,
    /// `cache`
    Resize,
    /// `cache, purge?`
    ReapNow,
    /// `cache` (working-set reap + update)
    Reap,
    /// `cache, index` (a freed object of this cache)
    DoubleFree,
    /// `cache, offset`
    ForeignFree,
    /// `cache, index, offset`
    InteriorFree,
    /// `cache, other, index`
    OtherCacheFree,
    /// `cache, index, word, value`
    WriteAfterFree,
}

impl OpTag {
    /// Number of operations.
    pub const COUNT: u8 = 13;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FreedState {
    /// In a magazine (its slab cannot go away while the object is cached).
    Cached,
    /// Back in the slab layer, or not known to be cached.
    Uncached,
}

struct MCache {
    cache: Cache,
    name: String,
    size: usize,
    live: Vec<usize>,
    freed: BTreeMap<usize, FreedState>,
    /// Write-after-free not reported yet: address → (offset, value).
    pending: BTreeMap<usize, (usize, u64)>,
}

struct Harness {
    caches: Vec<MCache>,
    /// Memory no cache owns (foreign frees point into it).
    foreign: Vec<u64>,
    stop_on: Option<Misuse>,
    reported: BTreeSet<Misuse>,
}

fn report_of(e: FreeError) -> Box<Report> {
    match e {
        FreeError::Audit(r) => r,
        other => panic!("alloc_ops: free refused without a report: {other}"),
    }
}

fn kernel_free_message(obj: usize, skm: usize) -> String {
    format!(
        "skmem_slab_free_locked: attempt to free invalid or already-freed obj {obj:#x} on skm {skm:#x}"
    )
}

impl Harness {
    fn new(config: u8, stop_on: Option<Misuse>) -> Self {
        let caches = (0..CACHES)
            .map(|i| {
                let size = SIZES[(usize::from(config) + i * 2) % SIZES.len()];
                let name = format!("fuzz.{i}.{size}");
                let cache = Cache::builder(&name, size)
                    .mode(Mode::AUDIT)
                    .policy(Policy::Report)
                    .build()
                    .unwrap_or_else(|e| panic!("alloc_ops: cache {name}: {e}"));
                MCache {
                    cache,
                    name,
                    size,
                    live: Vec::new(),
                    freed: BTreeMap::new(),
                    pending: BTreeMap::new(),
                }
            })
            .collect();
        Harness {
            caches,
            foreign: vec![0u64; 64],
            stop_on,
            reported: BTreeSet::new(),
        }
    }

    fn found(&mut self, m: Misuse, detail: &str) {
        self.reported.insert(m);
        if self.stop_on == Some(m) {
            panic!("alloc_ops: found {}: {detail}", m.name());
        }
    }

    fn is_live_anywhere(&self, addr: usize) -> bool {
        self.caches.iter().any(|c| c.live.contains(&addr))
    }

    fn step(&mut self, r: &mut Reader<'_>) {
        let tag = r.below(OpTag::COUNT);
        let c = r.below(CACHES as u8) as usize;
        match tag {
            0 => self.alloc(c),
            1 => {
                let i = r.u8();
                self.free(c, i);
            }
            2 => {
                let n = usize::from(r.below(17));
                self.alloc_batch(c, n);
            }
            3 => {
                let n = usize::from(r.below(17));
                let safe = r.bool();
                self.free_batch(c, n, safe);
            }
            4 => self.flush(c, |cache| cache.purge()),
            5 => self.flush(c, |cache| cache.resize()),
            6 => {
                if r.bool() {
                    self.flush(c, |cache| cache.reap_now(true));
                } else {
                    self.partial_flush(c, |cache| cache.reap_now(false));
                }
            }
            7 => self.partial_flush(c, |cache| {
                cache.reap();
                cache.update();
            }),
            8 => {
                let i = r.u8();
                self.double_free(c, i);
            }
            9 => {
                let off = usize::from(r.u8()) % (self.foreign.len() * 8);
                self.foreign_free(c, off);
            }
            10 => {
                let i = r.u8();
                let off = r.u16();
                self.interior_free(c, i, off);
            }
            11 => {
                let other = r.below(CACHES as u8) as usize;
                let i = r.u8();
                self.other_cache_free(c, other, i);
            }
            _ => {
                let i = r.u8();
                let word = r.u16();
                let value = u64::from(r.u16()) | u64::from(r.u8()) << 56;
                self.write_after_free(c, i, word, value);
            }
        }
    }

    fn handed_out(&mut self, c: usize, addr: usize) {
        assert!(
            addr.is_multiple_of(8),
            "alloc_ops: {} handed out misaligned {addr:#x}",
            self.caches[c].name
        );
        assert!(
            !self.is_live_anywhere(addr),
            "alloc_ops: {} handed out {addr:#x}, which a client still holds",
            self.caches[c].name
        );
        let mc = &mut self.caches[c];
        if let Some((off, val)) = mc.pending.get(&addr) {
            panic!(
                "alloc_ops: {} handed out {addr:#x} although it was written after free at offset {off:#x} ({val:#x}): write after free not reported",
                mc.name
            );
        }
        mc.freed.remove(&addr);
        mc.live.push(addr);
    }

    fn alloc(&mut self, c: usize) {
        if self.caches[c].live.len() >= MAX_LIVE {
            return;
        }
        match self.caches[c].cache.alloc() {
            Ok(p) => self.handed_out(c, p.as_ptr().addr()),
            Err(AllocError::Audit(rep)) => self.modified_after_free(c, &rep, "alloc"),
            Err(e) => panic!(
                "alloc_ops: {}: valid alloc refused: {e}",
                self.caches[c].name
            ),
        }
    }

    /// A `mcache_audit` report: it must be for an object the model wrote to after free,
    /// with the offset and value written.
    fn modified_after_free(&mut self, c: usize, rep: &Report, when: &str) {
        let mc = &mut self.caches[c];
        let ReportKind::ModifiedAfterFree {
            offset,
            found,
            expected,
        } = rep.kind
        else {
            panic!("alloc_ops: {}: {when} reported {rep}", mc.name);
        };
        let Some((off, val)) = mc.pending.remove(&rep.obj) else {
            panic!(
                "alloc_ops: {}: {when} reported a write after free nobody made: {rep}",
                mc.name
            );
        };
        assert_eq!(
            (offset, found, expected),
            (off & !7, val, FREE_PATTERN),
            "alloc_ops: {}: {when}: report {rep}",
            mc.name
        );
        let want = format!(
            "mcache_audit: buffer {:#x} modified after free at offset {:#x} ({val:#x} instead of {FREE_PATTERN:#x})",
            rep.obj, off
        );
        assert_eq!(rep.message(), want, "alloc_ops: mcache_audit wording");
        // The object is re-poisoned and back in the slab layer.
        mc.freed.insert(rep.obj, FreedState::Uncached);
        let detail = rep.message();
        self.found(Misuse::ModifiedAfterFree, &detail);
    }

    fn free(&mut self, c: usize, i: u8) {
        let mc = &mut self.caches[c];
        if mc.live.is_empty() {
            return;
        }
        let addr = mc.live.swap_remove(usize::from(i) % mc.live.len());
        let before = mc.cache.stats().sl_allocated;
        if let Err(e) = mc.cache.try_free(addr as *mut u8) {
            panic!(
                "alloc_ops: {}: valid free of {addr:#x} refused: {e}",
                mc.name
            );
        }
        let cached = mc.cache.stats().sl_allocated == before;
        mc.freed.insert(
            addr,
            if cached {
                FreedState::Cached
            } else {
                FreedState::Uncached
            },
        );
    }

    fn alloc_batch(&mut self, c: usize, n: usize) {
        let n = n.min(MAX_LIVE.saturating_sub(self.caches[c].live.len()));
        if n == 0 {
            return;
        }
        let pending_before = self.caches[c].pending.len();
        let mut out = Vec::new();
        let res = self.caches[c].cache.alloc_batch(n, &mut out);
        for p in &out {
            self.handed_out(c, p.as_ptr().addr());
        }
        match res {
            Ok(got) if got == n && out.len() == n => {}
            Ok(got) => panic!(
                "alloc_ops: {}: alloc_batch({n}) returned {got} objects and no report ({} writes after free pending)",
                self.caches[c].name, pending_before
            ),
            // A write after free stops the batch with its report (fixed KB-1: it used to be
            // dropped); what was handed out before it is in `out`.
            Err(AllocError::Audit(rep)) => self.modified_after_free(c, &rep, "alloc_batch"),
            Err(e) => panic!(
                "alloc_ops: {}: alloc_batch({n}) refused: {e}",
                self.caches[c].name
            ),
        }
    }

    fn free_batch(&mut self, c: usize, n: usize, safe: bool) {
        let mc = &mut self.caches[c];
        let n = n.min(mc.live.len());
        if n == 0 {
            return;
        }
        let objs: Vec<usize> = mc.live.drain(mc.live.len() - n..).collect();
        let ptrs: Vec<NonNull<u8>> = objs
            .iter()
            .filter_map(|a| NonNull::new(*a as *mut u8))
            .collect();
        let res = if safe {
            mc.cache.try_free_batch(&ptrs).map_err(|e| e.to_string())
        } else {
            // SAFETY: the cache is in AUDIT mode, where `free` validates any address (and
            // these are live objects of this cache that the model hands back exactly once).
            unsafe { mc.cache.free_batch(&ptrs) }.map_err(|rep| rep.to_string())
        };
        if let Err(e) = res {
            panic!(
                "alloc_ops: {}: valid batch free (safe: {safe}) refused: {e}",
                mc.name
            );
        }
        // Which of them stayed cached is not observable per object: none is a
        // write-after-free target until the next flush says otherwise.
        for a in objs {
            mc.freed.insert(a, FreedState::Uncached);
        }
    }

    /// A full flush (purge/resize/reap_now(purge)): every cached object is verified and
    /// returned to the slab layer, so every pending write after free must be reported.
    fn flush(&mut self, c: usize, f: impl FnOnce(&Cache)) {
        f(&self.caches[c].cache);
        let reps = self.caches[c].cache.take_reports();
        for rep in &reps {
            self.modified_after_free(c, rep, "flush (take_reports)");
        }
        let mc = &mut self.caches[c];
        if let Some((addr, (off, val))) = mc.pending.iter().next() {
            // Only objects freed into a magazine are targets; after a full flush they were
            // all verified.
            panic!(
                "alloc_ops: {}: write after free to {addr:#x} at {off:#x} ({val:#x}) not reported by a purge",
                mc.name
            );
        }
        for st in mc.freed.values_mut() {
            *st = FreedState::Uncached;
        }
        let st = mc.cache.stats();
        assert_eq!(
            st.sl_allocated,
            mc.live.len() as u64,
            "alloc_ops: {}: sl_allocated after a purge",
            mc.name
        );
    }

    /// A partial flush (working-set reap, update): some magazines may be destroyed;
    /// whatever they held is verified, so reports may come back.
    fn partial_flush(&mut self, c: usize, f: impl FnOnce(&Cache)) {
        f(&self.caches[c].cache);
        let reps = self.caches[c].cache.take_reports();
        for rep in &reps {
            self.modified_after_free(c, rep, "reap (take_reports)");
        }
        for st in self.caches[c].freed.values_mut() {
            *st = FreedState::Uncached;
        }
    }

    fn expect_free_report(&mut self, c: usize, addr: usize, what: &str) -> Box<Report> {
        let mc = &self.caches[c];
        let res = mc.cache.try_free(addr as *mut u8);
        let rep = match res {
            Ok(()) => panic!(
                "alloc_ops: {}: {what} of {addr:#x} accepted (no report)",
                mc.name
            ),
            Err(e) => report_of(e),
        };
        assert_eq!(
            rep.obj, addr,
            "alloc_ops: {}: {what}: report {rep}",
            mc.name
        );
        assert_eq!(
            rep.message(),
            kernel_free_message(addr, mc.cache.skm()),
            "alloc_ops: {}: {what}: kernel wording",
            mc.name
        );
        rep
    }

    fn double_free(&mut self, c: usize, i: u8) {
        let mc = &self.caches[c];
        let candidates: Vec<(usize, FreedState)> = mc
            .freed
            .iter()
            .filter(|(a, _)| !mc.pending.contains_key(a))
            .map(|(a, s)| (*a, *s))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (addr, state) = candidates[usize::from(i) % candidates.len()];
        if self.is_live_anywhere(addr) {
            return;
        }
        let rep = self.expect_free_report(c, addr, "double free");
        match (&rep.kind, state) {
            (ReportKind::DoubleFree, _) => self.found(Misuse::DoubleFree, &rep.message()),
            // Its slab may have gone back (and its memory elsewhere) once it left the
            // magazine layer.
            (ReportKind::InvalidFree(_), FreedState::Uncached) => {}
            (k, s) => panic!(
                "alloc_ops: {}: double free of a {s:?} object reported as {k:?}",
                self.caches[c].name
            ),
        }
    }

    fn foreign_free(&mut self, c: usize, off: usize) {
        let addr = self.foreign.as_ptr().addr() + off;
        let rep = self.expect_free_report(c, addr, "foreign free");
        assert_eq!(
            rep.kind,
            ReportKind::InvalidFree(InvalidReason::Foreign),
            "alloc_ops: foreign free: {rep}"
        );
        self.found(Misuse::Foreign, &rep.message());
    }

    fn interior_free(&mut self, c: usize, i: u8, off: u16) {
        let mc = &self.caches[c];
        if mc.live.is_empty() || mc.size < 2 {
            return;
        }
        let base = mc.live[usize::from(i) % mc.live.len()];
        let off = 1 + usize::from(off) % (mc.size - 1);
        let rep = self.expect_free_report(c, base + off, "interior free");
        assert_eq!(
            rep.kind,
            ReportKind::InvalidFree(InvalidReason::Interior { offset: off }),
            "alloc_ops: interior free at +{off:#x}: {rep}"
        );
        self.found(Misuse::Interior, &rep.message());
    }

    fn other_cache_free(&mut self, c: usize, other: usize, i: u8) {
        if other == c || self.caches[other].live.is_empty() {
            return;
        }
        let o = &self.caches[other];
        let addr = o.live[usize::from(i) % o.live.len()];
        let other_name = o.name.clone();
        let rep = self.expect_free_report(c, addr, "other-cache free");
        match &rep.kind {
            ReportKind::InvalidFree(InvalidReason::OtherCache { name })
                if name.ends_with(&other_name) => {}
            k => panic!(
                "alloc_ops: free of {other_name}'s object to {}: {k:?}",
                self.caches[c].name
            ),
        }
        self.found(Misuse::OtherCache, &rep.message());
    }

    fn write_after_free(&mut self, c: usize, i: u8, word: u16, value: u64) {
        let mc = &mut self.caches[c];
        let slab = mc.cache.slab_size().max(1);
        let targets: Vec<usize> = mc
            .freed
            .iter()
            .filter(|(a, s)| **s == FreedState::Cached && !mc.pending.contains_key(*a))
            .map(|(a, _)| *a)
            // A live neighbour in the same (slab-size aligned) slab keeps the slab mapped.
            .filter(|a| mc.live.iter().any(|l| l / slab == a / slab))
            .collect();
        if targets.is_empty() || value == FREE_PATTERN {
            return;
        }
        let addr = targets[usize::from(i) % targets.len()];
        let off = (usize::from(word) % mc.size.div_ceil(8)) * 8;
        if off + 8 > mc.size.next_multiple_of(8) {
            return;
        }
        // SAFETY: `addr` is an object this cache handed out and the model freed into a
        // magazine (`sl_allocated` did not drop at its free and no flush ran since), and
        // a client still holds another object of the same slab-size-aligned slab, so the
        // slab is live and cannot go away during this write: the 8
        // bytes at `off` (< the 8-aligned object size, within the chunk) are valid
        // memory. Writing them is the misuse audit mode must catch; nothing else reads
        // or writes the object concurrently (single-threaded harness).
        unsafe { std::ptr::write_volatile((addr + off) as *mut u64, value) };
        mc.pending.insert(addr, (off, value));
    }

    /// One line per operation (`FLOWSLAB_FUZZ_TRACE=1`): the op and each cache's model.
    fn trace(&self, op: &Reader<'_>) {
        let mut op = op.clone();
        let tag = op.below(OpTag::COUNT);
        let c = op.below(CACHES as u8);
        eprint!("op {tag:2} cache {c}:");
        for mc in &self.caches {
            eprint!(
                " [{} live {} freed {} cached {} pending {} outstanding {}]",
                mc.name,
                mc.live.len(),
                mc.freed.len(),
                mc.freed
                    .values()
                    .filter(|s| **s == FreedState::Cached)
                    .count(),
                mc.pending.len(),
                mc.cache.outstanding()
            );
        }
        eprintln!();
    }

    fn check(&self) {
        for mc in &self.caches {
            assert_eq!(
                mc.cache.outstanding(),
                mc.live.len() as u64,
                "alloc_ops: {}: outstanding objects",
                mc.name
            );
        }
    }

    fn finish(mut self, leak: bool) {
        for c in 0..CACHES {
            if !leak {
                while !self.caches[c].live.is_empty() {
                    self.free(c, 0);
                }
            }
            self.flush(c, |cache| cache.purge());
        }
        self.check();
        for mc in std::mem::take(&mut self.caches) {
            let live = mc.live.len() as u64;
            let name = mc.name.clone();
            match mc.cache.destroy() {
                Ok(()) if live == 0 => {}
                Err(rep) if live > 0 => {
                    assert_eq!(
                        rep.kind,
                        ReportKind::NotEmpty { unfreed: live },
                        "alloc_ops: {name}: destroy with {live} live: {rep}"
                    );
                    assert!(
                        rep.message().starts_with("skmem_cache_destroy: '")
                            && rep
                                .message()
                                .ends_with(&format!("not empty ({live} unfreed)")),
                        "alloc_ops: not-empty wording: {}",
                        rep.message()
                    );
                    let msg = rep.message();
                    self.found(Misuse::NotEmpty, &msg);
                }
                Ok(()) => panic!("alloc_ops: {name}: destroy with {live} live objects succeeded"),
                Err(rep) => panic!("alloc_ops: {name}: leaked at destroy: {rep}"),
            }
        }
    }
}

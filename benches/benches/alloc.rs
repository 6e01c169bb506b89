//! alloc-core against real peers: system malloc (`std::alloc::System`), mimalloc (through
//! its `GlobalAlloc` impl, not as the global allocator), and the `slab` crate.
//!
//! Workloads (64-byte objects):
//! * `pair`: a ring of 32 live objects; each iteration allocates one, writes it and frees the
//!   oldest (so pop and push never cancel out, see perf-anchors §1.10).
//! * `batch`: allocate 64, then free the 64 (time per object).
//! * `xthread`: a producer allocates, a consumer thread frees (batches of 64 handed over a
//!   channel; time per object, channel cost included for every contender).
//!
//! Run: `cargo bench -p flowslab-benches --bench alloc -- --warm-up-time 1 --measurement-time 3`
//! (add `--features mimalloc-secure` to compare with mimalloc's secure mode instead).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloc_core::{Cache, Mode, Policy, TypedCache};
use criterion::{Criterion, Throughput, criterion_group};
use mimalloc::MiMalloc;

const SIZE: usize = 64;

/// The mimalloc contender's name: its secure mode when built with the `mimalloc-secure`
/// feature (see benches/Cargo.toml).
const MIMALLOC: &str = if cfg!(feature = "mimalloc-secure") {
    "mimalloc-secure"
} else {
    "mimalloc"
};
const RING: usize = 32;
const BATCH: usize = 64;

/// The operations every contender provides.
trait Pool {
    type H: Copy;
    fn get(&mut self) -> Self::H;
    fn put(&mut self, h: Self::H);
    fn touch(&mut self, h: Self::H);
}

struct Global<A: GlobalAlloc>(A);

impl<A: GlobalAlloc> Pool for Global<A> {
    type H = NonNull<u8>;
    fn get(&mut self) -> NonNull<u8> {
        let l = Layout::from_size_align(SIZE, 8).expect("layout");
        // SAFETY: non-zero-size layout.
        NonNull::new(unsafe { self.0.alloc(l) }).expect("oom")
    }
    fn put(&mut self, h: NonNull<u8>) {
        let l = Layout::from_size_align(SIZE, 8).expect("layout");
        // SAFETY: `h` came from `get` with the same layout and is freed once.
        unsafe { self.0.dealloc(h.as_ptr(), l) }
    }
    fn touch(&mut self, h: NonNull<u8>) {
        // SAFETY: `h` is a live 64-byte allocation.
        unsafe { h.as_ptr().write(1) }
    }
}

/// The floor: a bare LIFO stack of free objects (what any magazine layer pays at least).
struct FreeList(Vec<NonNull<u8>>);

impl Pool for FreeList {
    type H = NonNull<u8>;
    fn get(&mut self) -> NonNull<u8> {
        match self.0.pop() {
            Some(p) => p,
            None => Global(System).get(),
        }
    }
    fn put(&mut self, h: NonNull<u8>) {
        self.0.push(h);
    }
    fn touch(&mut self, h: NonNull<u8>) {
        // SAFETY: `h` is a live 64-byte allocation.
        unsafe { h.as_ptr().write(1) }
    }
}

impl Drop for FreeList {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            Global(System).put(p);
        }
    }
}

struct SlabCrate(slab::Slab<[u8; SIZE]>);

impl Pool for SlabCrate {
    type H = usize;
    fn get(&mut self) -> usize {
        self.0.insert([0; SIZE])
    }
    fn put(&mut self, h: usize) {
        black_box(self.0.remove(h));
    }
    fn touch(&mut self, h: usize) {
        if let Some(v) = self.0.get_mut(h) {
            v[0] = 1;
        }
    }
}

/// alloc-core in production mode (`unsafe free`).
struct Skmem<'a>(&'a Cache);

impl Pool for Skmem<'_> {
    type H = NonNull<u8>;
    fn get(&mut self) -> NonNull<u8> {
        self.0.alloc().expect("alloc")
    }
    fn put(&mut self, h: NonNull<u8>) {
        // SAFETY: `h` came from this cache and is freed once.
        unsafe { self.0.free(h).expect("free") }
    }
    fn touch(&mut self, h: NonNull<u8>) {
        // SAFETY: `h` is a live 64-byte object.
        unsafe { h.as_ptr().write(1) }
    }
}

/// alloc-core in AUDIT mode (safe `try_free`).
struct SkmemAudit<'a>(&'a Cache);

impl Pool for SkmemAudit<'_> {
    type H = NonNull<u8>;
    fn get(&mut self) -> NonNull<u8> {
        self.0.alloc().expect("alloc")
    }
    fn put(&mut self, h: NonNull<u8>) {
        self.0.try_free(h.as_ptr()).expect("free");
    }
    fn touch(&mut self, h: NonNull<u8>) {
        // SAFETY: `h` is a live 64-byte object.
        unsafe { h.as_ptr().write(1) }
    }
}

fn ring<P: Pool>(p: &mut P, iters: u64) -> Duration {
    let mut live: Vec<P::H> = (0..RING).map(|_| p.get()).collect();
    let start = Instant::now();
    let mut i = 0;
    for _ in 0..iters {
        let h = p.get();
        p.touch(h);
        let old = std::mem::replace(&mut live[i], h);
        p.put(old);
        i = (i + 1) % RING;
    }
    let t = start.elapsed();
    for h in live {
        p.put(h);
    }
    t
}

/// The `pair` ring through the typed front: handles own the objects, dropping one frees it.
fn typed_ring(typed: &TypedCache<[u8; SIZE]>, iters: u64) -> Duration {
    let mut live: Vec<_> = (0..RING)
        .map(|_| typed.alloc([0; SIZE]).expect("alloc"))
        .collect();
    let start = Instant::now();
    let mut i = 0;
    for _ in 0..iters {
        let mut h = typed.alloc([0; SIZE]).expect("alloc");
        h[0] = 1;
        drop(std::mem::replace(&mut live[i], h));
        i = (i + 1) % RING;
    }
    start.elapsed()
}

fn batch<P: Pool>(p: &mut P, iters: u64) -> Duration {
    let mut v: Vec<P::H> = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            v.push(p.get());
        }
        for h in v.drain(..) {
            p.put(h);
        }
    }
    start.elapsed()
}

/// The `batch` workload through alloc-core's batch API: `alloc_batch`, then `free_batch`
/// (production) or `try_free_batch` (AUDIT: the safe API, every object validated).
fn batch_cache(c: &Cache, iters: u64) -> Duration {
    let audit = c.mode().contains(Mode::AUDIT);
    let mut v = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for _ in 0..iters {
        c.alloc_batch(BATCH, &mut v).expect("alloc");
        if audit {
            // The safe, validating batch free (every object checked as `try_free` would).
            c.try_free_batch(&v).expect("free");
        } else {
            // SAFETY: all allocated just above from `c`, freed once.
            unsafe { c.free_batch(&v).expect("free") };
        }
        v.clear();
    }
    start.elapsed()
}

/// The floor under any AUDIT batch that claims every freed object with one atomic
/// read-modify-write (as alloc-core does, so that two racing frees cannot both succeed):
/// per object one plain store on allocation and one compare-exchange on free, over a
/// 64-entry state table, and nothing else (no magazine, no poison, no records).
fn cas_floor(iters: u64) -> Duration {
    const IN_USE: u8 = 3;
    const CACHED: u8 = 1;
    let states: Vec<AtomicU8> = (0..BATCH).map(|_| AtomicU8::new(CACHED)).collect();
    let start = Instant::now();
    for _ in 0..iters {
        for s in &states {
            s.store(IN_USE, Ordering::Release);
        }
        for s in &states {
            let r = s.compare_exchange(IN_USE, CACHED, Ordering::AcqRel, Ordering::Acquire);
            black_box(r.is_ok());
        }
    }
    start.elapsed()
}

fn cache(name: &str, mode: Mode) -> Cache {
    Cache::builder(name, SIZE)
        .mode(mode)
        .policy(Policy::Panic)
        .build()
        .expect("cache")
}

fn pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("pair");
    g.throughput(Throughput::Elements(1));
    g.bench_function("system", |b| {
        b.iter_custom(|n| ring(&mut Global(System), n))
    });
    g.bench_function("freelist-floor", |b| {
        b.iter_custom(|n| ring(&mut FreeList(Vec::with_capacity(64)), n))
    });
    g.bench_function(MIMALLOC, |b| {
        b.iter_custom(|n| ring(&mut Global(MiMalloc), n))
    });
    g.bench_function("slab", |b| {
        b.iter_custom(|n| ring(&mut SlabCrate(slab::Slab::with_capacity(64)), n))
    });
    let prod = cache("bench.prod", Mode::empty());
    g.bench_function("alloc-core", |b| {
        b.iter_custom(|n| ring(&mut Skmem(&prod), n))
    });
    let audit = cache("bench.audit", Mode::AUDIT);
    g.bench_function("alloc-core-audit", |b| {
        b.iter_custom(|n| ring(&mut SkmemAudit(&audit), n))
    });
    let typed: TypedCache<[u8; SIZE]> = TypedCache::new("bench.typed").expect("cache");
    g.bench_function("alloc-core-typed", |b| {
        b.iter_custom(|n| typed_ring(&typed, n))
    });
    g.finish();
}

fn batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("system", |b| {
        b.iter_custom(|n| batch(&mut Global(System), n))
    });
    g.bench_function(MIMALLOC, |b| {
        b.iter_custom(|n| batch(&mut Global(MiMalloc), n))
    });
    g.bench_function("slab", |b| {
        b.iter_custom(|n| batch(&mut SlabCrate(slab::Slab::with_capacity(BATCH)), n))
    });
    for (name, mode) in [
        ("alloc-core", Mode::BATCH),
        ("alloc-core-audit", Mode::BATCH | Mode::AUDIT),
    ] {
        let c = cache(&format!("bench.batch.{name}"), mode);
        g.bench_function(name, |b| b.iter_custom(|n| batch_cache(&c, n)));
    }
    g.finish();
}

/// Object pointers handed to the consumer thread.
struct Ptrs(Vec<NonNull<u8>>);
// SAFETY: ownership of the objects moves to the consumer, which frees each once.
unsafe impl Send for Ptrs {}

/// Producer allocates `iters` objects in batches; a consumer thread frees them.
fn xthread<A, F>(iters: u64, alloc: A, free: F) -> Duration
where
    A: Fn() -> NonNull<u8>,
    F: Fn(NonNull<u8>) + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Ptrs>(4);
    let consumer = std::thread::spawn(move || {
        for b in rx {
            for p in b.0 {
                free(p);
            }
        }
    });
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let k = left.min(BATCH as u64) as usize;
        let v: Vec<NonNull<u8>> = (0..k).map(|_| alloc()).collect();
        tx.send(Ptrs(v)).expect("send");
        left -= k as u64;
    }
    drop(tx);
    consumer.join().expect("consumer");
    start.elapsed()
}

fn cross_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("xthread");
    g.throughput(Throughput::Elements(1));
    let l = Layout::from_size_align(SIZE, 8).expect("layout");
    g.bench_function("system", |b| {
        b.iter_custom(|n| {
            xthread(
                n,
                // SAFETY: non-zero-size layout.
                || NonNull::new(unsafe { System.alloc(l) }).expect("oom"),
                // SAFETY: allocated by System with `l`, freed once.
                move |p| unsafe { System.dealloc(p.as_ptr(), l) },
            )
        })
    });
    g.bench_function(MIMALLOC, |b| {
        b.iter_custom(|n| {
            xthread(
                n,
                // SAFETY: non-zero-size layout.
                || NonNull::new(unsafe { MiMalloc.alloc(l) }).expect("oom"),
                // SAFETY: allocated by MiMalloc with `l`, freed once.
                move |p| unsafe { MiMalloc.dealloc(p.as_ptr(), l) },
            )
        })
    });
    // The slab crate is single-threaded: share it behind a mutex, keys as "pointers".
    g.bench_function("slab-mutex", |b| {
        b.iter_custom(|n| {
            let s = Arc::new(Mutex::new(slab::Slab::<[u8; SIZE]>::with_capacity(256)));
            let s2 = s.clone();
            xthread(
                n,
                move || {
                    let k = s.lock().expect("lock").insert([0; SIZE]);
                    NonNull::new(std::ptr::without_provenance_mut(k + 1)).expect("key")
                },
                move |p| {
                    black_box(s2.lock().expect("lock").remove(p.as_ptr().addr() - 1));
                },
            )
        })
    });
    for (name, mode) in [
        ("alloc-core", Mode::empty()),
        ("alloc-core-audit", Mode::AUDIT),
    ] {
        let cache = Arc::new(cache(&format!("bench.x.{name}"), mode));
        let audit = mode.contains(Mode::AUDIT);
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let (a, f) = (cache.clone(), cache.clone());
                xthread(
                    n,
                    move || a.alloc().expect("alloc"),
                    move |p| {
                        if audit {
                            f.try_free(p.as_ptr()).expect("free");
                        } else {
                            // SAFETY: allocated by the producer from this cache, freed once.
                            unsafe { f.free(p).expect("free") }
                        }
                    },
                )
            })
        });
    }
    g.finish();
}

/// Instruction-count mode (no criterion): `ALLOC_COUNT=<contender>:<iters>` runs the `pair`
/// ring workload `iters` times for one contender and exits. Run it under
/// `valgrind --tool=callgrind` at two iteration counts; the difference of the totals divided
/// by the difference of the counts is the instruction cost per alloc+free pair (setup and
/// teardown cancel out). Contenders: system, freelist-floor, mimalloc, slab, alloc-core,
/// alloc-core-audit, alloc-core-typed; and `batch/alloc-core`, `batch/alloc-core-audit`,
/// where `iters` counts objects (in batches of 64) and the cost is per object.
fn count_mode(spec: &str) -> Result<(), String> {
    let (who, n) = spec.split_once(':').unwrap_or((spec, "1000000"));
    let n: u64 = n.parse().map_err(|e| {
        format!("iteration count {n:?}: {e} (want ALLOC_COUNT=<contender>:<iters>)")
    })?;
    match who {
        "system" => {
            ring(&mut Global(System), n);
        }
        "freelist-floor" => {
            ring(&mut FreeList(Vec::with_capacity(64)), n);
        }
        "mimalloc" | "mimalloc-secure" => {
            ring(&mut Global(MiMalloc), n);
        }
        "slab" => {
            ring(&mut SlabCrate(slab::Slab::with_capacity(64)), n);
        }
        "alloc-core" => {
            ring(&mut Skmem(&cache("count.prod", Mode::empty())), n);
        }
        "alloc-core-audit" => {
            ring(&mut SkmemAudit(&cache("count.audit", Mode::AUDIT)), n);
        }
        "alloc-core-typed" => {
            typed_ring(&TypedCache::new("count.typed").expect("cache"), n);
        }
        "batch/alloc-core" => {
            batch_cache(&cache("count.batch", Mode::BATCH), n / BATCH as u64);
        }
        "batch/alloc-core-audit" => {
            let c = cache("count.batch.audit", Mode::BATCH | Mode::AUDIT);
            batch_cache(&c, n / BATCH as u64);
        }
        other => return Err(format!("unknown contender {other:?}")),
    }
    Ok(())
}

criterion_group!(benches, pair, batches, cross_thread);

/// Interleaved timing mode (no criterion): `ALLOC_INTERLEAVE=<rounds>` times the `pair`
/// workload (single alloc/free calls) and the `batch` workload (`alloc_batch`/`free_batch`
/// for alloc-core, 64 single calls for the others) for every contender in short bursts,
/// round-robin, `rounds` times, and prints each contender's minimum and median ns per
/// object, then the key ratios as medians of per-round ratios. Interleaving puts every
/// contender under the same background load; the minimum is the figure least disturbed by
/// other tenants of a shared machine. `batch/cas-floor` is the floor of one compare-exchange
/// per object (see [`cas_floor`]).
fn interleave_mode(rounds: usize) {
    // Bursts of 40-200 ms: long enough for every allocator to reach its steady state.
    const PAIRS: u64 = 10_000_000;
    const BATCHES: u64 = 200_000;
    let prod = cache("il.prod", Mode::empty());
    let audit = cache("il.audit", Mode::AUDIT);
    let bprod = cache("il.batch.prod", Mode::BATCH);
    let baudit = cache("il.batch.audit", Mode::BATCH | Mode::AUDIT);
    type Run<'a> = Box<dyn FnMut() -> f64 + 'a>;
    let per = |d: Duration, n: u64| d.as_secs_f64() * 1e9 / n as f64;
    let mut contenders: Vec<(String, Run)> = vec![
        (
            "pair/system".into(),
            Box::new(|| per(ring(&mut Global(System), PAIRS), PAIRS)),
        ),
        (
            format!("pair/{MIMALLOC}"),
            Box::new(|| per(ring(&mut Global(MiMalloc), PAIRS), PAIRS)),
        ),
        (
            "pair/slab".into(),
            Box::new(|| {
                per(
                    ring(&mut SlabCrate(slab::Slab::with_capacity(64)), PAIRS),
                    PAIRS,
                )
            }),
        ),
        (
            "pair/alloc-core".into(),
            Box::new(|| per(ring(&mut Skmem(&prod), PAIRS), PAIRS)),
        ),
        (
            "pair/alloc-core-audit".into(),
            Box::new(|| per(ring(&mut SkmemAudit(&audit), PAIRS), PAIRS)),
        ),
        (
            "batch/system".into(),
            Box::new(|| per(batch(&mut Global(System), BATCHES), BATCHES * BATCH as u64)),
        ),
        (
            format!("batch/{MIMALLOC}"),
            Box::new(|| {
                per(
                    batch(&mut Global(MiMalloc), BATCHES),
                    BATCHES * BATCH as u64,
                )
            }),
        ),
        (
            "batch/alloc-core".into(),
            Box::new(|| per(batch_cache(&bprod, BATCHES), BATCHES * BATCH as u64)),
        ),
        (
            "batch/alloc-core-audit".into(),
            Box::new(|| per(batch_cache(&baudit, BATCHES), BATCHES * BATCH as u64)),
        ),
        (
            "batch/cas-floor".into(),
            Box::new(|| per(cas_floor(BATCHES), BATCHES * BATCH as u64)),
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for ((_, run), s) in contenders.iter_mut().zip(&mut samples) {
            s.push(run());
        }
    }
    println!(
        "{:<28} {:>9} {:>9}  (ns per object, {rounds} interleaved rounds)",
        "", "min", "median"
    );
    let samples_raw = samples.clone();
    for ((name, _), s) in contenders.iter().zip(&mut samples) {
        s.sort_by(f64::total_cmp);
        let min = s.first().copied().unwrap_or(f64::NAN);
        let median = s.get(s.len() / 2).copied().unwrap_or(f64::NAN);
        println!("{name:<28} {min:>9.2} {median:>9.2}");
    }
    // Ratios of contenders timed in the same round (back to back, under the same background
    // load), median over the rounds: steadier than a ratio of separate minimums.
    let names: Vec<&str> = contenders.iter().map(|(n, _)| n.as_str()).collect();
    println!("\n{:<44} {:>9}  (median of per-round ratios)", "", "ratio");
    for kind in ["pair", "batch"] {
        for (a, b) in [
            ("alloc-core", MIMALLOC),
            ("alloc-core-audit", "alloc-core"),
            ("alloc-core-audit", MIMALLOC),
            ("cas-floor", "alloc-core"),
        ] {
            let (a, b) = (format!("{kind}/{a}"), format!("{kind}/{b}"));
            if let Some(r) = paired_ratio(&names, &samples_raw, &a, &b) {
                println!("{:<44} {r:>9.2}", format!("{a} / {b}"));
            }
        }
    }
}

/// Median over rounds of `a`'s time divided by `b`'s time in the same round (`samples` is
/// `[contender][round]`, in the order taken); `None` if either contender is missing.
fn paired_ratio(names: &[&str], samples: &[Vec<f64>], a: &str, b: &str) -> Option<f64> {
    let ia = names.iter().position(|n| *n == a)?;
    let ib = names.iter().position(|n| *n == b)?;
    let mut r: Vec<f64> = samples
        .get(ia)?
        .iter()
        .zip(samples.get(ib)?)
        .map(|(x, y)| x / y)
        .collect();
    r.sort_by(f64::total_cmp);
    r.get(r.len() / 2).copied()
}

fn main() {
    if let Ok(spec) = std::env::var("ALLOC_COUNT") {
        if let Err(e) = count_mode(&spec) {
            eprintln!("alloc bench: ALLOC_COUNT={spec}: {e}");
            std::process::exit(2);
        }
        return;
    }
    if let Ok(rounds) = std::env::var("ALLOC_INTERLEAVE") {
        match rounds.parse() {
            Ok(r) if r > 0 => interleave_mode(r),
            _ => {
                eprintln!(
                    "alloc bench: ALLOC_INTERLEAVE={rounds}: want a number of rounds (1 or more)"
                );
                std::process::exit(2);
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! flow-table benchmarks, side by side with hashbrown (single thread) and dashmap
//! (concurrent reads).
//!
//! * `lookup/*`: exact 5-tuple lookups in random order over N live flows. The flow table
//!   returns a *retained* entry (refcount up, then released on drop); `hashbrown` is a
//!   plain `get`, `hashbrown+arc` a `get` plus an `Arc` clone (the same "retained" work).
//!   `flow-table-borrowed` is `find_by_key_with` (a closure on the borrowed entry, one
//!   epoch pin per lookup, no refcount traffic); `flow-table-batch` is `find_by_key_in`
//!   with the read guard re-pinned every [`PIN_BATCH`] lookups (a packet batch).
//! * `insert/*`, `remove/*`: 1,000 flows opened into / destroyed from a table holding N.
//! * `read2/*`: two threads doing lookups at once (flow table retained and batch-pinned
//!   borrowed, vs dashmap's `get` + `Arc` clone).
//!
//! Run: `cargo bench -p flowslab-benches --bench flow_table -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use flow_table::entry::FlowEntryRef;
use flow_table::key::FlowKey;
use flow_table::log::{Clock, LogSink};
use flow_table::manager::{FlowManager, FlowManagerConfig, FlowRequest, OpenResult};
use flow_table::owner::{FlowOwner, OpenMode};

const SIZES: [(usize, &str); 3] = [(1_000, "1k"), (100_000, "100k"), (1_000_000, "1M")];
const BATCH: usize = 1_000;
/// Lookups per read-guard pin in the `*-batch` benches.
const PIN_BATCH: usize = 64;

fn addr(i: usize) -> (IpAddr, u16, IpAddr) {
    let i = i as u32;
    let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 14)));
    let dst = IpAddr::V4(Ipv4Addr::from(
        0x11fd_0000 | (i.wrapping_mul(2_654_435_761) >> 16),
    ));
    (src, 1024 + (i & 0x3fff) as u16, dst)
}

fn key(i: usize) -> FlowKey {
    let (s, sp, d) = addr(i);
    FlowKey::five_tuple(6, s, sp, d, 443)
}

fn request(i: usize) -> FlowRequest {
    let (s, sp, d) = addr(i);
    FlowRequest::tcp(i as u128 + 1, s, sp, d, 443)
}

/// A random permutation of 0..n (xorshift, fixed seed).
fn order(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

struct Table {
    mgr: FlowManager,
    owner: Arc<FlowOwner>,
    live: Vec<FlowEntryRef>,
}

fn flow_table(n: usize) -> Table {
    let log = Arc::new(LogSink::disabled(Arc::new(Clock::new(0))));
    let mgr = FlowManager::new(
        FlowManagerConfig {
            capacity: n,
            flow_limit: usize::MAX,
            ..FlowManagerConfig::default()
        },
        log,
    );
    let owner = mgr.owner(811, "bench");
    let live = (0..n)
        .map(
            |i| match mgr.open(&owner, &request(i), OpenMode::NonBlocking) {
                Ok(OpenResult::Opened(fe)) => fe,
                other => panic!("open {i}: {other:?}"),
            },
        )
        .collect();
    Table { mgr, owner, live }
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    for (n, label) in SIZES {
        let ord = order(n);
        let keys: Vec<FlowKey> = (0..n).map(key).collect();
        let t = flow_table(n);
        g.bench_function(BenchmarkId::new("flow-table", label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let k = &keys[ord[i % n] as usize];
                i += 1;
                let fe = t.mgr.find_by_key(black_box(k));
                black_box(fe.map(|e| e.key_hash()))
            })
        });
        g.bench_function(BenchmarkId::new("flow-table-borrowed", label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let k = &keys[ord[i % n] as usize];
                i += 1;
                black_box(t.mgr.find_by_key_with(black_box(k), |e| e.key_hash()))
            })
        });
        g.bench_function(BenchmarkId::new("flow-table-batch", label), |b| {
            let mut i = 0usize;
            let mut guard = t.mgr.read_guard();
            b.iter(|| {
                if i.is_multiple_of(PIN_BATCH) {
                    guard = t.mgr.read_guard();
                }
                let k = &keys[ord[i % n] as usize];
                i += 1;
                black_box(
                    t.mgr
                        .find_by_key_in(&guard, black_box(k))
                        .map(|e| e.key_hash()),
                )
            })
        });
        drop(t);
        let hb: hashbrown::HashMap<FlowKey, Arc<u64>> =
            (0..n).map(|i| (keys[i], Arc::new(i as u64))).collect();
        g.bench_function(BenchmarkId::new("hashbrown", label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let k = &keys[ord[i % n] as usize];
                i += 1;
                black_box(hb.get(black_box(k)).map(|v| **v))
            })
        });
        g.bench_function(BenchmarkId::new("hashbrown+arc", label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let k = &keys[ord[i % n] as usize];
                i += 1;
                black_box(hb.get(black_box(k)).cloned())
            })
        });
    }
    g.finish();
}

fn insert_remove(c: &mut Criterion) {
    for (n, label) in SIZES {
        let t = flow_table(n);
        let mut hb: hashbrown::HashMap<FlowKey, Arc<u64>> =
            (0..n).map(|i| (key(i), Arc::new(i as u64))).collect();
        let extra: Vec<usize> = (n..n + BATCH).collect();
        let mut g = c.benchmark_group("insert");
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("flow-table", label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let opened: Vec<FlowEntryRef> = extra
                        .iter()
                        .filter_map(|&i| {
                            match t.mgr.open(&t.owner, &request(i), OpenMode::NonBlocking) {
                                Ok(OpenResult::Opened(fe)) => Some(fe),
                                _ => None,
                            }
                        })
                        .collect();
                    spent += start.elapsed();
                    for fe in opened {
                        t.mgr.destroy(&t.owner, fe, true);
                    }
                }
                spent
            })
        });
        g.bench_function(BenchmarkId::new("hashbrown", label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for &i in &extra {
                        hb.insert(key(i), Arc::new(i as u64));
                    }
                    spent += start.elapsed();
                    for &i in &extra {
                        hb.remove(&key(i));
                    }
                }
                spent
            })
        });
        g.finish();
        let mut g = c.benchmark_group("remove");
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("flow-table", label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let opened: Vec<FlowEntryRef> = extra
                        .iter()
                        .filter_map(|&i| {
                            match t.mgr.open(&t.owner, &request(i), OpenMode::NonBlocking) {
                                Ok(OpenResult::Opened(fe)) => Some(fe),
                                _ => None,
                            }
                        })
                        .collect();
                    let start = Instant::now();
                    for fe in opened {
                        t.mgr.destroy(&t.owner, fe, true);
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
        g.bench_function(BenchmarkId::new("hashbrown", label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for &i in &extra {
                        hb.insert(key(i), Arc::new(i as u64));
                    }
                    let start = Instant::now();
                    for &i in &extra {
                        black_box(hb.remove(&key(i)));
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
        g.finish();
        drop(t.live);
    }
}

fn concurrent_reads(c: &mut Criterion) {
    const THREADS: usize = 2;
    let mut g = c.benchmark_group("read2");
    g.throughput(Throughput::Elements(THREADS as u64));
    for (n, label) in SIZES {
        let keys: Vec<FlowKey> = (0..n).map(key).collect();
        let ords: Vec<Vec<u32>> = (0..THREADS)
            .map(|t| {
                let mut o = order(n);
                o.rotate_left(t * n / THREADS);
                o
            })
            .collect();
        let t = flow_table(n);
        g.bench_function(BenchmarkId::new("flow-table", label), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for ord in &ords {
                        let (keys, mgr) = (&keys, &t.mgr);
                        s.spawn(move || {
                            for i in 0..iters as usize {
                                let k = &keys[ord[i % n] as usize];
                                black_box(mgr.find_by_key(k).map(|e| e.key_hash()));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("flow-table-batch", label), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for ord in &ords {
                        let (keys, mgr) = (&keys, &t.mgr);
                        s.spawn(move || {
                            let mut guard = mgr.read_guard();
                            for i in 0..iters as usize {
                                if i % PIN_BATCH == 0 {
                                    guard = mgr.read_guard();
                                }
                                let k = &keys[ord[i % n] as usize];
                                black_box(mgr.find_by_key_in(&guard, k).map(|e| e.key_hash()));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        drop(t);
        let dm: DashMap<FlowKey, Arc<u64>> =
            (0..n).map(|i| (keys[i], Arc::new(i as u64))).collect();
        g.bench_function(BenchmarkId::new("dashmap", label), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for ord in &ords {
                        let (keys, dm) = (&keys, &dm);
                        s.spawn(move || {
                            for i in 0..iters as usize {
                                let k = &keys[ord[i % n] as usize];
                                black_box(dm.get(k).map(|v| Arc::clone(v.value())));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookups, insert_remove, concurrent_reads);
criterion_main!(benches);

//! Unit tests: every state transition and counter, the audit reports, the typed front.

use crate::sync::atomic::{AtomicUsize, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc as StdArc;

use crate::audit::{CACHED, IN_USE, SLAB_FREE, TYPED};
use crate::cache::state_of;
use crate::sync::lock;
use crate::*;

fn audit(name: &str) -> Cache {
    audit_with(name, AuditOptions::default())
}

fn audit_with(name: &str, opts: AuditOptions) -> Cache {
    Cache::builder(name, 64)
        .mode(Mode::AUDIT)
        .policy(Policy::Report)
        .audit_options(opts)
        .build()
        .expect("config")
}

/// A xorshift64 generator from `seed`: each call returns a number below its argument.
fn xorshift(mut x: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// Frees `p` a second time and returns the double-free report.
fn second_free(c: &Cache, p: NonNull<u8>) -> Box<Report> {
    match c.try_free(p.as_ptr()) {
        Err(FreeError::Audit(r)) => r,
        other => panic!("second free accepted: {other:?}"),
    }
}

/// A NOMAGAZINES cache with `chunks` 64-byte objects per slab.
fn slab_only(name: &str, chunks: usize) -> Cache {
    Cache::builder(name, 64)
        .mode(Mode::NOMAGAZINES)
        .slab_size(64 * chunks)
        .policy(Policy::Report)
        .build()
        .expect("config")
}

fn free(c: &Cache, p: NonNull<u8>) {
    // SAFETY: every test frees objects it allocated from `c`, once.
    unsafe { c.free(p).expect("free") };
}

fn check(c: &Cache) {
    lock(&c.inner.slab).check().expect("slab invariants");
}

#[test]
fn alloc_free_roundtrip_and_reuse() {
    let c = Cache::new("t.roundtrip", 64).unwrap();
    assert_eq!(c.name(), "skc.t.roundtrip");
    assert_eq!(
        Cache::new("skc.t.prefixed", 8).unwrap().name(),
        "skc.t.prefixed"
    );
    let p = c.alloc().unwrap();
    assert_eq!(p.as_ptr().addr() % 8, 0);
    free(&c, p);
    let q = c.alloc().unwrap();
    assert_eq!(p, q, "magazine hands back the most recently freed object");
    free(&c, q);
    c.destroy().unwrap();
}

#[test]
fn geometry_follows_skmem_cache_create() {
    let c = Cache::builder("t.geo", 13).align(32).build().unwrap();
    let s = c.stats();
    assert_eq!(s.sca_bufsize, 13);
    assert_eq!(s.sca_chunksize, 32, "P2ROUNDUP(P2ROUNDUP(13, 8), 32)");
    assert_eq!(s.sca_bufalign, 32);
    assert_eq!(s.sca_slabsize, 16384);
    assert_eq!(s.sca_cpu_mag_size, 94, "chunk 32 -> mg.94");
    assert!(
        c.mode().contains(Mode::CLEARONFREE),
        "small objects get CLEARONFREE"
    );
    let p = c.alloc().unwrap();
    assert_eq!(p.as_ptr().addr() % 32, 0);
    free(&c, p);
    let big = Cache::builder("t.geo.big", 300)
        .clear_min(0)
        .build()
        .unwrap();
    assert_eq!(big.stats().sca_cpu_mag_size, 14);
    assert!(!big.mode().contains(Mode::CLEARONFREE));
    assert_eq!(Cache::new("t.zero", 0).unwrap_err().name(), "zero-size");
    assert_eq!(
        Cache::builder("t.align", 8)
            .align(3)
            .build()
            .unwrap_err()
            .name(),
        "bad-align"
    );
    let long = "x".repeat(70);
    assert_eq!(Cache::new(&long, 8).unwrap_err().name(), "name-too-long");
    let nomag = Cache::builder("t.nomag", 64)
        .mode(Mode::NOMAGAZINES)
        .build()
        .unwrap();
    assert_eq!(nomag.stats().sca_cpu_mag_size, 0);
}

#[test]
fn slab_lists_follow_xnu_discipline() {
    let c = slab_only("t.lists", 4);
    assert_eq!(c.slab_size(), 256);
    let a: Vec<_> = (0..4).map(|_| c.alloc().unwrap()).collect();
    {
        let s = lock(&c.inner.slab);
        assert_eq!(
            s.lists(),
            (vec![], vec![0]),
            "full slab 0 on the empty list"
        );
    }
    let b: Vec<_> = (0..4).map(|_| c.alloc().unwrap()).collect();
    {
        let s = lock(&c.inner.slab);
        assert_eq!(
            s.lists(),
            (vec![], vec![1, 0]),
            "newly full slab at the head"
        );
    }
    let st = c.stats();
    assert_eq!(
        (st.sca_sl_create, st.sca_sl_empty, st.sca_sl_partial),
        (2, 2, 0)
    );
    assert_eq!(
        (st.sca_sl_bufinuse, st.sl_bufmax, st.sca_sl_alloc),
        (8, 8, 8)
    );
    free(&c, a[0]);
    free(&c, b[0]);
    {
        let s = lock(&c.inner.slab);
        assert_eq!(
            s.lists(),
            (vec![0, 1], vec![]),
            "first object back moves a full slab to the TAIL of the partial list"
        );
        assert_eq!((s.refcnt(0), s.refcnt(1)), (Some(3), Some(3)));
    }
    check(&c);
    // The head of the partial list (slab 0) serves the next allocation.
    let again = c.alloc().unwrap();
    assert_eq!(again, a[0]);
    {
        let s = lock(&c.inner.slab);
        assert_eq!(s.lists(), (vec![1], vec![0]));
    }
    // Slab 0 is destroyed when its last object returns; bufinuse drops by sl_chunks.
    for &p in a.iter().skip(1).chain([&again]) {
        free(&c, p);
    }
    let st = c.stats();
    assert_eq!(
        (st.sca_sl_destroy, st.sca_sl_bufinuse, st.sl_bufmax),
        (1, 4, 8)
    );
    assert_eq!((st.sca_sl_partial, st.sca_sl_empty), (1, 0));
    assert_eq!(st.sca_sl_free, 6);
    check(&c);
    for &p in &b[1..] {
        free(&c, p);
    }
    let st = c.stats();
    assert_eq!(
        (st.sca_sl_destroy, st.sca_sl_bufinuse, st.sca_sl_partial),
        (2, 0, 0)
    );
    c.destroy().unwrap();
}

#[test]
fn one_chunk_slab_goes_straight_to_the_empty_list() {
    let c = Cache::builder("t.one", 4096)
        .slab_size(4096)
        .mode(Mode::NOMAGAZINES)
        .build()
        .unwrap();
    let p = c.alloc().unwrap();
    let st = c.stats();
    assert_eq!(
        (st.sca_sl_empty, st.sca_sl_partial, st.sca_sl_bufinuse),
        (1, 0, 1)
    );
    free(&c, p);
    let st = c.stats();
    assert_eq!(
        (st.sca_sl_destroy, st.sca_sl_empty, st.sca_sl_bufinuse),
        (1, 0, 0)
    );
}

#[test]
fn hash_rescales_with_xnu_rule() {
    let c = slab_only("t.hash", 256);
    assert_eq!(c.stats().sca_sl_hash_size, HASH_INITIAL as u64);
    let v: Vec<_> = (0..10).map(|_| c.alloc().unwrap()).collect();
    c.update();
    // bufinuse = 256 > 2 * 63 -> 1 << (flsll(3*256+4) - 2) = 256 buckets.
    let st = c.stats();
    assert_eq!((st.sca_sl_hash_size, st.sca_sl_rescale), (256, 1));
    check(&c);
    // Lookups still work after the rehash.
    for &p in &v {
        free(&c, p);
    }
    c.update();
    // bufinuse = 0 < 255/2 and mask > 64 -> back to 64.
    let st = c.stats();
    assert_eq!((st.sca_sl_hash_size, st.sca_sl_rescale), (64, 2));
    c.update();
    assert_eq!(
        c.stats().sca_sl_rescale,
        2,
        "no rescale within a factor of two"
    );
}

#[test]
fn magazine_rounds_depot_and_purge() {
    let c = Cache::builder("t.mag", 64)
        .policy(Policy::Report)
        .build()
        .unwrap();
    assert_eq!(c.stats().sca_cpu_rounds, 0, "cp_rounds == -1 counts as 0");
    let v: Vec<_> = (0..200).map(|_| c.alloc().unwrap()).collect();
    let st = c.stats();
    assert_eq!(
        st.sca_sl_alloc, 200,
        "empty magazines: every alloc from the slab"
    );
    for &p in &v[..62] {
        free(&c, p);
    }
    let st = c.stats();
    assert_eq!((st.sca_cpu_rounds, st.sca_cpu_prounds), (62, 0));
    assert_eq!(st.sca_sl_free, 0);
    for &p in &v[62..124] {
        free(&c, p);
    }
    let st = c.stats();
    assert_eq!((st.sca_cpu_rounds, st.sca_cpu_prounds), (62, 62));
    free(&c, v[124]);
    let st = c.stats();
    assert_eq!(
        st.sca_depot_full, 1,
        "displaced full previous magazine goes to skm_full"
    );
    assert_eq!((st.sca_cpu_rounds, st.sca_cpu_prounds), (1, 62));
    for &p in &v[125..] {
        free(&c, p);
    }
    assert_eq!(c.outstanding(), 0);
    // Allocations now come from magazines, not slabs.
    let before = c.stats().sca_sl_alloc;
    let w: Vec<_> = (0..150).map(|_| c.alloc().unwrap()).collect();
    assert_eq!(c.stats().sca_sl_alloc, before);
    assert!(c.stats().depot_full_list.ml_alloc >= 1);
    for &p in &w {
        free(&c, p);
    }
    c.purge();
    let st = c.stats();
    assert_eq!((st.sca_cpu_rounds, st.sca_cpu_prounds), (0, 0));
    assert_eq!((st.sca_depot_full, st.sca_depot_empty), (0, 0));
    assert_eq!(st.sca_cpu_mag_purge, 1);
    assert_eq!(st.sca_depot_ws_zero, 1);
    assert_eq!(st.sca_cpu_mag_reap, 1);
    assert_eq!(st.sl_allocated, 0);
    assert_eq!(st.sca_sl_bufinuse, 0, "every slab destroyed");
    assert_eq!(st.sca_cpu_mag_size, 62, "re-enabled after purge");
    // Usable after purge.
    let p = c.alloc().unwrap();
    free(&c, p);
    check(&c);
}

#[test]
fn working_set_update_and_reap() {
    let c = Cache::new("t.ws", 64).unwrap();
    let v: Vec<_> = (0..62 * 5).map(|_| c.alloc().unwrap()).collect();
    for &p in &v {
        free(&c, p);
    }
    let full = c.stats().sca_depot_full;
    assert!(full >= 3, "{full}");
    c.update();
    c.update();
    let st = c.stats();
    assert_eq!(st.depot_full_list.ml_reaplimit, full);
    assert_eq!(st.depot_full_list.ml_min, full);
    c.reap();
    let st = c.stats();
    assert_eq!(st.sca_depot_full, 0, "unused working set reaped");
    assert_eq!(st.sca_cpu_mag_reap, 1);
    // Using the depot between updates lowers ml_min, protecting the working set.
    let v: Vec<_> = (0..62 * 5).map(|_| c.alloc().unwrap()).collect();
    for &p in &v {
        free(&c, p);
    }
    c.update();
    let w: Vec<_> = (0..62 * 3).map(|_| c.alloc().unwrap()).collect();
    for &p in &w {
        free(&c, p);
    }
    c.update();
    let st = c.stats();
    assert!(st.depot_full_list.ml_reaplimit < st.sca_depot_full);
}

#[test]
fn reap_now_without_purge_zeroes_working_set_and_drops_previous() {
    let c = Cache::new("t.reapnow", 64).unwrap();
    let v: Vec<_> = (0..62 * 3).map(|_| c.alloc().unwrap()).collect();
    for &p in &v {
        free(&c, p);
    }
    assert!(c.stats().sca_cpu_prounds > 0);
    c.reap_now(false);
    let st = c.stats();
    assert_eq!(st.sca_depot_ws_zero, 1);
    assert_eq!((st.sca_depot_full, st.sca_cpu_prounds), (0, 0));
    assert_eq!(st.sca_cpu_mag_purge, 0);
    assert!(st.sca_cpu_rounds > 0, "loaded magazine kept");
    let r = Cache::builder("t.reclaim", 64)
        .mode(Mode::RECLAIM)
        .build()
        .unwrap();
    let p = r.alloc().unwrap();
    free(&r, p);
    r.reap_now(false);
    assert_eq!(
        r.stats().sca_cpu_mag_purge,
        1,
        "RECLAIM: reap_now always purges"
    );
}

#[test]
fn resize_moves_to_next_magtype() {
    let c = Cache::builder("t.resize", 200)
        .mode(Mode::DYNAMIC)
        .build()
        .unwrap();
    assert_eq!(c.stats().sca_cpu_mag_size, 14);
    // Contention above the threshold since the last update -> resize at update.
    c.inner.contention.store(4, Ordering::Relaxed);
    c.update();
    let st = c.stats();
    assert_eq!((st.sca_cpu_mag_size, st.sca_cpu_mag_resize), (30, 1));
    assert_eq!(st.sca_cpu_mag_purge, 1, "resize purges");
    // contention_prev = contention + INT_MAX suppresses an immediate second resize.
    c.inner.contention.store(9, Ordering::Relaxed);
    c.update();
    assert_eq!(c.stats().sca_cpu_mag_resize, 1);
    c.inner.contention.store(13, Ordering::Relaxed);
    c.update();
    assert_eq!(
        c.stats().sca_cpu_mag_size,
        46,
        "200 < mt_maxbuf 256 of mg.30"
    );
    c.inner.contention.store(20, Ordering::Relaxed);
    c.update();
    assert_eq!(
        c.stats().sca_cpu_mag_size,
        46,
        "200 >= mt_maxbuf 128 of mg.46: stop"
    );
    // Exactly the threshold does not resize; no DYNAMIC flag never resizes.
    let s = Cache::new("t.static", 200).unwrap();
    s.inner.contention.store(100, Ordering::Relaxed);
    s.update();
    assert_eq!(s.stats().sca_cpu_mag_resize, 0);
    // Objects cached before a resize are flushed, and new magazines have the new size.
    let v: Vec<_> = (0..40).map(|_| c.alloc().unwrap()).collect();
    for &p in &v {
        free(&c, p);
    }
    c.resize();
    let st = c.stats();
    assert_eq!((st.sca_cpu_mag_size, st.sl_allocated), (62, 0));
    let v: Vec<_> = (0..70).map(|_| c.alloc().unwrap()).collect();
    for &p in &v {
        free(&c, p);
    }
    assert_eq!(
        c.stats().sca_cpu_rounds,
        62 - 54,
        "loaded after 70 frees of mg.62"
    );
}

#[test]
fn depot_contention_is_counted_in_dynamic_mode() {
    let c = StdArc::new(
        Cache::builder("t.cont", 64)
            .mode(Mode::DYNAMIC)
            .build()
            .unwrap(),
    );
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let c2 = c.clone();
    let t = std::thread::spawn(move || {
        let p = c2.alloc().unwrap();
        free(&c2, p);
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        let v: Vec<_> = (0..100).map(|_| c2.alloc().unwrap()).collect();
        for &p in &v {
            free(&c2, p);
        }
    });
    ready_rx.recv().unwrap();
    let g = lock(&c.inner.depot);
    go_tx.send(()).unwrap();
    while c.inner.contention.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    drop(g);
    t.join().unwrap();
    let st = c.stats();
    assert!(st.depot_contention >= 1);
    assert!(st.sca_depot_contention_factor >= 1);
}

#[test]
fn ctor_dtor_run_at_the_slab_boundary() {
    let ctors = StdArc::new(AtomicUsize::new(0));
    let dtors = StdArc::new(AtomicUsize::new(0));
    let (c1, d1) = (ctors.clone(), dtors.clone());
    let c = Cache::builder("t.ctor", 64)
        .ctor(move |p| {
            // SAFETY: the cache passes a writable object of 64 bytes.
            unsafe { p.as_ptr().cast::<u64>().write(0x1234) };
            c1.fetch_add(1, Ordering::Relaxed);
            true
        })
        .dtor(move |_| {
            d1.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let p = c.alloc().unwrap();
    // SAFETY: constructed object.
    assert_eq!(unsafe { p.as_ptr().cast::<u64>().read() }, 0x1234);
    free(&c, p);
    let q = c.alloc().unwrap();
    assert_eq!(
        ctors.load(Ordering::Relaxed),
        1,
        "magazine hit: no re-construction"
    );
    free(&c, q);
    assert_eq!(
        dtors.load(Ordering::Relaxed),
        0,
        "magazine push: no destruction"
    );
    c.purge();
    assert_eq!(
        dtors.load(Ordering::Relaxed),
        1,
        "purge destructs cached rounds"
    );
    c.destroy().unwrap();

    let fail = Cache::builder("t.ctorfail", 64)
        .ctor(|_| false)
        .build()
        .unwrap();
    let e = fail.alloc().unwrap_err();
    assert_eq!(e.name(), "ctor-failed");
    assert_eq!(e.to_string(), "skc.t.ctorfail: object constructor failed");
    assert!(matches!(&e, AllocError::CtorFailed { cache } if *cache == "skc.t.ctorfail"));
    let st = fail.stats();
    assert_eq!(
        (st.sca_sl_alloc_fail, st.sca_sl_alloc, st.sca_sl_free),
        (1, 1, 1)
    );
    assert_eq!(st.sl_allocated, 0);
}

#[test]
fn audit_states_and_double_free_in_magazine() {
    let c = audit("t.df");
    let p = c.alloc().unwrap();
    assert_eq!(state_of(&c, p.as_ptr()), Some(IN_USE));
    c.try_free(p.as_ptr()).unwrap();
    assert_eq!(state_of(&c, p.as_ptr()), Some(CACHED));
    assert_eq!(
        c.stats().sca_cpu_rounds,
        1,
        "first copy sits in the magazine"
    );
    let e = c.try_free(p.as_ptr()).unwrap_err();
    let FreeError::Audit(r) = e else {
        panic!("{e}")
    };
    assert_eq!(r.kind, ReportKind::DoubleFree);
    assert_eq!(
        r.message(),
        format!(
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj {:#x} on skm {:#x}",
            p.as_ptr().addr(),
            c.skm()
        )
    );
    let (a, f) = (r.last_alloc.clone().unwrap(), r.last_free.clone().unwrap());
    assert_eq!(a.kind, TxnKind::Alloc);
    assert_eq!(f.kind, TxnKind::Free);
    assert_eq!(a.thread, f.thread);
    assert!(r.details().contains("last free: thread"));
    // The cache is unchanged by the refused free.
    assert_eq!(c.stats().sca_cpu_rounds, 1);
    assert_eq!(c.outstanding(), 0);
    // Once purged to the slab, the state is SLAB_FREE and a free is still refused.
    c.purge();
    assert_eq!(state_of(&c, p.as_ptr()), None, "slab destroyed");
    let q = c.alloc().unwrap();
    let q2 = c.alloc().unwrap();
    c.try_free(q2.as_ptr()).unwrap();
    c.purge();
    assert_eq!(state_of(&c, q2.as_ptr()), Some(SLAB_FREE));
    assert_eq!(c.try_free(q2.as_ptr()).unwrap_err().name(), "double-free");
    c.try_free(q.as_ptr()).unwrap();
    c.destroy().unwrap();
}

/// A fast-path free that finds the loaded magazine full changes nothing and lets the full
/// path (magazine exchange) free the object: every free succeeds once, the objects end
/// CACHED, and a second free of any of them is still a double free.
#[test]
fn audit_free_into_a_full_magazine_takes_the_full_path() {
    let c = Cache::builder("t.full", 64)
        .mode(Mode::AUDIT)
        .policy(Policy::Report)
        .magtypes(&[MagType {
            magsize: 2,
            minbuf: 0,
            maxbuf: 0,
        }])
        .build()
        .unwrap();
    let objs: Vec<_> = (0..7).map(|_| c.alloc().unwrap()).collect();
    for (i, p) in objs.iter().enumerate() {
        c.try_free(p.as_ptr())
            .unwrap_or_else(|e| panic!("free {i}: {e}"));
        assert_eq!(state_of(&c, p.as_ptr()), Some(CACHED), "object {i}");
    }
    assert_eq!(c.outstanding(), 0);
    for p in &objs {
        assert_eq!(second_free(&c, *p).kind, ReportKind::DoubleFree);
    }
    assert!(c.take_reports().is_empty());
    c.destroy().unwrap();
}

#[test]
fn audit_invalid_frees() {
    let c = audit("t.inv");
    let other = audit("t.inv.other");
    let p = c.alloc().unwrap();
    let local = 0u64;
    let foreign = std::ptr::from_ref(&local).cast_mut().cast::<u8>();
    let e = c.try_free(foreign).unwrap_err();
    let FreeError::Audit(r) = e else { panic!() };
    assert_eq!(r.kind, ReportKind::InvalidFree(InvalidReason::Foreign));
    assert!(
        r.message()
            .contains(&format!("obj {:#x} on skm", foreign.addr()))
    );
    let e = c.try_free(p.as_ptr().wrapping_add(8)).unwrap_err();
    let FreeError::Audit(r) = e else { panic!() };
    assert_eq!(
        r.kind,
        ReportKind::InvalidFree(InvalidReason::Interior { offset: 8 })
    );
    let o = other.alloc().unwrap();
    let e = c.try_free(o.as_ptr()).unwrap_err();
    let FreeError::Audit(r) = e else { panic!() };
    assert_eq!(
        r.kind,
        ReportKind::InvalidFree(InvalidReason::OtherCache {
            name: "skc.t.inv.other".into()
        })
    );
    // Nothing changed: both objects still allocated and freeable.
    c.try_free(p.as_ptr()).unwrap();
    other.try_free(o.as_ptr()).unwrap();
    let plain = Cache::new("t.inv.plain", 64).unwrap();
    assert_eq!(plain.try_free(foreign).unwrap_err().name(), "not-audited");
    let q = plain.alloc().unwrap();
    assert_eq!(
        plain.try_free_batch(&[q]).unwrap_err().name(),
        "not-audited"
    );
    free(&plain, q);
}

#[test]
fn audit_write_after_free_caught_at_next_handout() {
    let c = Cache::builder("t.uaf", 64)
        .mode(Mode::AUDIT)
        .policy(Policy::Report)
        .audit_options(AuditOptions {
            uninit_fill: true,
            ..AuditOptions::default()
        })
        .build()
        .unwrap();
    let p = c.alloc().unwrap();
    // SAFETY: fresh object of 64 bytes.
    let first = unsafe { p.as_ptr().cast::<u64>().read() };
    assert_eq!(
        first, UNINITIALIZED_PATTERN,
        "handed out filled with 0xbaddcafe"
    );
    c.try_free(p.as_ptr()).unwrap();
    // SAFETY: deliberately writes to a freed object; its memory still belongs to the cache
    // (the object is cached, its slab alive), so this is a logic bug, not UB.
    unsafe { p.as_ptr().add(16).cast::<u64>().write(0x41) };
    let e = c.alloc().unwrap_err();
    let AllocError::Audit(r) = e else {
        panic!("{e}")
    };
    assert_eq!(
        r.message(),
        format!(
            "mcache_audit: buffer {:#x} modified after free at offset 0x10 (0x41 instead of 0xdeadbeefdeadbeef)",
            p.as_ptr().addr()
        )
    );
    // The damaged object left circulation consistently; the cache keeps working.
    let q = c.alloc().unwrap();
    c.try_free(q.as_ptr()).unwrap();
    assert_eq!(c.outstanding(), 0);
    check(&c);
}

/// Fuzz finding KB-1 (alloc_ops): a write after free found in the middle of a batch used to
/// end the batch short and silently; the report must reach the caller.
#[test]
fn audit_write_after_free_mid_batch_is_reported() {
    let c = Cache::builder("t.uafbatch", 64)
        .mode(Mode::AUDIT)
        .policy(Policy::Report)
        .build()
        .unwrap();
    let (a, b) = (c.alloc().unwrap(), c.alloc().unwrap());
    // Freed in this order, the magazine hands `b` out first, then `a`.
    c.try_free(a.as_ptr()).unwrap();
    c.try_free(b.as_ptr()).unwrap();
    // SAFETY: deliberately writes to a freed, cached object; its memory still belongs to the
    // cache (its slab is alive), so this is a logic bug, not UB.
    unsafe { a.as_ptr().add(8).cast::<u64>().write(0x41) };
    let mut out = Vec::new();
    let e = c.alloc_batch(4, &mut out).unwrap_err();
    let AllocError::Audit(r) = e else {
        panic!("{e}")
    };
    assert_eq!(
        r.message(),
        format!(
            "mcache_audit: buffer {:#x} modified after free at offset 0x8 (0x41 instead of 0xdeadbeefdeadbeef)",
            a.as_ptr().addr()
        )
    );
    // What was handed out before the report stays with the caller.
    assert_eq!(out, vec![b]);
    assert!(c.take_reports().is_empty(), "returned, not queued");
    for p in out {
        c.try_free(p.as_ptr()).unwrap();
    }
    assert_eq!(c.outstanding(), 0);
    check(&c);
}

#[test]
fn destroy_reports_not_empty() {
    let c = Cache::builder("t.leak", 64)
        .policy(Policy::Report)
        .build()
        .unwrap();
    let skm = c.skm();
    let _p = c.alloc().unwrap();
    let _q = c.alloc().unwrap();
    let r = c.destroy().unwrap_err();
    assert_eq!(
        r.message(),
        format!("skmem_cache_destroy: 'skc.t.leak' ({skm:#x}) not empty (2 unfreed)")
    );
    assert_eq!(r.name(), "not-empty");
}

#[test]
fn panic_policy_panics_with_a_kernel_panic_line() {
    let c = Cache::builder("t.panic", 64)
        .mode(Mode::AUDIT)
        .build()
        .unwrap();
    let p = c.alloc().unwrap();
    c.try_free(p.as_ptr()).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| c.try_free(p.as_ptr()))).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    let first = msg.lines().next().unwrap_or("");
    assert!(first.starts_with("panic(cpu "), "{msg}");
    assert!(
        first.contains(&format!(
            "): skmem_slab_free_locked: attempt to free invalid or already-freed obj {:#x} on skm {:#x} @skmem_slab.c:626",
            p.as_ptr().addr(),
            c.skm()
        )),
        "{msg}"
    );
    // The cache survives the panic.
    let q = c.alloc().unwrap();
    c.try_free(q.as_ptr()).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "backtrace capture is slow/unsupported under Miri")]
fn backtraces_are_recorded_when_asked() {
    let c = audit_with(
        "t.bt",
        AuditOptions {
            backtraces: true,
            timestamps: true,
            ..AuditOptions::default()
        },
    );
    let p = c.alloc().unwrap();
    c.try_free(p.as_ptr()).unwrap();
    let f = second_free(&c, p).last_free.unwrap();
    assert!(f.backtrace.is_some_and(|b| !b.is_empty()));
    assert!(f.timestamp_ms > 0);
    assert!(f.seq >= 2, "alloc then free on this thread");
}

/// Timestamps without backtraces: such caches take the full audit path (the thread-cache
/// fast path is for the default options), which records them on alloc and free alike,
/// including for objects handed out again from a magazine.
#[test]
#[cfg_attr(miri, ignore = "reads a real clock")]
fn timestamps_are_recorded_on_the_full_path() {
    let c = audit_with(
        "t.ts",
        AuditOptions {
            timestamps: true,
            ..AuditOptions::default()
        },
    );
    let p = c.alloc().unwrap();
    c.try_free(p.as_ptr()).unwrap();
    let q = c.alloc().unwrap();
    assert_eq!(p, q, "handed out again from the magazine");
    c.try_free(q.as_ptr()).unwrap();
    let r = second_free(&c, q);
    assert_eq!(r.kind, ReportKind::DoubleFree);
    let (a, f) = (r.last_alloc.unwrap(), r.last_free.unwrap());
    assert!(
        a.timestamp_ms > 0 && f.timestamp_ms >= a.timestamp_ms,
        "{a:?} {f:?}"
    );
    assert!(f.seq > a.seq, "free after alloc on this thread");
    assert!(a.backtrace.is_none() && f.backtrace.is_none());
}

/// Runs the Abort policy in a child test process (abort would kill this one).
#[test]
fn abort_policy_prints_the_panic_line_and_aborts() {
    if std::env::var_os("ALLOC_CORE_ABORT_CHILD").is_some() {
        let c = Cache::builder("t.abort", 64)
            .mode(Mode::AUDIT)
            .policy(Policy::Abort)
            .build()
            .unwrap();
        let p = c.alloc().unwrap();
        let _ = c.try_free(p.as_ptr());
        let _ = c.try_free(p.as_ptr());
        unreachable!("abort policy returned");
    }
    #[cfg(not(miri))]
    {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "tests::unit::abort_policy_prints_the_panic_line_and_aborts",
                "--nocapture",
            ])
            .env("ALLOC_CORE_ABORT_CHILD", "1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x"
            ),
            "{err}"
        );
        assert!(err.contains("panic(cpu "), "{err}");
    }
}

#[test]
fn production_double_free_caught_at_the_slab_layer() {
    // Like XNU: without magazines the free goes straight to the slab layer, whose hash
    // lookup fails for an object already free.
    let c = slab_only("t.prod.df", 4);
    let p = c.alloc().unwrap();
    let _keep = c.alloc().unwrap();
    free(&c, p);
    // SAFETY: deliberate double free of an address that still lies in a live slab; the
    // production path only compares it against the hash (never dereferences it).
    let r = unsafe { c.free(p) }.unwrap_err();
    assert_eq!(r.kind, ReportKind::DoubleFree);
    assert!(
        r.message()
            .starts_with("skmem_slab_free_locked: attempt to free")
    );
    assert_eq!(
        c.stats().sca_sl_free,
        2,
        "sl_free counted before the search"
    );
}

#[test]
fn typed_front_owns_and_drops() {
    struct D(StdArc<AtomicUsize>, [u64; 3]);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let drops = StdArc::new(AtomicUsize::new(0));
    let tc: TypedCache<D> = TypedCache::new("t.typed").unwrap();
    assert_eq!(tc.cache().object_size(), size_of::<D>());
    let mut a = tc.alloc(D(drops.clone(), [1, 2, 3])).unwrap();
    a.1[0] = 9;
    assert_eq!(a.1, [9, 2, 3]);
    drop(a);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    let b = tc.alloc(D(drops.clone(), [4, 5, 6])).unwrap();
    let v = b.into_inner();
    assert_eq!(v.1, [4, 5, 6]);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    drop(v);
    assert_eq!(tc.cache().outstanding(), 0);

    let audited: TypedCache<u64> = TypedCache::with_config(
        Cache::builder("t.typed.audit", 1)
            .mode(Mode::AUDIT)
            .policy(Policy::Report),
    )
    .unwrap();
    let h = audited.alloc(5).unwrap();
    assert_eq!(
        state_of(audited.cache(), h.as_ptr().cast_mut().cast()),
        Some(TYPED)
    );
    let e = audited
        .cache()
        .try_free(h.as_ptr().cast_mut().cast())
        .unwrap_err();
    let FreeError::Audit(r) = e else { panic!() };
    assert_eq!(
        r.kind,
        ReportKind::InvalidFree(InvalidReason::OwnedByHandle)
    );
    assert_eq!(*h, 5);
    drop(h);
    assert!(audited.cache().take_reports().is_empty());
    assert_eq!(audited.cache().outstanding(), 0);
}

#[test]
fn batch_alloc_and_free() {
    let c = Cache::builder("t.batch", 64)
        .mode(Mode::BATCH)
        .build()
        .unwrap();
    let mut v = Vec::new();
    assert_eq!(c.alloc_batch(100, &mut v).unwrap(), 100);
    assert_eq!(
        c.stats().sca_sl_alloc,
        100,
        "empty magazines: one slab batch"
    );
    let mut sorted: Vec<_> = v.iter().map(|p| p.as_ptr().addr()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 100, "distinct objects");
    // SAFETY: all allocated above, freed once.
    unsafe { c.free_batch(&v).unwrap() };
    assert_eq!(c.outstanding(), 0);
    // The second batch comes from the magazines (rounds), not the slabs.
    v.clear();
    assert_eq!(c.alloc_batch(100, &mut v).unwrap(), 100);
    assert_eq!(c.stats().sca_sl_alloc, 100);
    // SAFETY: as above.
    unsafe { c.free_batch(&v).unwrap() };

    // A constructor failing mid-batch: the rest go back, counted in sl_alloc_fail.
    let n = StdArc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let f = Cache::builder("t.batch.ctor", 64)
        .mode(Mode::BATCH)
        .ctor(move |_| n2.fetch_add(1, Ordering::Relaxed) < 3)
        .build()
        .unwrap();
    let mut w = Vec::new();
    assert_eq!(f.alloc_batch(10, &mut w).unwrap(), 3);
    let st = f.stats();
    assert_eq!(
        st.sca_sl_alloc_fail, 7,
        "the failing one plus the 6 returned"
    );
    assert_eq!(st.sl_allocated, 3);
    // SAFETY: as above.
    unsafe { f.free_batch(&w).unwrap() };
}

struct SendPtr(NonNull<u8>);
// SAFETY: test helper moving object pointers to the thread that frees them.
unsafe impl Send for SendPtr {}

#[test]
fn cross_thread_free_and_thread_exit_returns_magazines() {
    let c = StdArc::new(Cache::new("t.xthread", 64).unwrap());
    let v: Vec<_> = (0..300).map(|_| SendPtr(c.alloc().unwrap())).collect();
    let c2 = c.clone();
    std::thread::spawn(move || {
        // Free on another thread than the allocating one.
        for p in v {
            free(&c2, p.0);
        }
        assert_eq!(c2.stats().cpu_caches, 2);
    })
    .join()
    .unwrap();
    let st = c.stats();
    assert_eq!(st.cpu_caches, 1, "the exited thread's cache is gone");
    assert_eq!(st.sca_depot_full, 4, "its full magazines went to the depot");
    assert_eq!(st.cpu_free, 300);
    assert_eq!(
        st.sl_allocated,
        300 - 300 % 62,
        "partial magazine freed to the slabs"
    );
    assert_eq!(c.outstanding(), 0);
    // The main thread now allocates the remote frees back from the depot.
    let before = c.stats().sca_sl_alloc;
    let w: Vec<_> = (0..200).map(|_| c.alloc().unwrap()).collect();
    assert_eq!(c.stats().sca_sl_alloc, before);
    for &p in &w {
        free(&c, p);
    }
}

#[test]
fn stale_thread_flushes_after_purge() {
    let c = StdArc::new(Cache::new("t.stale", 64).unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (tx2, rx2) = std::sync::mpsc::channel::<()>();
    let c2 = c.clone();
    let t = std::thread::spawn(move || {
        let v: Vec<_> = (0..10).map(|_| c2.alloc().unwrap()).collect();
        for &p in &v {
            free(&c2, p);
        }
        tx.send(()).unwrap();
        rx2.recv().unwrap();
        // Next operation after the purge: flush first, then serve.
        let p = c2.alloc().unwrap();
        free(&c2, p);
    });
    rx.recv().unwrap();
    assert_eq!(c.stats().sca_cpu_rounds, 10);
    c.purge();
    assert_eq!(
        c.stats().sl_allocated,
        10,
        "other thread's rounds not yet flushed"
    );
    tx2.send(()).unwrap();
    t.join().unwrap();
    let st = c.stats();
    assert_eq!(st.sca_cpu_rounds, 0);
    assert!(
        st.sca_sl_free >= 10,
        "stale rounds went back to the slab layer"
    );
}

#[test]
fn dump_and_mode_format() {
    let c = Cache::builder("t.dump", 64)
        .mode(Mode::AUDIT | Mode::DYNAMIC)
        .policy(Policy::Report)
        .build()
        .unwrap();
    let p = c.alloc().unwrap();
    let d = c.dump();
    let expect = format!(
        "Cache {:#x}\n  | Name         : skc.t.dump\n  | Mode         : 0x32<AUDIT,DYNAMIC,CLEARONFREE>\n  | Memory       : [256 in use] / [256 total]\n  | Transactions : [0 alloc failures]\n  |                [1 slab creates, 0 destroys]\n  |                [1 slab allocs,  0 frees]\n\n",
        c.skm()
    );
    assert_eq!(d, expect);
    assert!(skmem_dump_all().contains(&expect));
    c.try_free(p.as_ptr()).unwrap();
}

#[test]
fn prefork_guard_sees_consistent_caches() {
    let reg = crate::registry::Registry::new();
    let a = Cache::create(Cache::builder("t.fork.a", 64), Some(&reg)).unwrap();
    let b = Cache::create(
        Cache::builder("t.fork.b", 64).mode(Mode::NOMAGAZINES),
        Some(&reg),
    )
    .unwrap();
    let p = a.alloc().unwrap();
    let q = b.alloc().unwrap();
    {
        let g = reg.prefork();
        assert_eq!(g.len(), 2);
        g.check().unwrap();
        assert!(a.inner.depot.try_lock().is_none(), "held across fork");
        assert!(b.inner.slab.try_lock().is_none());
    }
    assert!(
        a.inner.depot.try_lock().is_some(),
        "released after postfork"
    );
    free(&a, p);
    free(&b, q);
}

#[test]
fn audit_fast_path_catches_write_after_free() {
    // Default options: the allocation is served by the thread-cache fast path.
    let c = audit("t.uaf.fast");
    let p = c.alloc().unwrap();
    c.try_free(p.as_ptr()).unwrap();
    // SAFETY: deliberate write to a freed (cached) object whose memory the cache still owns.
    unsafe { p.as_ptr().add(56).cast::<u64>().write(7) };
    let e = c.alloc().unwrap_err();
    let AllocError::Audit(r) = e else {
        panic!("{e}")
    };
    assert_eq!(
        r.kind,
        ReportKind::ModifiedAfterFree {
            offset: 56,
            found: 7,
            expected: FREE_PATTERN
        }
    );
    assert!(r.last_free.is_some());
    let q = c.alloc().unwrap();
    c.try_free(q.as_ptr()).unwrap();
    assert_eq!(c.outstanding(), 0);
    check(&c);
}

/// Random operation sequences against a model of the live set: every hand-out is distinct,
/// every misuse is reported and changes nothing, and the slab invariants hold throughout.
#[test]
fn random_operations_agree_with_a_model() {
    let ops = if cfg!(miri) { 400 } else { 20_000 };
    for seed in 1..=3u64 {
        let mut rnd = xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let caches = [
            Cache::builder("t.model.a", 40)
                .mode(Mode::AUDIT | Mode::DYNAMIC)
                .policy(Policy::Report)
                .slab_size(512)
                .magtypes(&[
                    MagType {
                        magsize: 2,
                        minbuf: 0,
                        maxbuf: 1024,
                    },
                    MagType {
                        magsize: 5,
                        minbuf: 0,
                        maxbuf: 0,
                    },
                ])
                .build()
                .unwrap(),
            Cache::builder("t.model.b", 200)
                .mode(Mode::AUDIT | Mode::BATCH)
                .policy(Policy::Report)
                .build()
                .unwrap(),
        ];
        let mut live: [Vec<NonNull<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut freed: [Vec<NonNull<u8>>; 2] = [Vec::new(), Vec::new()];
        for step in 0..ops {
            let k = rnd(2) as usize;
            let c = &caches[k];
            match rnd(100) {
                0..=39 => {
                    let p = c.alloc().unwrap();
                    assert!(
                        !live[k].contains(&p),
                        "seed {seed} step {step}: handed out twice"
                    );
                    freed[k].retain(|&q| q != p);
                    live[k].push(p);
                }
                40..=44 => {
                    let mut v = Vec::new();
                    let n = c.alloc_batch(rnd(8) as usize + 1, &mut v).unwrap();
                    assert_eq!(n, v.len());
                    for p in v {
                        assert!(!live[k].contains(&p));
                        freed[k].retain(|&q| q != p);
                        live[k].push(p);
                    }
                }
                80..=84 if !live[k].is_empty() => {
                    // A validating batch free of a few live objects, sometimes with a freed
                    // one among them: the objects before it are freed, it and the rest not.
                    let m = rnd(live[k].len().min(6) as u64) as usize + 1;
                    let mut batch: Vec<NonNull<u8>> = (0..m)
                        .map(|_| live[k].swap_remove(rnd(live[k].len() as u64) as usize))
                        .collect();
                    let bad = (!freed[k].is_empty() && rnd(3) == 0).then(|| {
                        let at = rnd(m as u64 + 1) as usize;
                        batch.insert(at, freed[k][rnd(freed[k].len() as u64) as usize]);
                        at
                    });
                    match (c.try_free_batch(&batch), bad) {
                        (Ok(()), None) => freed[k].extend(&batch),
                        (Err(FreeError::Audit(r)), Some(at)) => {
                            assert_eq!(r.obj, batch[at].as_ptr().addr(), "seed {seed}");
                            freed[k].extend(&batch[..at]);
                            live[k].extend(&batch[at + 1..]);
                        }
                        (got, bad) => panic!("seed {seed} step {step}: {got:?}, bad at {bad:?}"),
                    }
                }
                45..=79 if !live[k].is_empty() => {
                    let i = rnd(live[k].len() as u64) as usize;
                    let p = live[k].swap_remove(i);
                    c.try_free(p.as_ptr()).unwrap();
                    freed[k].push(p);
                }
                85..=89 if !freed[k].is_empty() => {
                    let i = rnd(freed[k].len() as u64) as usize;
                    let p = freed[k][i];
                    let e = c.try_free(p.as_ptr()).unwrap_err();
                    assert!(
                        matches!(e.name(), "double-free" | "invalid-free"),
                        "seed {seed} step {step}: {e}"
                    );
                }
                90..=91 if !live[1 - k].is_empty() => {
                    let p = live[1 - k][0];
                    let FreeError::Audit(r) = c.try_free(p.as_ptr()).unwrap_err() else {
                        panic!()
                    };
                    assert!(matches!(r.kind, ReportKind::InvalidFree(_)));
                }
                92 => c.purge(),
                93 => c.update(),
                94 => c.reap_now(rnd(2) == 0),
                95 => c.resize(),
                96 => c.reap(),
                _ => {}
            }
            if step % 97 == 0 {
                check(c);
                assert_eq!(
                    c.outstanding(),
                    live[k].len() as u64,
                    "seed {seed} step {step}"
                );
            }
        }
        for (k, c) in caches.into_iter().enumerate() {
            for p in live[k].drain(..) {
                c.try_free(p.as_ptr()).unwrap();
            }
            check(&c);
            assert!(c.take_reports().is_empty());
            c.destroy().unwrap();
        }
    }
}

/// The same model in production mode (no misuse): distinct hand-outs, accounting, slabs.
#[test]
fn random_production_operations_agree_with_a_model() {
    let ops = if cfg!(miri) { 400 } else { 20_000 };
    let mut rnd = xorshift(0x2545_f491_4f6c_dd1du64);
    let c = Cache::builder("t.model.prod", 24)
        .mode(Mode::DYNAMIC | Mode::BATCH)
        .slab_size(256)
        .magtypes(&[
            MagType {
                magsize: 3,
                minbuf: 0,
                maxbuf: 1024,
            },
            MagType {
                magsize: 7,
                minbuf: 0,
                maxbuf: 0,
            },
        ])
        .build()
        .unwrap();
    let mut live: Vec<NonNull<u8>> = Vec::new();
    for step in 0..ops {
        match rnd(100) {
            0..=44 => {
                let p = c.alloc().unwrap();
                assert!(!live.contains(&p), "step {step}: handed out twice");
                live.push(p);
            }
            45..=49 => {
                let mut v = Vec::new();
                c.alloc_batch(rnd(10) as usize + 1, &mut v).unwrap();
                for p in v {
                    assert!(!live.contains(&p));
                    live.push(p);
                }
            }
            90..=94 if !live.is_empty() => {
                let k = (rnd(12) as usize + 1).min(live.len());
                let batch: Vec<_> = live.drain(live.len() - k..).collect();
                // SAFETY: allocated from `c`, each freed once.
                unsafe { c.free_batch(&batch).unwrap() };
            }
            50..=89 if !live.is_empty() => {
                let i = rnd(live.len() as u64) as usize;
                free(&c, live.swap_remove(i));
            }
            95 => c.purge(),
            96 => c.update(),
            97 => c.reap_now(false),
            98 => c.resize(),
            _ => c.reap(),
        }
        if step % 89 == 0 {
            check(&c);
            assert_eq!(c.outstanding(), live.len() as u64, "step {step}");
        }
    }
    for p in live {
        free(&c, p);
    }
    c.destroy().unwrap();
}

/// `cp_alloc` / `cp_free` stay exact through the fast paths' packed counter word: without
/// purges or reaps, rounds only enter the magazine layer by `cp_free` and leave it by
/// `cp_alloc`, so their difference is exactly what the magazines hold.
#[test]
fn cpu_counters_match_the_rounds_held() {
    let ops = if cfg!(miri) { 300 } else { 20_000 };
    let mut rnd = xorshift(0x9e37_79b9_7f4a_7c15u64);
    let c = Cache::builder("t.counters", 32)
        .mode(Mode::BATCH)
        .magtypes(&[MagType {
            magsize: 5,
            minbuf: 0,
            maxbuf: 1024,
        }])
        .build()
        .unwrap();
    let mut live: Vec<NonNull<u8>> = Vec::new();
    let (mut allocs, mut frees) = (0u64, 0u64);
    for step in 0..ops {
        match rnd(20) {
            0..=7 => {
                live.push(c.alloc().unwrap());
                allocs += 1;
            }
            8 => {
                let mut v = Vec::new();
                allocs += c.alloc_batch(rnd(12) as usize + 1, &mut v).unwrap() as u64;
                live.extend(v);
            }
            9 if !live.is_empty() => {
                // A batch free of up to 9 objects (bulk pushes and magazine exchanges).
                let k = (rnd(9) as usize + 1).min(live.len());
                let batch: Vec<_> = live.drain(live.len() - k..).collect();
                // SAFETY: allocated above from `c`, each freed once.
                unsafe { c.free_batch(&batch).unwrap() };
                frees += k as u64;
            }
            _ if !live.is_empty() => {
                let i = rnd(live.len() as u64) as usize;
                free(&c, live.swap_remove(i));
                frees += 1;
            }
            _ => {}
        }
        if step % 97 == 0 {
            let st = c.stats();
            let held = st.sca_cpu_rounds + st.sca_cpu_prounds + 5 * st.sca_depot_full;
            assert_eq!(st.cpu_free - st.cpu_alloc, held, "step {step}: {st:?}");
            assert!(
                st.cpu_alloc <= allocs && st.cpu_free <= frees,
                "step {step}"
            );
        }
    }
    let st = c.stats();
    assert!(
        st.cpu_alloc > allocs / 2,
        "most allocations come from magazines: {st:?}"
    );
    for p in live {
        free(&c, p);
    }
    c.destroy().unwrap();
}

/// The thread-cache fast paths record the same thread numbers and per-thread sequence as the
/// full paths: one thread's alloc/free pairs carry its number with rising sequence numbers,
/// and a free on another thread carries that thread's number.
#[test]
fn fast_path_transactions_name_the_thread() {
    let c = StdArc::new(audit("t.txn.threads"));
    let p = c.alloc().unwrap(); // slab layer (full path)
    c.try_free(p.as_ptr()).unwrap(); // thread cache (fast path)
    let q = c.alloc().unwrap(); // magazine (fast path)
    assert_eq!(p, q);
    c.try_free(q.as_ptr()).unwrap();
    let r = second_free(&c, q);
    let (a, f) = (r.last_alloc.unwrap(), r.last_free.unwrap());
    assert!(a.thread != 0 && a.thread == f.thread, "{a:?} {f:?}");
    assert_eq!(
        f.seq,
        a.seq + 1,
        "free right after the alloc on this thread"
    );
    let me = a.thread;

    let o = c.alloc().unwrap();
    let addr = o.as_ptr().addr();
    let c2 = StdArc::clone(&c);
    // The other thread frees it (fast path, into its magazine) and frees it again while it
    // is still cached there, so the report carries both records. (`try_free` never
    // dereferences its argument: an address without provenance is enough.)
    let r = std::thread::spawn(move || {
        c2.try_free(std::ptr::without_provenance_mut(addr)).unwrap();
        match c2.try_free(std::ptr::without_provenance_mut(addr)) {
            Err(FreeError::Audit(r)) => r,
            other => panic!("{other:?}"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(r.kind, ReportKind::DoubleFree);
    let (a, f) = (r.last_alloc.unwrap(), r.last_free.unwrap());
    assert_eq!(a.thread, me);
    assert!(
        f.thread != 0 && f.thread != me,
        "freed on the other thread: {f:?}"
    );
}

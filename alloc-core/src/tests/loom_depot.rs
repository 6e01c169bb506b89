//! Loom: magazine/depot exchange between two threads with one-round magazines, and two
//! racing frees of the same object in audit mode.

use std::ptr::NonNull;

use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::{Cache, MagType, Mode, Policy};

/// Magazines of one round: every second operation visits the depot.
pub(super) const TINY: [MagType; 2] = [
    MagType {
        magsize: 1,
        minbuf: 0,
        maxbuf: 1024,
    },
    MagType {
        magsize: 2,
        minbuf: 0,
        maxbuf: 0,
    },
];

/// A cache of 8-byte objects, two per slab, with TINY magazines.
pub(super) fn tiny(name: &str, mode: Mode) -> Cache {
    Cache::builder(name, 8)
        .slab_size(16)
        .magtypes(&TINY)
        .mode(mode)
        .policy(Policy::Report)
        .clear_min(0)
        .build()
        .expect("config")
}

/// Records live objects; panics if one is handed out twice.
#[derive(Default)]
pub(super) struct Live(Mutex<Vec<usize>>);

impl Live {
    pub(super) fn add(&self, p: NonNull<u8>) {
        let mut v = self.0.lock().unwrap();
        assert!(!v.contains(&p.as_ptr().addr()), "object handed out twice");
        v.push(p.as_ptr().addr());
    }
    pub(super) fn remove(&self, p: NonNull<u8>) {
        self.0.lock().unwrap().retain(|&a| a != p.as_ptr().addr());
    }
}

/// Allocates two objects and frees them, recording them in `live`.
pub(super) fn work(c: &Cache, live: &Live) {
    let a = c.alloc().unwrap();
    live.add(a);
    let b = c.alloc().unwrap();
    live.add(b);
    live.remove(a);
    // SAFETY: allocated above from `c`, freed once.
    unsafe { c.free(a).unwrap() };
    live.remove(b);
    // SAFETY: as above.
    unsafe { c.free(b).unwrap() };
    // What thread exit does (loom's join returns before thread-locals are dropped).
    c.flush_thread_cache();
}

/// After every thread is done: purge and check the slab layer is whole and empty.
pub(super) fn settle(c: &Cache) {
    c.purge();
    crate::sync::lock(&c.inner.slab).check().unwrap();
    assert_eq!(c.outstanding(), 0);
    assert_eq!(c.stats().sl_allocated, 0, "every object back in its slab");
}

#[test]
fn magazine_depot_exchange() {
    loom::model(|| {
        let c = Arc::new(tiny("loom.depot", Mode::empty()));
        let live = Arc::new(Live::default());
        let (c2, l2) = (c.clone(), live.clone());
        let t = thread::spawn(move || work(&c2, &l2));
        work(&c, &live);
        t.join().unwrap();
        let st = c.stats();
        assert_eq!(st.cpu_free, 4);
        settle(&c);
    });
}

#[test]
fn racing_double_free_only_one_wins() {
    loom::model(|| {
        let c = Arc::new(tiny("loom.df", Mode::AUDIT));
        let p = c.alloc().unwrap().as_ptr().addr();
        let c2 = c.clone();
        // Addresses only: an AUDIT free never dereferences the caller's pointer.
        let t = thread::spawn(move || {
            let ok = c2.try_free(std::ptr::without_provenance_mut(p)).is_ok();
            c2.flush_thread_cache();
            ok
        });
        let mine = c.try_free(std::ptr::without_provenance_mut(p)).is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one of two racing frees succeeds");
        settle(&c);
    });
}

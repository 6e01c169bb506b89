//! Loom: the prefork lock order. A worker runs slab and depot slow paths while the forking
//! thread runs the prepare step; at the fork instant (all locks held) every cache must be
//! quiescent and consistent, and no interleaving may deadlock (loom reports deadlocks).

use loom::sync::Arc;
use loom::thread;

use super::loom_depot::{Live, tiny, work};
use crate::Mode;
use crate::cache::Cache;
use crate::registry::Registry;

#[test]
fn prefork_order_against_slow_paths() {
    loom::model(|| {
        let reg = Arc::new(Registry::new());
        let cfg = |name: &str, mode| {
            let c = tiny(name, mode);
            reg.register(&c.inner);
            c
        };
        let a = Arc::new(cfg("loom.fork.a", Mode::NOMAGAZINES));
        let b = Arc::new(cfg("loom.fork.b", Mode::empty()));
        let live = Arc::new(Live::default());
        let (a2, b2, l2) = (a.clone(), b.clone(), live.clone());
        let t = thread::spawn(move || {
            work(&a2, &l2);
            b2.purge();
        });
        {
            let g = reg.prefork();
            assert_eq!(g.len(), 2);
            g.check().unwrap();
        }
        // The "child" continues with both caches.
        work(&b, &live);
        t.join().unwrap();
        drop(reg);
        let _: &Cache = &a;
    });
}

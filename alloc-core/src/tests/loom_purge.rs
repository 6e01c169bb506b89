//! Loom: a purge racing frees (and allocations) on another thread.

use loom::sync::Arc;
use loom::thread;

use super::loom_depot::{Live, settle, tiny, work};
use crate::Mode;

#[test]
fn purge_racing_free() {
    loom::model(|| {
        let c = Arc::new(tiny("loom.purge", Mode::empty()));
        let live = Arc::new(Live::default());
        let (c2, l2) = (c.clone(), live.clone());
        let t = thread::spawn(move || work(&c2, &l2));
        c.purge();
        t.join().unwrap();
        assert_eq!(c.stats().sca_cpu_mag_purge, 1);
        settle(&c);
    });
}

//! Loom: a magazine resize racing allocations and frees on another thread.

use loom::sync::Arc;
use loom::thread;

use super::loom_depot::{Live, settle, tiny, work};
use crate::Mode;

#[test]
fn resize_racing_alloc_free() {
    loom::model(|| {
        let c = Arc::new(tiny("loom.resize", Mode::DYNAMIC));
        let live = Arc::new(Live::default());
        let (c2, l2) = (c.clone(), live.clone());
        let t = thread::spawn(move || work(&c2, &l2));
        c.resize();
        t.join().unwrap();
        let st = c.stats();
        assert_eq!((st.sca_cpu_mag_size, st.sca_cpu_mag_resize), (2, 1));
        // Whatever the interleaving, a thread cache never holds a magazine of the old size
        // once it has synchronised: work again and settle.
        work(&c, &live);
        settle(&c);
    });
}

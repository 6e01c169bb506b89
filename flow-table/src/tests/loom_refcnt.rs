//! Flow entry retain/release racing teardown, and the split release behind
//! `skmem-slab-double-free`.

use super::run_model;
use crate::entry::FlowEntryRef;
use crate::fault::FaultSet;
use crate::flags::FLOWENTF_INITED;
use crate::log::{Clock, LogSink};
use crate::manager::{FlowManager, FlowManagerConfig, FlowRequest, OpenResult};
use crate::owner::{FlowOwner, OpenMode};
use crate::sync::{Arc, thread};

fn setup() -> (Arc<FlowManager>, Arc<FlowOwner>, FlowEntryRef) {
    let log = Arc::new(LogSink::disabled(Arc::new(Clock::new(0))));
    let m = Arc::new(FlowManager::new(
        FlowManagerConfig {
            capacity: 6,
            owner_buckets: 1,
            flow_limit: 4,
            ..FlowManagerConfig::default()
        },
        log,
    ));
    let o = m.owner(1, "p");
    let req = FlowRequest::tcp(
        1,
        "10.0.0.1".parse().unwrap(),
        1000,
        "10.0.0.2".parse().unwrap(),
        80,
    );
    let Ok(OpenResult::Opened(fe)) = m.open(&o, &req, OpenMode::NonBlocking) else {
        panic!("open failed");
    };
    (m, o, fe)
}

#[test]
fn lookup_racing_destroy_never_sees_a_freed_entry() {
    run_model("lookup_racing_destroy", || {
        let (m, o, fe) = setup();
        let key = *fe.key();
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || {
            if let Some(hit) = m2.find_by_key(&key) {
                // A retained entry is never freed under us.
                assert_ne!(hit.flags() & FLOWENTF_INITED, 0);
                assert!(hit.refcnt() >= 1);
            }
        });
        m.destroy(&o, fe, true);
        t.join().unwrap();
        assert!(m.panic_record().is_none());
        assert_eq!(m.stats().cache.in_use, 0);
    });
}

#[test]
fn divert_release_racing_teardown_frees_once() {
    run_model("divert_release_racing_teardown", || {
        let (m, o, fe) = setup();
        let divert_ref = fe.clone();
        let t = thread::spawn(move || drop(divert_ref));
        m.destroy(&o, fe, true);
        t.join().unwrap();
        assert!(m.panic_record().is_none());
        assert_eq!(m.stats().cache.in_use, 0);
    });
}

/// With the fault's split release (decrement, then a separate re-read), some interleaving
/// frees the entry twice and the allocator reports it.
#[test]
#[allow(clippy::disallowed_types)] // a cross-iteration tally outside the model
fn split_release_racing_teardown_double_frees() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DOUBLE_FREES: AtomicUsize = AtomicUsize::new(0);
    run_model("split_release_racing_teardown", || {
        let (m, o, fe) = setup();
        let divert_ref = fe.clone();
        let t = thread::spawn(move || divert_ref.release_split().finish());
        m.destroy(&o, fe, true);
        t.join().unwrap();
        if let Some(p) = m.panic_record() {
            assert!(p.message.starts_with(
                "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x"
            ));
            DOUBLE_FREES.fetch_add(1, Ordering::Relaxed);
        }
    });
    assert!(DOUBLE_FREES.load(Ordering::Relaxed) > 0);
    let _ = FaultSet::none();
}

//! Flow divert group teardown racing a lookup, and pcb references across failover.

use super::run_model;
use crate::divert::{ConnectOutcome, FlowDivert, GROUP_FLAG_DEFUNCT};
use crate::fault::FaultSet;
use crate::log::{Clock, LogSink};
use crate::sync::{Arc, thread};

fn divert() -> Arc<FlowDivert> {
    Arc::new(FlowDivert::new(
        Arc::new(LogSink::disabled(Arc::new(Clock::new(0)))),
        FaultSet::none(),
        1,
    ))
}

#[test]
fn group_teardown_racing_lookup() {
    run_model("group_teardown_racing_lookup", || {
        let d = divert();
        let u = d.kctl_setup(0, true, 1).unwrap();
        let probe = d.group_arc(u).unwrap();
        let pcb = d.pcb_create(u, 0, 0, None);
        d.pcb_insert(&pcb, u).unwrap();
        let d2 = Arc::clone(&d);
        let t = thread::spawn(move || {
            if let Ok(g) = d2.group_lookup(u, None) {
                // A retained group is never destroyed under us.
                assert!(!g.is_destroyed());
                let _ = g.flags() & GROUP_FLAG_DEFUNCT;
            }
        });
        d.kctl_disconnect(u, |_| {}).unwrap();
        t.join().unwrap();
        assert!(probe.is_destroyed());
        assert_eq!(probe.ref_count(), 0);
        d.detach(&pcb);
        assert_eq!(pcb.destroy_count(), 1);
    });
}

#[test]
fn failover_racing_close_destroys_pcb_once() {
    run_model("failover_racing_close", || {
        let d = divert();
        let u1 = d.kctl_setup(0, true, 1).unwrap();
        let u2 = d.kctl_setup(0, true, 1).unwrap();
        let pcb = d.pcb_create(u1, 1 << (u2 - 1), 0, None);
        d.pcb_insert(&pcb, u1).unwrap();
        let d2 = Arc::clone(&d);
        // The input path found the pcb (transient reference) before the race.
        let p2 = d.pcb_lookup(u1, pcb.hash()).unwrap();
        let t = thread::spawn(move || {
            let out = d2.handle_connect_result(&p2, 61);
            d2.pcb_release(&p2);
            assert!(matches!(
                out,
                ConnectOutcome::Moved { .. } | ConnectOutcome::Disabled
            ));
        });
        d.detach(&pcb);
        t.join().unwrap();
        d.kctl_disconnect(u2, |_| {}).unwrap();
        assert_eq!(pcb.destroy_count(), 1);
        assert_eq!(pcb.ref_count(), 0);
    });
}

//! Owner flow-limit waiters: a close must admit a waiting open (`nw-connection-enomem`).

// Cross-iteration tallies live outside the model, so they are real std atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::AtomicUsize;

use super::run_model;
use crate::fault::{Fault, FaultSet};
use crate::owner::{Admission, FlowOwner, OpenMode};
use crate::sync::{Arc, AtomicBool, Ordering, thread};

/// Thread 1 queues an open behind the limit and waits for it; the main thread closes its
/// flow. Returns how many executions ended with the waiter still not admitted after the
/// close completed (a lost wakeup).
fn model(faults: FaultSet, lost: &'static std::sync::atomic::AtomicUsize) -> usize {
    use std::sync::atomic::Ordering as O;
    run_model("owner_limit_waiter", move || {
        let o = Arc::new(FlowOwner::new(811, "proxy", 1, 8));
        assert_eq!(o.admit(OpenMode::Queue).unwrap(), Admission::Admitted);
        let closed = Arc::new(AtomicBool::new(false));
        let (o2, c2) = (Arc::clone(&o), Arc::clone(&closed));
        let t = thread::spawn(move || match o2.admit(OpenMode::Queue).unwrap() {
            Admission::Admitted => true,
            Admission::Waiting(ticket) => loop {
                let done = c2.load(Ordering::SeqCst);
                if o2.poll(ticket) {
                    break true;
                }
                if done {
                    // The close finished and we are still waiting: nobody will wake us.
                    break false;
                }
                loom::thread::yield_now();
            },
        });
        o.release_slot(faults);
        closed.store(true, Ordering::SeqCst);
        if !t.join().unwrap() {
            lost.fetch_add(1, O::Relaxed);
        }
    });
    lost.load(O::Relaxed)
}

#[test]
fn close_admits_a_waiting_open() {
    assert_eq!(
        model(FaultSet::none(), {
            static T: AtomicUsize = AtomicUsize::new(0);
            &T
        }),
        0
    );
}

#[test]
fn enomem_fault_is_a_lost_wakeup() {
    assert!(
        model(FaultSet::of(&[Fault::NwConnectionEnomem]), {
            static T: AtomicUsize = AtomicUsize::new(0);
            &T
        }) > 0
    );
}

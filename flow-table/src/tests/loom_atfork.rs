//! `fork()` racing path evaluation (`atfork-nw-path-prepare-deadlock`).
//!
//! Each side takes its first lock, then the second; before blocking on the second it
//! checks a wait-for graph, so a cycle is detected instead of hanging (loom keeps
//! exploring).

// Cross-iteration tallies live outside the model, so they are real std atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::AtomicUsize;

use super::run_model;
use crate::atfork::{PathLock, PathLocks};
use crate::fault::{Fault, FaultSet};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, thread};

#[derive(Default)]
struct Registry {
    holder: [Option<usize>; 2],
    waiting: [Option<PathLock>; 2],
}

struct Shared {
    locks: PathLocks,
    /// Who holds and who waits for what, updated atomically: a wait-for graph.
    reg: Mutex<Registry>,
    deadlock: AtomicBool,
}

fn idx(l: PathLock) -> usize {
    match l {
        PathLock::Evaluator => 0,
        PathLock::NecpFd => 1,
    }
}

fn take(sh: &Shared, me: usize, order: [PathLock; 2]) {
    let other = 1 - me;
    let _first = sh.locks.lock_of(order[0]).lock();
    sh.reg.lock().holder[idx(order[0])] = Some(me);
    {
        let mut r = sh.reg.lock();
        if r.holder[idx(order[1])] == Some(other) && r.waiting[other] == Some(order[0]) {
            // The other thread holds our next lock and waits for the one we hold: a cycle.
            sh.deadlock.store(true, Ordering::SeqCst);
            r.holder[idx(order[0])] = None;
            return;
        }
        r.waiting[me] = Some(order[1]);
    }
    let mut second = sh.locks.lock_of(order[1]).lock();
    *second += 1;
    let mut r = sh.reg.lock();
    r.waiting[me] = None;
    r.holder = [None, None];
}

fn model(faults: FaultSet, seen: &'static std::sync::atomic::AtomicUsize) -> usize {
    use std::sync::atomic::Ordering as O;
    run_model("fork_racing_evaluate", move || {
        let sh = Arc::new(Shared {
            locks: PathLocks::new(),
            reg: Mutex::new(Registry::default()),
            deadlock: AtomicBool::new(false),
        });
        let sh2 = Arc::clone(&sh);
        // The evaluator thread uses the documented order.
        let t = thread::spawn(move || take(&sh2, 1, PathLock::ORDER));
        // The forking thread runs the prepare handler.
        take(&sh, 0, PathLocks::prepare_order(faults));
        t.join().unwrap();
        if sh.deadlock.load(Ordering::SeqCst) {
            seen.fetch_add(1, O::Relaxed);
        }
    });
    seen.load(O::Relaxed)
}

#[test]
fn fork_with_consistent_lock_order_never_deadlocks() {
    assert_eq!(
        model(FaultSet::none(), {
            static T: AtomicUsize = AtomicUsize::new(0);
            &T
        }),
        0
    );
}

#[test]
fn reversed_prepare_order_deadlocks() {
    assert!(
        model(FaultSet::of(&[Fault::AtforkNwPathPrepareDeadlock]), {
            static T: AtomicUsize = AtomicUsize::new(0);
            &T
        }) > 0
    );
}

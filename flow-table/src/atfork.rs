//! A model of the Network framework's fork handlers (`nw_path_prepare_fork`) and the path
//! evaluator, with the lock order that decides whether `fork()` can deadlock.
//!
//! Every path takes the evaluator lock, then the shared NECP fd lock. The
//! `atfork-nw-path-prepare-deadlock` fault makes the prepare handler take them in the
//! reverse order, so a fork that races a path evaluation on another thread deadlocks in
//! `libSystem_atfork_prepare -> nw_path_prepare_fork -> _os_unfair_lock_lock_slow`.

use crate::fault::{Fault, FaultSet};
use crate::sync::{Mutex, MutexGuard};

/// One of the two locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLock {
    /// The path evaluator's lock.
    Evaluator,
    /// The shared NECP fd lock.
    NecpFd,
}

impl PathLock {
    /// The documented order every path uses.
    pub const ORDER: [PathLock; 2] = [PathLock::Evaluator, PathLock::NecpFd];
}

/// The two locks involved.
#[derive(Debug, Default)]
pub struct PathLocks {
    /// The path evaluator's lock (taken first everywhere else).
    pub(crate) evaluator: Mutex<u64>,
    /// The shared NECP fd lock (taken second).
    pub(crate) necp_fd: Mutex<u64>,
}

impl PathLocks {
    /// New, unlocked.
    pub fn new() -> Self {
        PathLocks {
            evaluator: Mutex::new(0),
            necp_fd: Mutex::new(0),
        }
    }

    /// Number of completed evaluations.
    pub fn evaluations(&self) -> u64 {
        *self.evaluator.lock()
    }

    /// `fork()` with the prepare handler, then the parent handler releasing the locks.
    pub fn fork(&self, faults: FaultSet) {
        let held = self.prepare_fork(faults);
        drop(held);
    }

    /// `nw_path_evaluator_evaluate`: evaluator lock, then the NECP fd lock.
    pub fn evaluate(&self) {
        let mut e = self.evaluator.lock();
        let mut n = self.necp_fd.lock();
        *e += 1;
        *n += 1;
    }

    /// The order in which `nw_path_prepare_fork` takes the locks (reversed under the fault).
    pub fn prepare_order(faults: FaultSet) -> [PathLock; 2] {
        if faults.has(Fault::AtforkNwPathPrepareDeadlock) {
            [PathLock::NecpFd, PathLock::Evaluator]
        } else {
            PathLock::ORDER
        }
    }

    pub(crate) fn lock_of(&self, which: PathLock) -> &Mutex<u64> {
        match which {
            PathLock::Evaluator => &self.evaluator,
            PathLock::NecpFd => &self.necp_fd,
        }
    }

    /// `libSystem_atfork_prepare` → `nw_path_prepare_fork`: takes both locks for the fork
    /// (in the wrong order under the fault) and returns them held.
    pub(crate) fn prepare_fork(
        &self,
        faults: FaultSet,
    ) -> (MutexGuard<'_, u64>, MutexGuard<'_, u64>) {
        let [a, b] = Self::prepare_order(faults);
        let first = self.lock_of(a).lock();
        let second = self.lock_of(b).lock();
        (first, second)
    }
}

/// How a simulated fork that races a path evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkOutcome {
    /// The fork went through.
    Completed,
    /// Both threads wait on each other: the forking thread holds the NECP fd lock and
    /// waits for the evaluator lock, the evaluator thread the reverse.
    Deadlock,
}

/// Replays the racy schedule deterministically with try-locks: the evaluator thread has
/// taken its first lock when the forking thread enters the prepare handler.
pub fn simulate_fork_race(locks: &PathLocks, faults: FaultSet) -> ForkOutcome {
    // Evaluator thread: holds the evaluator lock, about to take the NECP fd lock.
    let eval_first = locks.evaluator.lock();
    if faults.has(Fault::AtforkNwPathPrepareDeadlock) {
        // Forking thread: NECP fd lock first (succeeds) …
        let Some(fork_first) = locks.necp_fd.try_lock() else {
            return ForkOutcome::Completed;
        };
        // … then the evaluator lock: held by the evaluator thread, which in turn now
        // needs the NECP fd lock the forking thread holds.
        let fork_blocked = locks.evaluator.try_lock().is_none();
        let eval_blocked = locks.necp_fd.try_lock().is_none();
        drop(fork_first);
        drop(eval_first);
        if fork_blocked && eval_blocked {
            return ForkOutcome::Deadlock;
        }
        return ForkOutcome::Completed;
    }
    // Correct order: the forking thread waits for the evaluator lock; the evaluator
    // thread can still take the NECP fd lock, finishes, and lets the fork proceed.
    let fork_waits = locks.evaluator.try_lock().is_none();
    let eval_second = locks.necp_fd.try_lock();
    let eval_progresses = eval_second.is_some();
    drop(eval_second);
    drop(eval_first);
    let (e, n) = locks.prepare_fork(faults);
    drop((e, n));
    if fork_waits && !eval_progresses {
        ForkOutcome::Deadlock
    } else {
        ForkOutcome::Completed
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn race_outcome_depends_on_lock_order() {
        let l = PathLocks::new();
        assert_eq!(
            simulate_fork_race(&l, FaultSet::none()),
            ForkOutcome::Completed
        );
        assert_eq!(
            simulate_fork_race(&l, FaultSet::of(&[Fault::AtforkNwPathPrepareDeadlock])),
            ForkOutcome::Deadlock
        );
        // The locks are free again afterwards.
        l.evaluate();
        assert_eq!(*l.evaluator.lock(), 1);
    }
}

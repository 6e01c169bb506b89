//! Flow owners (`struct flow_owner`): per-process flow trees, the per-owner flow limit with
//! blocking and non-blocking opens, and a per-owner descriptor table.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::entry::FlowEntryRef;
use crate::error::FlowError;
use crate::fault::{Fault, FaultSet};
use crate::sync::{Condvar, Mutex, MutexGuard};

/// A ticket for an open that is waiting for the owner's flow limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitTicket(pub u64);

/// How an open behaves at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Fail with `ENOMEM` at once.
    NonBlocking,
    /// Block the calling thread until a flow closes.
    Blocking,
    /// Queue and return a [`WaitTicket`] (event-driven callers such as the simulator).
    Queue,
}

#[derive(Debug, Default)]
pub(crate) struct OwnerState {
    /// `fo_flow_entry_id_head`: the owner's flows by UUID (the "id tree" reference).
    pub(crate) flows: BTreeMap<u128, FlowEntryRef>,
    /// Open slots in use (flows plus admitted waiters not yet opened).
    pub(crate) in_use: usize,
    waiters: VecDeque<WaitTicket>,
    admitted: BTreeSet<WaitTicket>,
    next_ticket: u64,
}

/// A flow owner: one per (pid, context) in an owner bucket.
#[derive(Debug)]
pub struct FlowOwner {
    pid: u32,
    name: String,
    limit: usize,
    state: Mutex<OwnerState>,
    cv: Condvar,
    fds: FdTable,
}

/// Result of asking for an open slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is reserved for the caller.
    Admitted,
    /// Queued (only in [`OpenMode::Queue`]).
    Waiting(WaitTicket),
}

impl FlowOwner {
    /// A new owner with a flow limit and a descriptor limit.
    pub fn new(pid: u32, name: &str, flow_limit: usize, fd_limit: usize) -> Self {
        FlowOwner {
            pid,
            name: name.into(),
            limit: flow_limit,
            state: Mutex::new(OwnerState::default()),
            cv: Condvar::new(),
            fds: FdTable::new(fd_limit),
        }
    }

    /// `fo_pid`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `fo_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The per-owner flow limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The owner's descriptor table.
    pub fn fds(&self) -> &FdTable {
        &self.fds
    }

    /// Number of flows registered with this owner.
    pub fn flow_count(&self) -> usize {
        self.state.lock().flows.len()
    }

    /// Number of opens waiting for the limit.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiters.len()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, OwnerState> {
        self.state.lock()
    }

    /// Reserves an open slot according to `mode`.
    pub fn admit(&self, mode: OpenMode) -> Result<Admission, FlowError> {
        let mut st = self.state.lock();
        if st.in_use < self.limit && st.waiters.is_empty() {
            st.in_use += 1;
            return Ok(Admission::Admitted);
        }
        match mode {
            OpenMode::NonBlocking => Err(FlowError::OwnerLimit {
                process: self.name.clone(),
                pid: self.pid,
                limit: self.limit,
            }),
            OpenMode::Queue => {
                let t = WaitTicket(st.next_ticket);
                st.next_ticket += 1;
                st.waiters.push_back(t);
                Ok(Admission::Waiting(t))
            }
            OpenMode::Blocking => {
                let t = WaitTicket(st.next_ticket);
                st.next_ticket += 1;
                st.waiters.push_back(t);
                while !st.admitted.remove(&t) {
                    st = self.cv.wait(st);
                }
                Ok(Admission::Admitted)
            }
        }
    }

    /// Withdraws a queued open (`nw_connection_cancel` while waiting). If it had already
    /// been admitted its slot is given back.
    pub fn cancel(&self, t: WaitTicket, faults: FaultSet) {
        let mut st = self.state.lock();
        if let Some(pos) = st.waiters.iter().position(|w| *w == t) {
            st.waiters.remove(pos);
            return;
        }
        let was_admitted = st.admitted.remove(&t);
        drop(st);
        if was_admitted {
            self.release_slot(faults);
        }
    }

    /// Whether a queued ticket has been admitted; if so the slot is now the caller's.
    pub fn poll(&self, t: WaitTicket) -> bool {
        self.state.lock().admitted.remove(&t)
    }

    /// Gives back a slot reserved by [`FlowOwner::admit`] (the open failed or closed).
    /// Unless the `nw-connection-enomem` fault is on, this admits the longest waiter and
    /// wakes blocked openers.
    pub fn release_slot(&self, faults: FaultSet) {
        let mut st = self.state.lock();
        st.in_use = st.in_use.saturating_sub(1);
        if faults.has(Fault::NwConnectionEnomem) {
            // The field bug: the close path forgets the wakeup.
            return;
        }
        self.admit_waiters(&mut st);
        drop(st);
        self.cv.notify_all();
    }

    fn admit_waiters(&self, st: &mut OwnerState) {
        while st.in_use < self.limit {
            let Some(t) = st.waiters.pop_front() else {
                break;
            };
            st.in_use += 1;
            st.admitted.insert(t);
        }
    }
}

/// A per-owner descriptor table: the lowest free descriptor from 3 upward, `EMFILE` at
/// the limit (`RLIMIT_NOFILE`).
#[derive(Debug)]
pub struct FdTable {
    limit: usize,
    open: Mutex<BTreeMap<i32, String>>,
}

impl FdTable {
    /// A table that holds at most `limit` descriptors (0, 1 and 2 count as open).
    pub fn new(limit: usize) -> Self {
        let mut m = BTreeMap::new();
        for (fd, what) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
            m.insert(fd, what.to_string());
        }
        FdTable {
            limit,
            open: Mutex::new(m),
        }
    }

    /// `falloc`: the lowest free descriptor, or `EMFILE`.
    pub fn open(&self, what: &str) -> Result<i32, FlowError> {
        let mut g = self.open.lock();
        if g.len() >= self.limit {
            return Err(FlowError::TooManyOpenFiles);
        }
        let mut fd = 0;
        while g.contains_key(&fd) {
            fd += 1;
        }
        g.insert(fd, what.to_string());
        Ok(fd)
    }

    /// `close`.
    pub fn close(&self, fd: i32) -> Result<(), FlowError> {
        self.open
            .lock()
            .remove(&fd)
            .map(|_| ())
            .ok_or(FlowError::BadDescriptor)
    }

    /// Number of open descriptors (including 0–2).
    pub fn count(&self) -> usize {
        self.open.lock().len()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Open descriptors described as `what`.
    pub fn count_of(&self, what: &str) -> usize {
        self.open.lock().values().filter(|w| *w == what).count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fd_table_lowest_free_and_emfile() {
        let t = FdTable::new(6);
        assert_eq!(t.open("a").unwrap(), 3);
        assert_eq!(t.open("b").unwrap(), 4);
        t.close(3).unwrap();
        assert_eq!(t.open("c").unwrap(), 3);
        assert_eq!(t.open("d").unwrap(), 5);
        assert_eq!(t.open("e").unwrap_err(), FlowError::TooManyOpenFiles);
        assert_eq!(t.close(9).unwrap_err(), FlowError::BadDescriptor);
        assert_eq!(t.count_of("b"), 1);
    }

    #[test]
    fn queued_waiter_is_admitted_on_close() {
        let o = FlowOwner::new(811, "proxy", 1, 64);
        assert_eq!(o.admit(OpenMode::Queue).unwrap(), Admission::Admitted);
        assert!(matches!(
            o.admit(OpenMode::NonBlocking),
            Err(FlowError::OwnerLimit { limit: 1, .. })
        ));
        let Admission::Waiting(t) = o.admit(OpenMode::Queue).unwrap() else {
            panic!("expected to wait");
        };
        assert!(!o.poll(t));
        o.release_slot(FaultSet::none());
        assert!(o.poll(t));
        assert_eq!(o.waiting(), 0);
    }

    #[test]
    fn enomem_fault_never_wakes() {
        let o = FlowOwner::new(811, "proxy", 1, 64);
        o.admit(OpenMode::Queue).unwrap();
        let Admission::Waiting(t) = o.admit(OpenMode::Queue).unwrap() else {
            panic!("expected to wait");
        };
        o.release_slot(FaultSet::of(&[Fault::NwConnectionEnomem]));
        assert!(!o.poll(t));
        assert_eq!(o.waiting(), 1);
    }

    #[test]
    fn blocking_open_wakes_when_a_flow_closes() {
        let o = std::sync::Arc::new(FlowOwner::new(1, "p", 1, 8));
        o.admit(OpenMode::Blocking).unwrap();
        let o2 = std::sync::Arc::clone(&o);
        let h = std::thread::spawn(move || o2.admit(OpenMode::Blocking).unwrap());
        while o.waiting() == 0 {
            std::thread::yield_now();
        }
        o.release_slot(FaultSet::none());
        assert_eq!(h.join().unwrap(), Admission::Admitted);
    }
}

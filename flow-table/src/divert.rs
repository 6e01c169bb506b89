//! Flow divert (bsd/netinet/flow_divert.c): control units and groups, pcbs with their
//! three kinds of reference, group lookup/attach/detach, the connect-result failover path
//! and its log messages.
//!
//! Log lines go to the kernel's unified log as `FDLOG` writes them: `(<hash>): message`,
//! with hash 0 (`nil_pcb`) for global messages.

use std::collections::BTreeMap;

use crate::entry::FlowEntryRef;
use crate::fault::{Fault, FaultSet};
use crate::log::{LogSink, LogSource, LogType};
use crate::sync::{Arc, AtomicBool, AtomicU32, Mutex, Ordering, RwLock};

/// `GROUP_COUNT_MAX`: out-of-process units are 1 ..= 30.
pub const GROUP_COUNT_MAX: u32 = 31;
/// `FLOW_DIVERT_IN_PROCESS_UNIT_MIN`.
pub const FLOW_DIVERT_IN_PROCESS_UNIT_MIN: u32 = 0xFFFF;
/// `FLOW_DIVERT_IN_PROCESS_UNIT`: the sentinel asking for the next free in-process unit.
pub const FLOW_DIVERT_IN_PROCESS_UNIT: u32 = 0x0FFF_FFFF;
/// `FLOW_DIVERT_ORDER_LAST`.
pub const FLOW_DIVERT_ORDER_LAST: i32 = i32::MAX;
/// `FLOW_DIVERT_GROUP_FLAG_NO_APP_MAP`.
pub const GROUP_FLAG_NO_APP_MAP: u32 = 1;
/// `FLOW_DIVERT_GROUP_FLAG_DEFUNCT`.
pub const GROUP_FLAG_DEFUNCT: u32 = 2;
/// `FLOW_DIVERT_FLOW_FLAGS_CONNECT_STARTED`.
pub const FLOW_FLAG_CONNECT_STARTED: u32 = 0x1;

/// Flow divert errors (errno in [`DivertError::errno`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivertError {
    /// Out-of-process units need root (`EPERM`).
    #[error("control units 1-30 require root (EPERM)")]
    NotRoot,
    /// No free unit (`ENOBUFS`).
    #[error("no free control unit (ENOBUFS)")]
    NoFreeUnit,
    /// Invalid unit (`EINVAL`).
    #[error("invalid control unit {0} (EINVAL)")]
    InvalidUnit(u32),
    /// No such group / no valid unit (`ENOENT`).
    #[error("no such group (ENOENT)")]
    NoGroup,
    /// The group is defunct (`ENOENT`).
    #[error("Group {0} is defunct, cannot insert")]
    Defunct(u32),
    /// A pcb with that hash exists (`EEXIST`).
    #[error("Group {0} already contains a PCB with hash {1}")]
    Duplicate(u32, u32),
    /// Mismatched in-process pid (`EPERM`).
    #[error("mismatched PID ({0} != {1})")]
    Pid(u32, u32),
    /// The next unit is the current one (`EALREADY`).
    #[error("Next control unit is the same as the current control unit")]
    SameUnit,
}

impl DivertError {
    /// The errno.
    pub fn errno(&self) -> i32 {
        match self {
            DivertError::NotRoot | DivertError::Pid(..) => 1,
            DivertError::NoFreeUnit => 55,
            DivertError::InvalidUnit(_) => 22,
            DivertError::NoGroup | DivertError::Defunct(_) => 2,
            DivertError::Duplicate(..) => 17,
            DivertError::SameUnit => 37,
        }
    }
}

/// `struct flow_divert_group`.
#[derive(Debug)]
pub struct DivertGroup {
    ctl_unit: u32,
    /// `ref_count` (FDGRP_RETAIN / FDGRP_RELEASE).
    ref_count: AtomicU32,
    flags: AtomicU32,
    order: Mutex<i32>,
    in_process_pid: Option<u32>,
    pcbs: RwLock<BTreeMap<u32, Arc<DivertPcb>>>,
    destroyed: AtomicBool,
}

impl DivertGroup {
    fn new(ctl_unit: u32, in_process_pid: Option<u32>) -> Self {
        DivertGroup {
            ctl_unit,
            ref_count: AtomicU32::new(1),
            flags: AtomicU32::new(0),
            order: Mutex::new(FLOW_DIVERT_ORDER_LAST),
            in_process_pid,
            pcbs: RwLock::new(BTreeMap::new()),
            destroyed: AtomicBool::new(false),
        }
    }

    /// `ctl_unit`.
    pub fn ctl_unit(&self) -> u32 {
        self.ctl_unit
    }

    /// `ref_count`.
    pub fn ref_count(&self) -> u32 {
        self.ref_count.load(Ordering::Acquire)
    }

    /// `flags`.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// `order`.
    pub fn order(&self) -> i32 {
        *self.order.lock()
    }

    /// Whether `flow_divert_group_destroy` ran.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Number of pcbs in the group's tree.
    pub fn pcb_count(&self) -> usize {
        self.pcbs.read().len()
    }
}

/// A retained group reference (`FDGRP_RETAIN`); dropping it is `FDGRP_RELEASE`, which
/// destroys the group on 1 → 0.
#[derive(Debug)]
pub struct GroupRef(Arc<DivertGroup>);

impl GroupRef {
    fn retain(g: &Arc<DivertGroup>) -> GroupRef {
        g.ref_count.fetch_add(1, Ordering::AcqRel);
        GroupRef(Arc::clone(g))
    }
}

impl std::ops::Deref for GroupRef {
    type Target = DivertGroup;

    fn deref(&self) -> &DivertGroup {
        &self.0
    }
}

impl Drop for GroupRef {
    fn drop(&mut self) {
        if self.0.ref_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // flow_divert_group_destroy: the key, trie and group are freed.
            self.0.destroyed.store(true, Ordering::Release);
        }
    }
}

/// Which reference a pcb reference is (for diagnostics; the count is shared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcbRefKind {
    /// The socket's (`flow_divert_pcb_create` … `detach`/`disable`).
    Socket,
    /// The group tree's (`pcb_insert` … `pcb_remove`).
    Group,
    /// Transient (lookup, input path, close/shutdown, temporary lists).
    Transient,
}

/// `struct flow_divert_pcb`.
#[derive(Debug)]
pub struct DivertPcb {
    hash: u32,
    /// `ref_count`: FDRETAIN / FDRELEASE, no underflow check (as in the kernel).
    ref_count: AtomicU32,
    /// The count split by kind (socket, group, transient), for diagnostics.
    by_kind: [AtomicU32; 3],
    flags: AtomicU32,
    state: Mutex<PcbState>,
    destroyed: AtomicU32,
}

#[derive(Debug)]
struct PcbState {
    group: Option<GroupRef>,
    control_group_unit: u32,
    aggregate_unit: u32,
    policy_control_unit: u32,
    socket_attached: bool,
    diverted: bool,
    /// The socket's flow (a flow entry reference the socket holds while diverted).
    flow: Option<FlowEntryRef>,
    app_tx: u64,
    tunnel_tx: u64,
    tunnel_rx: u64,
}

impl DivertPcb {
    /// `hash` (the connection id printed in every FDLOG line).
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// `ref_count`.
    pub fn ref_count(&self) -> u32 {
        self.ref_count.load(Ordering::Acquire)
    }

    /// References of one kind currently held (wraps below 0 on an over-release, as the
    /// kernel's unchecked count would go negative).
    pub fn refs(&self, kind: PcbRefKind) -> u32 {
        self.by_kind[kind as usize].load(Ordering::Acquire)
    }

    /// Times `flow_divert_pcb_destroy` ran (more than 1 is a use-after-free).
    pub fn destroy_count(&self) -> u32 {
        self.destroyed.load(Ordering::Acquire)
    }

    /// The unit of the group it is in, 0 if none.
    pub fn control_group_unit(&self) -> u32 {
        self.state.lock().control_group_unit
    }

    /// Whether the socket is still diverted (`SOF_FLOW_DIVERT`).
    pub fn is_diverted(&self) -> bool {
        self.state.lock().diverted
    }

    /// Takes the socket's flow reference out of the pcb.
    pub fn take_flow(&self) -> Option<FlowEntryRef> {
        self.state.lock().flow.take()
    }

    /// Sets the socket's flow reference.
    pub fn set_flow(&self, fe: FlowEntryRef) {
        self.state.lock().flow = Some(fe);
    }
}

/// What the connect-result handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The provider accepted.
    Connected,
    /// Failed over to another unit.
    Moved {
        /// From.
        from: u32,
        /// To.
        to: u32,
    },
    /// Flow divert was disabled for the socket; it reconnects through its original
    /// protocol.
    Disabled,
    /// The rejection stands (a policy unit is set).
    Rejected,
}

#[derive(Debug, Default)]
struct Global {
    /// `g_flow_divert_groups` (31 slots, allocated lazily, freed at 0 active).
    groups: Option<Vec<Option<Arc<DivertGroup>>>>,
    in_process: Vec<Arc<DivertGroup>>,
    active: u32,
}

/// The flow divert subsystem.
#[derive(Debug)]
pub struct FlowDivert {
    global: RwLock<Global>,
    /// Serialises setups like kern_control's `ctl_mtx`.
    ctl_mtx: Mutex<()>,
    next_key: AtomicU32,
    seed: u32,
    faults: FaultSet,
    log: Arc<LogSink>,
}

/// Reference a pcb holds or drops.
fn fdretain(pcb: &Arc<DivertPcb>, kind: PcbRefKind) {
    pcb.ref_count.fetch_add(1, Ordering::AcqRel);
    pcb.by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
}

impl FlowDivert {
    /// The subsystem, logging to `log`.
    pub fn new(log: Arc<LogSink>, faults: FaultSet, seed: u32) -> Self {
        FlowDivert {
            global: RwLock::new(Global::default()),
            ctl_mtx: Mutex::new(()),
            next_key: AtomicU32::new(1),
            seed,
            faults,
            log,
        }
    }

    fn fdlog(&self, kind: LogType, hash: u32, msg: &str) {
        self.log.log(
            &LogSource::kernel(),
            0x2c1,
            kind,
            format!("({hash}): {msg}"),
        );
    }

    /// Number of active groups (`g_active_group_count`).
    pub fn active_groups(&self) -> u32 {
        self.global.read().active
    }

    /// `flow_divert_kctl_setup`: picks the first free unit. `requested` 1–30 asks for that
    /// out-of-process unit (root only); [`FLOW_DIVERT_IN_PROCESS_UNIT`] asks for the next
    /// free in-process unit for `pid`; 0 asks for the first free out-of-process unit.
    pub fn kctl_setup(&self, requested: u32, is_root: bool, pid: u32) -> Result<u32, DivertError> {
        let _ctl = self.ctl_mtx.lock();
        let mut g = self.global.write();
        if requested == FLOW_DIVERT_IN_PROCESS_UNIT || requested >= FLOW_DIVERT_IN_PROCESS_UNIT_MIN
        {
            let mut unit = FLOW_DIVERT_IN_PROCESS_UNIT_MIN;
            while g.in_process.iter().any(|x| x.ctl_unit == unit) {
                unit = unit.checked_add(1).ok_or(DivertError::NoFreeUnit)?;
            }
            g.in_process
                .push(Arc::new(DivertGroup::new(unit, Some(pid))));
            g.active += 1;
            return Ok(unit);
        }
        if !is_root {
            return Err(DivertError::NotRoot);
        }
        let slots = g
            .groups
            .get_or_insert_with(|| vec![None; GROUP_COUNT_MAX as usize]);
        let unit = if requested == 0 {
            (1..GROUP_COUNT_MAX)
                .find(|u| slots[*u as usize].is_none())
                .ok_or(DivertError::NoFreeUnit)?
        } else if requested < GROUP_COUNT_MAX {
            if slots[requested as usize].is_some() {
                return Err(DivertError::NoFreeUnit);
            }
            requested
        } else {
            return Err(DivertError::InvalidUnit(requested));
        };
        slots[unit as usize] = Some(Arc::new(DivertGroup::new(unit, None)));
        g.active += 1;
        Ok(unit)
    }

    /// `flow_divert_handle_group_init`: sets the flags (wholesale) and order. A defunct
    /// group ignores it.
    pub fn group_init(&self, unit: u32, flags: u32, order: i32) -> Result<(), DivertError> {
        let g = self.group_lookup(unit, None)?;
        if g.flags() & GROUP_FLAG_DEFUNCT != 0 {
            return Err(DivertError::Defunct(unit));
        }
        g.flags
            .store(flags & !GROUP_FLAG_DEFUNCT, Ordering::Release);
        *g.order.lock() = order;
        Ok(())
    }

    /// `flow_divert_group_lookup`: the group for `unit`, retained.
    pub fn group_lookup(&self, unit: u32, pid: Option<u32>) -> Result<GroupRef, DivertError> {
        let g = self.global.read();
        if unit >= FLOW_DIVERT_IN_PROCESS_UNIT_MIN {
            let Some(grp) = g.in_process.iter().find(|x| x.ctl_unit == unit) else {
                self.fdlog(
                    LogType::Error,
                    0,
                    &format!("Group for control unit {unit} is NULL, flow divert cannot be used for this socket"),
                );
                return Err(DivertError::NoGroup);
            };
            if let (Some(want), Some(have)) = (pid, grp.in_process_pid)
                && want != have
            {
                self.fdlog(
                        LogType::Error,
                        0,
                        &format!("Cannot access group for control unit {unit}, mismatched PID ({want} != {have})"),
                    );
                return Err(DivertError::Pid(want, have));
            }
            return Ok(GroupRef::retain(grp));
        }
        if g.active == 0 {
            self.fdlog(
                LogType::Error,
                0,
                "No active groups, flow divert cannot be used for this socket",
            );
            return Err(DivertError::NoGroup);
        }
        if unit == 0 || unit >= GROUP_COUNT_MAX {
            self.fdlog(
                LogType::Error,
                0,
                &format!("Cannot lookup group with invalid control unit ({unit})"),
            );
            return Err(DivertError::InvalidUnit(unit));
        }
        match g.groups.as_ref().and_then(|s| s[unit as usize].as_ref()) {
            Some(grp) => Ok(GroupRef::retain(grp)),
            None => {
                self.fdlog(
                    LogType::Error,
                    0,
                    &format!("Group for control unit {unit} is NULL, flow divert cannot be used for this socket"),
                );
                Err(DivertError::NoGroup)
            }
        }
    }

    /// The group for `unit` without taking a reference (model and test probes).
    #[cfg(all(test, loom))]
    pub(crate) fn group_arc(&self, unit: u32) -> Option<Arc<DivertGroup>> {
        let g = self.global.read();
        g.groups
            .as_ref()
            .and_then(|s| s.get(unit as usize)?.clone())
    }

    /// `flow_divert_pcb_create` + attach: a pcb for a socket whose policy names
    /// `ctl_unit` (and `aggregate_unit`, a bitmask: bit *i* ↔ unit *i+1*). The returned
    /// `Arc` is the socket's reference.
    pub fn pcb_create(
        &self,
        ctl_unit: u32,
        aggregate_unit: u32,
        policy_control_unit: u32,
        flow: Option<FlowEntryRef>,
    ) -> Arc<DivertPcb> {
        let k = self.next_key.fetch_add(1, Ordering::Relaxed);
        let hash = net_flowhash(k, self.seed);
        Arc::new(DivertPcb {
            hash,
            ref_count: AtomicU32::new(1),
            by_kind: [AtomicU32::new(1), AtomicU32::new(0), AtomicU32::new(0)],
            flags: AtomicU32::new(0),
            state: Mutex::new(PcbState {
                group: None,
                control_group_unit: ctl_unit,
                aggregate_unit,
                policy_control_unit,
                socket_attached: true,
                diverted: true,
                flow,
                app_tx: 0,
                tunnel_tx: 0,
                tunnel_rx: 0,
            }),
            destroyed: AtomicU32::new(0),
        })
    }

    /// `flow_divert_pcb_insert`: puts the pcb in its unit's group (the group's reference).
    pub fn pcb_insert(&self, pcb: &Arc<DivertPcb>, unit: u32) -> Result<(), DivertError> {
        let grp = self.group_lookup(unit, None)?;
        if grp.flags() & GROUP_FLAG_DEFUNCT != 0 {
            self.fdlog(
                LogType::Error,
                pcb.hash,
                &format!("Group {unit} is defunct, cannot insert"),
            );
            return Err(DivertError::Defunct(unit));
        }
        {
            let mut tree = grp.pcbs.write();
            if tree.contains_key(&pcb.hash) {
                self.fdlog(
                    LogType::Error,
                    pcb.hash,
                    &format!("Group {unit} already contains a PCB with hash {}", pcb.hash),
                );
                return Err(DivertError::Duplicate(unit, pcb.hash));
            }
            fdretain(pcb, PcbRefKind::Group);
            tree.insert(pcb.hash, Arc::clone(pcb));
        }
        let mut st = pcb.state.lock();
        st.control_group_unit = unit;
        st.group = Some(grp);
        pcb.flags
            .fetch_or(FLOW_FLAG_CONNECT_STARTED, Ordering::AcqRel);
        Ok(())
    }

    /// `flow_divert_pcb_remove`: out of its group's tree (drops the group's reference).
    pub fn pcb_remove(&self, pcb: &Arc<DivertPcb>) {
        let grp = pcb.state.lock().group.take();
        if let Some(grp) = grp {
            let removed = grp.pcbs.write().remove(&pcb.hash);
            if removed.is_some() {
                self.fdrelease(pcb, PcbRefKind::Group);
            }
        }
    }

    /// `FDRELEASE`: destroys the pcb when the count goes 1 → 0. There is no underflow
    /// check, as in the kernel.
    pub fn fdrelease(&self, pcb: &Arc<DivertPcb>, kind: PcbRefKind) {
        pcb.by_kind[kind as usize].fetch_sub(1, Ordering::Relaxed);
        if pcb.ref_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pcb_destroy(pcb);
        }
    }

    fn pcb_destroy(&self, pcb: &Arc<DivertPcb>) {
        pcb.destroyed.fetch_add(1, Ordering::AcqRel);
        let (a, t, r, flow) = {
            let mut st = pcb.state.lock();
            (st.app_tx, st.tunnel_tx, st.tunnel_rx, st.flow.take())
        };
        self.log.log(
            &LogSource::kernel(),
            0x2c1,
            LogType::Info,
            format!(
                "({}): Destroying, app tx {a}, tunnel tx {t}, tunnel rx {r}",
                pcb.hash
            ),
        );
        drop(flow);
    }

    /// Counts traffic on the pcb (for the Destroying line).
    pub fn account(&self, pcb: &DivertPcb, app_tx: u64, tunnel_rx: u64) {
        let mut st = pcb.state.lock();
        st.app_tx += app_tx;
        st.tunnel_tx += app_tx;
        st.tunnel_rx += tunnel_rx;
    }

    /// `flow_divert_derive_kernel_control_unit`'s aggregate pass: the live unit with the
    /// lowest order among the aggregate bits; its bit is cleared. With the
    /// `flow-divert-no-control-units` fault every bit is cleared.
    fn derive_next_unit(&self, st: &mut PcbState) -> u32 {
        let g = self.global.read();
        let mut best: Option<(i32, u32)> = None;
        for bit in 0..(GROUP_COUNT_MAX - 1) {
            if st.aggregate_unit & (1 << bit) == 0 {
                continue;
            }
            let unit = bit + 1;
            if let Some(grp) = g.groups.as_ref().and_then(|s| s[unit as usize].as_ref()) {
                let order = grp.order();
                if best.is_none_or(|(o, _)| order < o) {
                    best = Some((order, unit));
                }
            }
        }
        match best {
            Some((_, unit)) => {
                if self.faults.has(Fault::FlowDivertNoControlUnits) {
                    st.aggregate_unit = 0;
                    0
                } else {
                    st.aggregate_unit &= !(1 << (unit - 1));
                    unit
                }
            }
            None => 0,
        }
    }

    /// `flow_divert_try_next_group`.
    fn try_next_group(&self, pcb: &Arc<DivertPcb>) -> Result<u32, DivertError> {
        let current = pcb.state.lock().control_group_unit;
        self.pcb_remove(pcb);
        loop {
            let next = {
                let mut st = pcb.state.lock();
                self.derive_next_unit(&mut st)
            };
            if next == current {
                self.fdlog(
                    LogType::Default,
                    pcb.hash,
                    "Next control unit is the same as the current control unit, disabling flow divert",
                );
                return Err(DivertError::SameUnit);
            }
            if next == 0 || next >= GROUP_COUNT_MAX {
                self.fdlog(
                    LogType::Default,
                    pcb.hash,
                    "No more valid control units, disabling flow divert",
                );
                return Err(DivertError::NoGroup);
            }
            if self.group_lookup(next, None).is_err() {
                self.fdlog(
                    LogType::Default,
                    pcb.hash,
                    &format!("Group for control unit {next} does not exist"),
                );
                continue;
            }
            self.fdlog(
                LogType::Default,
                pcb.hash,
                &format!("Moving from {current} to {next}"),
            );
            self.pcb_insert(pcb, next)?;
            return Ok(next);
        }
    }

    /// `flow_divert_disable`: gives the socket back to its original protocol and drops
    /// the socket's reference.
    fn disable(&self, pcb: &Arc<DivertPcb>) {
        self.fdlog(
            LogType::Default,
            pcb.hash,
            "Skipped all flow divert services, disabling flow divert",
        );
        let had_socket = {
            let mut st = pcb.state.lock();
            st.diverted = false;
            std::mem::replace(&mut st.socket_attached, false)
        };
        if had_socket {
            self.fdrelease(pcb, PcbRefKind::Socket);
        }
    }

    /// `flow_divert_pcb_lookup`: the pcb with `hash` in `unit`'s group, with a transient
    /// reference the caller drops with [`FlowDivert::pcb_release`].
    pub fn pcb_lookup(&self, unit: u32, hash: u32) -> Option<Arc<DivertPcb>> {
        let grp = self.group_lookup(unit, None).ok()?;
        let tree = grp.pcbs.read();
        let pcb = tree.get(&hash)?;
        fdretain(pcb, PcbRefKind::Transient);
        Some(Arc::clone(pcb))
    }

    /// Drops a transient reference from [`FlowDivert::pcb_lookup`].
    pub fn pcb_release(&self, pcb: &Arc<DivertPcb>) {
        self.fdrelease(pcb, PcbRefKind::Transient);
    }

    /// `flow_divert_handle_connect_result`: `connect_error` 0 means the provider accepted.
    /// A rejection fails over across the aggregate units; when none is left and no policy
    /// unit is set, flow divert is disabled for the socket. The caller holds a reference
    /// (the input path's, from [`FlowDivert::pcb_lookup`]).
    pub fn handle_connect_result(
        &self,
        pcb: &Arc<DivertPcb>,
        connect_error: i32,
    ) -> ConnectOutcome {
        self.connect_result_locked(pcb, connect_error)
    }

    fn connect_result_locked(&self, pcb: &Arc<DivertPcb>, connect_error: i32) -> ConnectOutcome {
        if connect_error == 0 {
            return ConnectOutcome::Connected;
        }
        let (cur, policy) = {
            let st = pcb.state.lock();
            (st.control_group_unit, st.policy_control_unit)
        };
        if cur == policy {
            return ConnectOutcome::Rejected;
        }
        match self.try_next_group(pcb) {
            Ok(to) => ConnectOutcome::Moved { from: cur, to },
            Err(_) if policy == 0 => {
                self.disable(pcb);
                ConnectOutcome::Disabled
            }
            Err(_) => ConnectOutcome::Rejected,
        }
    }

    /// `flow_divert_detach` (socket close): out of the group, then the socket's reference.
    pub fn detach(&self, pcb: &Arc<DivertPcb>) {
        self.pcb_remove(pcb);
        let had_socket = {
            let mut st = pcb.state.lock();
            st.diverted = false;
            std::mem::replace(&mut st.socket_attached, false)
        };
        if had_socket {
            self.fdrelease(pcb, PcbRefKind::Socket);
        }
    }

    /// `flow_divert_kctl_disconnect`: the provider's control socket closed. The slot is
    /// cleared, then `close_all` marks the group DEFUNCT and aborts every pcb, and the
    /// registry's group reference is dropped.
    ///
    /// `on_abort` runs for each aborted pcb after it left the group: it is where the
    /// socket layer tears the socket's flow down.
    pub fn kctl_disconnect(
        &self,
        unit: u32,
        mut on_abort: impl FnMut(&Arc<DivertPcb>),
    ) -> Result<(), DivertError> {
        let grp = {
            let mut g = self.global.write();
            let grp = if unit >= FLOW_DIVERT_IN_PROCESS_UNIT_MIN {
                let pos = g
                    .in_process
                    .iter()
                    .position(|x| x.ctl_unit == unit)
                    .ok_or(DivertError::NoGroup)?;
                g.in_process.remove(pos)
            } else if unit == 0 || unit >= GROUP_COUNT_MAX {
                return Err(DivertError::InvalidUnit(unit));
            } else {
                g.groups
                    .as_mut()
                    .and_then(|s| s[unit as usize].take())
                    .ok_or(DivertError::NoGroup)?
            };
            g.active = g.active.saturating_sub(1);
            if g.active == 0 {
                g.groups = None;
            }
            grp
        };
        // The registry's reference, as a GroupRef without a new retain.
        let registry_ref = GroupRef(grp);
        // flow_divert_close_all
        let pcbs: Vec<Arc<DivertPcb>> = {
            let tree = registry_ref.pcbs.read();
            registry_ref
                .flags
                .fetch_or(GROUP_FLAG_DEFUNCT, Ordering::AcqRel);
            tree.values()
                .map(|p| {
                    fdretain(p, PcbRefKind::Transient);
                    Arc::clone(p)
                })
                .collect()
        };
        for pcb in &pcbs {
            self.pcb_remove(pcb);
            on_abort(pcb);
            self.fdrelease(pcb, PcbRefKind::Transient);
        }
        drop(registry_ref);
        Ok(())
    }
}

/// `net_flowhash` of a 64-bit key with `seed` (MurmurHash3 x86_32 finaliser mix).
pub fn net_flowhash(k: u32, seed: u32) -> u32 {
    let mut h = seed
        ^ k.wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
    h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    h ^= 8;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::log::Clock;

    fn fd(faults: FaultSet) -> FlowDivert {
        FlowDivert::new(
            Arc::new(LogSink::new(Arc::new(Clock::new(1_795_246_222_000_000)))),
            faults,
            0x5eed,
        )
    }

    #[test]
    fn units_and_root() {
        let d = fd(FaultSet::none());
        assert_eq!(d.kctl_setup(0, false, 10), Err(DivertError::NotRoot));
        assert_eq!(d.kctl_setup(0, true, 10), Ok(1));
        assert_eq!(d.kctl_setup(0, true, 10), Ok(2));
        assert_eq!(
            d.kctl_setup(FLOW_DIVERT_IN_PROCESS_UNIT, false, 10),
            Ok(0xFFFF)
        );
        assert_eq!(
            d.kctl_setup(FLOW_DIVERT_IN_PROCESS_UNIT, false, 11),
            Ok(0x10000)
        );
        assert_eq!(d.active_groups(), 4);
        assert!(d.group_lookup(0xFFFF, Some(10)).is_ok());
        assert_eq!(
            d.group_lookup(0xFFFF, Some(99)).unwrap_err(),
            DivertError::Pid(99, 10)
        );
        assert_eq!(
            d.group_lookup(31, None).unwrap_err(),
            DivertError::InvalidUnit(31)
        );
        for _ in 3..31 {
            d.kctl_setup(0, true, 1).unwrap();
        }
        assert_eq!(d.kctl_setup(0, true, 1), Err(DivertError::NoFreeUnit));
    }

    fn failover(faults: FaultSet) -> (FlowDivert, Arc<DivertPcb>, ConnectOutcome) {
        let d = fd(faults);
        let u1 = d.kctl_setup(0, true, 1).unwrap();
        let u2 = d.kctl_setup(0, true, 1).unwrap();
        d.group_init(u1, 0, 10).unwrap();
        d.group_init(u2, 0, 20).unwrap();
        let pcb = d.pcb_create(u1, 0b10, 0, None);
        d.pcb_insert(&pcb, u1).unwrap();
        assert_eq!(pcb.ref_count(), 2);
        assert_eq!(pcb.refs(PcbRefKind::Socket), 1);
        assert_eq!(pcb.refs(PcbRefKind::Group), 1);
        let input = d.pcb_lookup(u1, pcb.hash()).unwrap();
        assert_eq!(input.refs(PcbRefKind::Transient), 1);
        d.pcb_release(&input);
        assert_eq!(pcb.refs(PcbRefKind::Transient), 0);
        let out = d.handle_connect_result(&pcb, 61);
        (d, pcb, out)
    }

    #[test]
    fn connect_result_fails_over_then_disables() {
        let (d, pcb, out) = failover(FaultSet::none());
        assert_eq!(out, ConnectOutcome::Moved { from: 1, to: 2 });
        assert_eq!(pcb.control_group_unit(), 2);
        let out = d.handle_connect_result(&pcb, 61);
        assert_eq!(out, ConnectOutcome::Disabled);
        let h = pcb.hash();
        assert_eq!(
            d.log
                .count_containing(&format!("({h}): Moving from 1 to 2")),
            1
        );
        assert_eq!(
            d.log.count_containing(&format!(
                "({h}): No more valid control units, disabling flow divert"
            )),
            1
        );
        assert_eq!(
            d.log
                .count_containing("Skipped all flow divert services, disabling flow divert"),
            1
        );
        // socket reference dropped by disable; group reference dropped by remove.
        assert_eq!(pcb.ref_count(), 0);
        assert_eq!(pcb.destroy_count(), 1);
    }

    #[test]
    fn fault_skips_the_backup_unit() {
        let (d, pcb, out) = failover(FaultSet::of(&[Fault::FlowDivertNoControlUnits]));
        assert_eq!(out, ConnectOutcome::Disabled);
        assert!(!pcb.is_diverted());
        assert_eq!(
            d.log
                .count_containing("No more valid control units, disabling flow divert"),
            1
        );
        assert_eq!(d.log.count_containing("Moving from"), 0);
    }

    #[test]
    fn disconnect_marks_defunct_and_destroys_group_after_last_lookup() {
        let d = fd(FaultSet::none());
        let u = d.kctl_setup(0, true, 1).unwrap();
        let pcb = d.pcb_create(u, 0, 0, None);
        d.pcb_insert(&pcb, u).unwrap();
        let held = d.group_lookup(u, None).unwrap();
        let mut aborted = 0;
        d.kctl_disconnect(u, |_| aborted += 1).unwrap();
        assert_eq!(aborted, 1);
        assert_ne!(held.flags() & GROUP_FLAG_DEFUNCT, 0);
        assert!(!held.is_destroyed());
        assert_eq!(held.pcb_count(), 0);
        assert_eq!(d.active_groups(), 0);
        let probe = Arc::clone(&held.0);
        drop(held);
        assert!(probe.is_destroyed());
        assert_eq!(d.log.count_containing("No active groups"), 0);
        assert!(d.group_lookup(u, None).is_err());
        assert_eq!(
            d.log
                .count_containing("No active groups, flow divert cannot be used for this socket"),
            1
        );
        d.detach(&pcb);
        assert_eq!(pcb.destroy_count(), 1);
    }
}

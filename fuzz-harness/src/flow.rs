//! `flow_ops`: open/close/lookup/queue/cancel, flow divert attach/detach/failover/
//! control-socket close, VPN session start/sleep/wake, descriptor open/close and
//! connect/teardown cycles, fork against a reference model of the table, the owners and
//! the divert groups.
//!
//! Invariants checked after every operation: each live flow's `os_refcnt` equals the
//! references the model knows about (caller + table + owner id tree + divert pcb), owner
//! flow and waiter counts, table and linger sizes, `flow.entry` objects in use, descriptor
//! counts, the session's state and queue, and that no misuse panic was recorded. At the
//! end everything is closed and nothing may be left: no entries in the table, no objects
//! in use in the `flow.entry` cache, no waiters, no groups.
//!
//! Faults (`flow_table::fault`) are chosen by the `FLOWSLAB_FUZZ_FAULTS` environment
//! variable, read once per process:
//!
//! * unset or empty: no fault (the model must agree with the table on every input);
//! * `input`: the first input byte selects faults (bit *i* ↔ `Fault::ALL[i]`);
//! * `name[,name…]`: those faults (e.g. `skmem-slab-double-free`), whatever the input.
//!
//! When a fault makes the table diverge from the model, the harness panics with a message
//! that starts with `flow_ops: ` and names the fault's failure (see [`failure_text`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use flow_table::atfork::{ForkOutcome, PathLocks, simulate_fork_race};
use flow_table::divert::{ConnectOutcome, DivertPcb, FlowDivert};
use flow_table::entry::FlowEntryRef;
use flow_table::error::FlowError;
use flow_table::fault::{Fault, FaultSet};
use flow_table::key::FlowKey;
use flow_table::log::{Clock, LogSink};
use flow_table::manager::{FlowManager, FlowManagerConfig, FlowRequest, OpenResult};
use flow_table::owner::{FlowOwner, OpenMode, WaitTicket};
use flow_table::panic::PanicPolicy;
use flow_table::session::{SessionState, StartSource, VpnSession};

use crate::bytes::Reader;

/// Owners in a run (pids 100, 101, 102).
pub const OWNERS: usize = 3;
/// Per-owner flow limit (small, so the limit and its waiters are reached quickly).
pub const FLOW_LIMIT: usize = 2;
/// Per-owner descriptor limit (3 of them are stdin/stdout/stderr).
pub const FD_LIMIT: usize = 8;
/// Distinct flow keys (so opens collide).
pub const KEYS: u8 = 8;
/// Linger time of `WAIT_CLOSE` flows.
pub const LINGER_MS: u64 = 2000;
/// Most operations executed per input.
pub const MAX_OPS: usize = 512;

/// The failure each fault shows in this harness: the panic message contains this text.
pub fn failure_text(f: Fault) -> &'static str {
    match f {
        Fault::SkmemSlabDoubleFree => "allocator caught a misuse",
        Fault::NwConnectionEnomem => "waiters not woken",
        Fault::Wifip2pdFdLeakEmfile => "descriptor leaked by a connect/teardown cycle",
        Fault::NesmVpnStartStorm => "VPN session diverged",
        Fault::AtforkNwPathPrepareDeadlock => "fork deadlocked",
        Fault::FlowDivertNoControlUnits => "failover diverged",
    }
}

/// How faults are chosen (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// No fault.
    Off,
    /// From the first input byte.
    Input,
    /// Always this set.
    Fixed(FaultSet),
}

impl FaultMode {
    /// Parses `FLOWSLAB_FUZZ_FAULTS`' value.
    pub fn parse(v: &str) -> Result<FaultMode, String> {
        let v = v.trim();
        if v.is_empty() || v == "none" {
            return Ok(FaultMode::Off);
        }
        if v == "input" {
            return Ok(FaultMode::Input);
        }
        let mut set = FaultSet::none();
        for name in v.split(',') {
            let f: Fault = name.trim().parse().map_err(|e| format!("{e}"))?;
            set = set.with(f);
        }
        Ok(FaultMode::Fixed(set))
    }

    /// The mode from the environment (read once).
    pub fn from_env() -> FaultMode {
        static MODE: OnceLock<FaultMode> = OnceLock::new();
        *MODE.get_or_init(|| match std::env::var("FLOWSLAB_FUZZ_FAULTS") {
            Ok(v) => FaultMode::parse(&v).unwrap_or_else(|e| panic!("FLOWSLAB_FUZZ_FAULTS: {e}")),
            Err(_) => FaultMode::Off,
        })
    }
}

/// The harness body of `flow_ops` (faults from the environment).
pub fn run(data: &[u8]) {
    run_with(FaultMode::from_env(), data);
}

/// The harness body with an explicit fault mode.
///
/// # Panics
/// When the table diverges from the model (that is the finding).
pub fn run_with(mode: FaultMode, data: &[u8]) {
    let mut r = Reader::new(data);
    let faults = match mode {
        FaultMode::Off => FaultSet::none(),
        FaultMode::Fixed(s) => s,
        FaultMode::Input => {
            let bits = r.u8();
            Fault::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(FaultSet::none(), |s, (_, f)| s.with(*f))
        }
    };
    let mut h = Harness::new(faults);
    let mut n = 0;
    while !r.is_empty() && n < MAX_OPS {
        h.step(&mut r);
        h.check();
        n += 1;
    }
    h.finish();
}

/// Operation tags (the first byte of each operation, modulo the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpTag {
    /// `owner, key, queue?, wait_close?`
    Open = 0,
    /// `flow, nolinger?`
    Close,
    /// `waiter`
    Complete,
    /// `waiter`
    Cancel,
    /// `key`
    Lookup,
    /// `order`
    DivertSetup,
    /// `flow, unit, aggregate mask, reject?`
    DivertAttach,
    /// `flow`
    DivertDetach,
    /// `unit`
    KctlDisconnect,
    /// `kind` (0: On Demand, 1: app), `budget`
    SessionStart,
    /// `budget`
    SessionStep,
    /// —
    SessionSleep,
    /// —
    SessionWake,
    /// —
    ProviderStarted,
    /// `owner`
    FdOpen,
    /// `owner, index`
    FdClose,
    /// `owner`
    NdpCycle,
    /// —
    Fork,
    /// `ms / 16`
    Reap,
}

impl OpTag {
    /// Number of operations.
    pub const COUNT: u8 = 19;
}

struct MFlow {
    owner: usize,
    key: u8,
    wait_close: bool,
    fe: FlowEntryRef,
    /// The divert pcb and the unit its group is in (0: not in a group).
    pcb: Option<(Arc<DivertPcb>, u32)>,
}

struct MWaiter {
    owner: usize,
    ticket: WaitTicket,
    key: u8,
    req: FlowRequest,
    admitted: bool,
}

#[derive(Default)]
struct MOwner {
    in_use: usize,
    fds: Vec<i32>,
}

struct MSession {
    state: SessionState,
    queue: usize,
    asleep: bool,
    pending: bool,
}

struct Harness {
    faults: FaultSet,
    clock: Arc<Clock>,
    mgr: FlowManager,
    divert: FlowDivert,
    session: VpnSession,
    locks: PathLocks,
    owners: Vec<Arc<FlowOwner>>,
    fd_baseline: usize,
    // The model.
    m_owners: Vec<MOwner>,
    flows: Vec<MFlow>,
    /// Queued opens in arrival order (each owner's are admitted FIFO).
    waiters: Vec<MWaiter>,
    /// Expiry (ms) of each lingering entry.
    lingering: Vec<u64>,
    /// Live units → order.
    units: BTreeMap<u32, i32>,
    m_session: MSession,
    next_uuid: u128,
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn request(uuid: u128, key: u8, wait_close: bool) -> FlowRequest {
    let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 1, key % 4));
    let mut req = FlowRequest::tcp(uuid, LOCAL, 1000 + u16::from(key), remote, 443);
    req.wait_close = wait_close;
    req
}

fn key_of(key: u8) -> FlowKey {
    let req = request(0, key, false);
    FlowKey::from_request(
        req.proto,
        req.local,
        req.local_port,
        req.remote,
        req.remote_port,
    )
    .expect("a 5-tuple request has a valid mask")
}

fn fail(f: Fault, faults: FaultSet, detail: String) -> ! {
    if faults.has(f) {
        panic!(
            "flow_ops: {} ({} injected): {detail}",
            failure_text(f),
            f.name()
        );
    }
    panic!(
        "flow_ops: {} with no fault injected: {detail}",
        failure_text(f)
    );
}

impl Harness {
    fn new(faults: FaultSet) -> Self {
        let clock = Arc::new(Clock::new(1_700_000_000_000_000));
        let log = Arc::new(LogSink::disabled(Arc::clone(&clock)));
        let mgr = FlowManager::new(
            FlowManagerConfig {
                capacity: 64,
                owner_buckets: 2,
                flow_limit: FLOW_LIMIT,
                fd_limit: FD_LIMIT,
                linger_ms: LINGER_MS,
                sk_verbose: 0,
                faults,
                panic_policy: PanicPolicy::Record,
                ncpu: 2,
            },
            Arc::clone(&log),
        );
        let owners: Vec<_> = (0..OWNERS)
            .map(|i| mgr.owner(100 + i as u32, &format!("app{i}")))
            .collect();
        let fd_baseline = owners[0].fds().count();
        Harness {
            faults,
            divert: FlowDivert::new(Arc::clone(&log), faults, 0x5eed),
            session: VpnSession::new("Primary Tunnel", 562, Arc::clone(&log), faults),
            locks: PathLocks::new(),
            clock,
            mgr,
            owners,
            fd_baseline,
            m_owners: (0..OWNERS).map(|_| MOwner::default()).collect(),
            flows: Vec::new(),
            waiters: Vec::new(),
            lingering: Vec::new(),
            units: BTreeMap::new(),
            m_session: MSession {
                state: SessionState::Disconnected,
                queue: 0,
                asleep: false,
                pending: false,
            },
            next_uuid: 1,
        }
    }

    fn uuid(&mut self) -> u128 {
        self.next_uuid += 1;
        0x5A1E_0000_0000_4000_8000_0000_0000_0000 | self.next_uuid
    }

    fn key_in_use(&self, key: u8) -> bool {
        self.flows.iter().any(|f| f.key == key)
    }

    /// A slot came back: admit the owner's waiters in FIFO order (unless the fault eats
    /// the wakeup, which `check` then notices).
    fn release_slot(&mut self, owner: usize) {
        let o = &mut self.m_owners[owner];
        o.in_use = o.in_use.saturating_sub(1);
        for w in self.waiters.iter_mut().filter(|w| w.owner == owner) {
            if self.m_owners[owner].in_use >= FLOW_LIMIT {
                break;
            }
            if !w.admitted {
                w.admitted = true;
                self.m_owners[owner].in_use += 1;
            }
        }
    }

    fn waiting_in_model(&self, owner: usize) -> usize {
        self.waiters
            .iter()
            .filter(|w| w.owner == owner && !w.admitted)
            .count()
    }

    fn step(&mut self, r: &mut Reader<'_>) {
        let tag = r.below(OpTag::COUNT);
        match tag {
            0 => {
                let owner = r.below(OWNERS as u8) as usize;
                let key = r.below(KEYS);
                let flags = r.u8();
                self.open(owner, key, flags & 1 == 1, flags & 2 == 2);
            }
            1 => {
                let i = r.u8();
                let nolinger = r.bool();
                self.close(i, nolinger);
            }
            2 => {
                let i = r.u8();
                self.complete(i);
            }
            3 => {
                let i = r.u8();
                self.cancel(i);
            }
            4 => {
                let key = r.below(KEYS);
                self.lookup(key);
            }
            5 => {
                let order = i32::from(r.below(4));
                self.divert_setup(order);
            }
            6 => {
                let i = r.u8();
                let unit = r.u8();
                let agg = r.u8();
                let reject = r.bool();
                self.divert_attach(i, unit, agg, reject);
            }
            7 => {
                let i = r.u8();
                self.divert_detach(i);
            }
            8 => {
                let unit = r.u8();
                self.kctl_disconnect(unit);
            }
            9 => {
                let app = r.bool();
                let n = 1 + r.below(3);
                for _ in 0..n {
                    self.session.request_start(if app {
                        StartSource::App {
                            name: "Spotify Helper".into(),
                            pid: 69038,
                        }
                    } else {
                        StartSource::OnDemand { pid: 5454 }
                    });
                    self.m_session.queue += 1;
                }
            }
            10 => {
                let budget = 1 + usize::from(r.below(4));
                self.session_step(budget);
            }
            11 => {
                self.session.sleep();
                self.m_session.asleep = true;
                if self.m_session.state == SessionState::Connected {
                    self.m_session.state = SessionState::Disconnected;
                }
            }
            12 => {
                self.session.wake();
                self.m_session.asleep = false;
            }
            13 => {
                self.session.provider_started();
                if self.m_session.state == SessionState::Connecting && self.m_session.pending {
                    self.m_session.pending = false;
                    self.m_session.state = SessionState::Connected;
                }
            }
            14 => {
                let owner = r.below(OWNERS as u8) as usize;
                self.fd_open(owner);
            }
            15 => {
                let owner = r.below(OWNERS as u8) as usize;
                let i = r.u8();
                let fds = &mut self.m_owners[owner].fds;
                if !fds.is_empty() {
                    let fd = fds.remove(usize::from(i) % fds.len());
                    self.owners[owner]
                        .fds()
                        .close(fd)
                        .unwrap_or_else(|e| panic!("flow_ops: close of open fd {fd}: {e}"));
                }
            }
            16 => {
                let owner = r.below(OWNERS as u8) as usize;
                self.ndp_cycle(owner);
            }
            17 => {
                self.locks.evaluate();
                if simulate_fork_race(&self.locks, self.faults) == ForkOutcome::Deadlock {
                    fail(
                        Fault::AtforkNwPathPrepareDeadlock,
                        self.faults,
                        "fork racing a path evaluation: both threads wait on each other".into(),
                    );
                }
            }
            _ => {
                let ms = u64::from(r.u8()) * 16;
                self.reap(ms);
            }
        }
    }

    fn open(&mut self, owner: usize, key: u8, queue: bool, wait_close: bool) {
        let uuid = self.uuid();
        let req = request(uuid, key, wait_close);
        let mode = if queue {
            OpenMode::Queue
        } else {
            OpenMode::NonBlocking
        };
        let res = self.mgr.open(&self.owners[owner], &req, mode);
        let has_room =
            self.m_owners[owner].in_use < FLOW_LIMIT && self.waiting_in_model(owner) == 0;
        match (has_room, res) {
            (true, Ok(OpenResult::Opened(fe))) => {
                assert!(
                    !self.key_in_use(key),
                    "flow_ops: opened a second flow with key {key}"
                );
                self.m_owners[owner].in_use += 1;
                self.flows.push(MFlow {
                    owner,
                    key,
                    wait_close,
                    fe,
                    pcb: None,
                });
            }
            (true, Err(FlowError::Exists(_))) => {
                assert!(
                    self.key_in_use(key),
                    "flow_ops: open of free key {key} refused as existing"
                );
            }
            (false, Ok(OpenResult::Waiting(t))) if queue => self.waiters.push(MWaiter {
                owner,
                ticket: t,
                key,
                req,
                admitted: false,
            }),
            (false, Err(FlowError::OwnerLimit { .. })) if !queue => {}
            (room, res) => panic!(
                "flow_ops: open(owner {owner}, key {key}, queue {queue}) with room {room}: unexpected {res:?}"
            ),
        }
    }

    fn close(&mut self, i: u8, nolinger: bool) {
        if self.flows.is_empty() {
            return;
        }
        let f = self.flows.remove(usize::from(i) % self.flows.len());
        if let Some((pcb, _)) = &f.pcb {
            self.divert.detach(pcb);
            drop(pcb.take_flow());
        }
        let lingers = f.wait_close && !nolinger;
        if lingers {
            self.lingering
                .push(self.clock.now_ms().saturating_add(LINGER_MS));
        }
        self.mgr.destroy(&self.owners[f.owner], f.fe, nolinger);
        self.release_slot(f.owner);
    }

    fn complete(&mut self, i: u8) {
        if self.waiters.is_empty() {
            return;
        }
        let idx = usize::from(i) % self.waiters.len();
        let (owner, ticket, admitted, key) = {
            let w = &self.waiters[idx];
            (w.owner, w.ticket, w.admitted, w.key)
        };
        let req = self.waiters[idx].req.clone();
        let res = self.mgr.complete_open(&self.owners[owner], ticket, &req);
        match (admitted, res) {
            (false, Ok(None)) => {}
            (true, Ok(Some(fe))) => {
                assert!(
                    !self.key_in_use(key),
                    "flow_ops: completed a second flow with key {key}"
                );
                self.waiters.remove(idx);
                self.flows.push(MFlow {
                    owner,
                    key,
                    wait_close: req.wait_close,
                    fe,
                    pcb: None,
                });
            }
            (true, Err(FlowError::Exists(_))) if self.key_in_use(key) => {
                self.waiters.remove(idx);
                self.release_slot(owner);
            }
            (true, Ok(None)) => fail(
                Fault::NwConnectionEnomem,
                self.faults,
                format!(
                    "owner {owner}: a flow closed below the limit but queued open {ticket:?} was never admitted"
                ),
            ),
            (adm, res) => panic!(
                "flow_ops: complete_open({ticket:?}) admitted in model {adm}: unexpected {res:?}"
            ),
        }
    }

    fn cancel(&mut self, i: u8) {
        if self.waiters.is_empty() {
            return;
        }
        let w = self.waiters.remove(usize::from(i) % self.waiters.len());
        self.owners[w.owner].cancel(w.ticket, self.faults);
        if w.admitted {
            self.release_slot(w.owner);
        }
    }

    fn lookup(&mut self, key: u8) {
        let hit = self.mgr.find_by_key(&key_of(key));
        let expect = self.flows.iter().find(|f| f.key == key);
        match (hit, expect) {
            (None, None) => {}
            (Some(h), Some(f)) => {
                assert_eq!(
                    h.identity().uuid,
                    f.fe.identity().uuid,
                    "flow_ops: lookup of key {key} found another flow"
                );
                let want = expected_refs(f) + 1;
                assert_eq!(
                    h.refcnt(),
                    want,
                    "flow_ops: lookup reference: refcnt {} instead of {want}",
                    h.refcnt()
                );
            }
            (h, e) => panic!(
                "flow_ops: lookup of key {key}: table {:?}, model {:?}",
                h.map(|h| h.identity().uuid),
                e.map(|f| f.fe.identity().uuid)
            ),
        }
    }

    fn divert_setup(&mut self, order: i32) {
        let res = self.divert.kctl_setup(0, true, 700);
        let expect = (1..31u32).find(|u| !self.units.contains_key(u));
        match (res, expect) {
            (Ok(u), Some(e)) if u == e => {
                self.divert
                    .group_init(u, 0, order)
                    .unwrap_or_else(|e| panic!("flow_ops: group_init({u}): {e}"));
                self.units.insert(u, order);
            }
            (Err(_), None) => {}
            (res, e) => panic!("flow_ops: kctl_setup: {res:?}, model expects unit {e:?}"),
        }
    }

    fn divert_attach(&mut self, i: u8, unit: u8, agg: u8, reject: bool) {
        if self.flows.is_empty() || self.units.is_empty() {
            return;
        }
        let idx = usize::from(i) % self.flows.len();
        if self.flows[idx].pcb.is_some() {
            return;
        }
        let units: Vec<u32> = self.units.keys().copied().collect();
        let unit = units[usize::from(unit) % units.len()];
        // Aggregate candidates: a subset of the other live units (bit i ↔ unit i+1).
        let mut agg_mask = 0u32;
        for (j, u) in units.iter().enumerate() {
            if *u != unit && agg & (1 << (j % 8)) != 0 {
                agg_mask |= 1 << (u - 1);
            }
        }
        let fe = self.flows[idx].fe.clone();
        let pcb = self.divert.pcb_create(unit, agg_mask, 0, Some(fe));
        if let Err(e) = self.divert.pcb_insert(&pcb, unit) {
            panic!("flow_ops: pcb_insert into live unit {unit}: {e}");
        }
        let out = self
            .divert
            .handle_connect_result(&pcb, if reject { 61 } else { 0 });
        // The model's failover: the candidate with the lowest order (lowest unit on ties).
        let next = units
            .iter()
            .filter(|u| agg_mask & (1 << (**u - 1)) != 0)
            .min_by_key(|u| (self.units[*u], **u))
            .copied();
        let expect = match (reject, next) {
            (false, _) => ConnectOutcome::Connected,
            (true, Some(to)) => ConnectOutcome::Moved { from: unit, to },
            (true, None) => ConnectOutcome::Disabled,
        };
        if out != expect {
            if expect != ConnectOutcome::Disabled && out == ConnectOutcome::Disabled {
                fail(
                    Fault::FlowDivertNoControlUnits,
                    self.faults,
                    format!(
                        "connect rejected on unit {unit} with candidates {agg_mask:#x} (live units {units:?}): flow divert disabled instead of {expect:?}"
                    ),
                );
            }
            panic!("flow_ops: connect result on unit {unit}: {out:?}, model expects {expect:?}");
        }
        self.flows[idx].pcb = match out {
            ConnectOutcome::Connected => Some((pcb, unit)),
            ConnectOutcome::Moved { to, .. } => Some((pcb, to)),
            // Disabled: the socket's and the group's references are gone and the pcb
            // (with its flow reference) was destroyed.
            _ => {
                assert_eq!(
                    pcb.destroy_count(),
                    1,
                    "flow_ops: disabled pcb not destroyed"
                );
                None
            }
        };
    }

    fn divert_detach(&mut self, i: u8) {
        if self.flows.is_empty() {
            return;
        }
        let idx = usize::from(i) % self.flows.len();
        if let Some((pcb, _)) = self.flows[idx].pcb.take() {
            self.divert.detach(&pcb);
            drop(pcb.take_flow());
            assert_eq!(
                (pcb.ref_count(), pcb.destroy_count()),
                (0, 1),
                "flow_ops: detached pcb (ref_count, destroyed)"
            );
        }
    }

    fn kctl_disconnect(&mut self, unit: u8) {
        if self.units.is_empty() {
            return;
        }
        let units: Vec<u32> = self.units.keys().copied().collect();
        let unit = units[usize::from(unit) % units.len()];
        self.units.remove(&unit);
        // The socket layer tears down every aborted socket's flow, as flowsim does.
        let mut aborted: Vec<MFlow> = Vec::new();
        let mut keep = Vec::new();
        for f in std::mem::take(&mut self.flows) {
            if matches!(&f.pcb, Some((_, u)) if *u == unit) {
                aborted.push(f);
            } else {
                keep.push(f);
            }
        }
        self.flows = keep;
        let mut by_hash: BTreeMap<u32, MFlow> = aborted
            .into_iter()
            .filter_map(|f| f.pcb.as_ref().map(|(p, _)| p.hash()).map(|h| (h, f)))
            .collect();
        let faults = self.faults;
        let (mgr, owners) = (&self.mgr, &self.owners);
        let mut closed: Vec<(usize, bool)> = Vec::new();
        let res = self.divert.kctl_disconnect(unit, |pcb| {
            let Some(f) = by_hash.remove(&pcb.hash()) else {
                panic!(
                    "flow_ops: unit {unit} aborted pcb {} the model does not know",
                    pcb.hash()
                );
            };
            closed.push((f.owner, false));
            let owner = &owners[f.owner];
            if let Some(pcb_ref) = pcb.take_flow() {
                if faults.has(Fault::SkmemSlabDoubleFree) {
                    // Divert close decrements, flow teardown frees, divert close re-reads 0
                    // and frees again: the field race, replayed in order.
                    let half = pcb_ref.release_split();
                    mgr.destroy(owner, f.fe, true);
                    half.finish();
                    return;
                }
                drop(pcb_ref);
            }
            mgr.destroy(owner, f.fe, true);
        });
        if let Err(e) = res {
            panic!("flow_ops: kctl_disconnect of live unit {unit}: {e}");
        }
        assert!(
            by_hash.is_empty(),
            "flow_ops: unit {unit} did not abort {} of its pcbs",
            by_hash.len()
        );
        self.check_panics();
        for (owner, _) in closed {
            self.release_slot(owner);
        }
    }

    fn session_step(&mut self, budget: usize) {
        let handled = self.session.step(budget);
        let m = &mut self.m_session;
        let n = budget.min(m.queue);
        for _ in 0..n {
            m.queue -= 1;
            match m.state {
                SessionState::Disconnected if !m.asleep => {
                    m.state = SessionState::Connecting;
                    m.pending = true;
                }
                // A start command while connecting is skipped (dropped).
                _ => {}
            }
        }
        if handled != n || self.session.queued() != m.queue {
            fail(
                Fault::NesmVpnStartStorm,
                self.faults,
                format!(
                    "step({budget}) handled {handled} (model {n}); {} commands queued (model {}) in state {}",
                    self.session.queued(),
                    m.queue,
                    self.session.state().as_str()
                ),
            );
        }
    }

    fn fd_open(&mut self, owner: usize) {
        let res = self.owners[owner].fds().open("socket");
        let count = self.fd_baseline + self.m_owners[owner].fds.len();
        match res {
            Ok(fd) if count < FD_LIMIT => self.m_owners[owner].fds.push(fd),
            Err(FlowError::TooManyOpenFiles) if count >= FD_LIMIT => {}
            other => panic!("flow_ops: fd open with {count} open: {other:?}"),
        }
    }

    /// One NDP connect/teardown cycle as wifip2pd runs it: the path evaluator's NECP
    /// descriptor and a socket are opened, the data path's flow opens and closes, and
    /// teardown closes both descriptors (the fault forgets the NECP one).
    fn ndp_cycle(&mut self, owner: usize) {
        let fds = self.owners[owner].fds();
        let before = fds.count();
        let necp = fds.open("necp");
        let sock = fds.open("socket");
        if let Ok(fd) = sock {
            let _ = fds.close(fd);
        }
        if let Ok(fd) = necp
            && !self.faults.has(Fault::Wifip2pdFdLeakEmfile)
        {
            let _ = fds.close(fd);
        }
        let after = fds.count();
        if after != before {
            fail(
                Fault::Wifip2pdFdLeakEmfile,
                self.faults,
                format!(
                    "owner {owner}: {before} descriptors before the cycle, {after} after ({} necp)",
                    fds.count_of("necp")
                ),
            );
        }
    }

    fn reap(&mut self, ms: u64) {
        self.clock.advance(ms * 1000);
        let now = self.clock.now_ms();
        let n = self.mgr.reap_linger(now, false);
        let before = self.lingering.len();
        self.lingering.retain(|t| *t > now);
        assert_eq!(
            n,
            before - self.lingering.len(),
            "flow_ops: linger reaper freed {n} at {now} ms"
        );
    }

    fn check_panics(&self) {
        if let Some(p) = self.mgr.panic_record() {
            fail(
                Fault::SkmemSlabDoubleFree,
                self.faults,
                format!("panic recorded: {}", p.panic_string()),
            );
        }
    }

    /// The invariants that hold after every operation.
    fn check(&self) {
        self.check_panics();
        for f in &self.flows {
            let want = expected_refs(f);
            assert_eq!(
                f.fe.refcnt(),
                want,
                "flow_ops: flow {} refcnt {} instead of {want} (pcb: {})",
                f.fe.as_string(),
                f.fe.refcnt(),
                f.pcb.is_some()
            );
        }
        for (i, o) in self.owners.iter().enumerate() {
            let flows = self.flows.iter().filter(|f| f.owner == i).count();
            assert_eq!(o.flow_count(), flows, "flow_ops: owner {i} flow count");
            let waiting = self.waiting_in_model(i);
            if o.waiting() != waiting {
                fail(
                    Fault::NwConnectionEnomem,
                    self.faults,
                    format!(
                        "owner {i}: {} opens still waiting, model {waiting} ({flows} flows open, limit {FLOW_LIMIT})",
                        o.waiting()
                    ),
                );
            }
            let fds = self.fd_baseline + self.m_owners[i].fds.len();
            assert_eq!(o.fds().count(), fds, "flow_ops: owner {i} descriptors");
        }
        let st = self.mgr.stats();
        assert_eq!(
            st.table_entries,
            self.flows.len(),
            "flow_ops: table entries"
        );
        assert_eq!(
            st.lingering,
            self.lingering.len(),
            "flow_ops: lingering entries"
        );
        assert_eq!(
            st.cache.in_use,
            (self.flows.len() + self.lingering.len()) as u64,
            "flow_ops: flow.entry objects in use"
        );
        assert_eq!(
            self.session.state(),
            self.m_session.state,
            "flow_ops: VPN session state"
        );
        assert_eq!(
            self.divert.active_groups() as usize,
            self.units.len(),
            "flow_ops: active divert groups"
        );
    }

    /// Close everything; nothing may leak.
    fn finish(mut self) {
        while !self.waiters.is_empty() {
            self.cancel(0);
            self.check();
        }
        while !self.flows.is_empty() {
            self.close(0, false);
            self.check();
        }
        while !self.units.is_empty() {
            self.kctl_disconnect(0);
            self.check();
        }
        for o in 0..OWNERS {
            for fd in std::mem::take(&mut self.m_owners[o].fds) {
                let _ = self.owners[o].fds().close(fd);
            }
        }
        self.mgr.reap_linger(u64::MAX, true);
        self.lingering.clear();
        self.check();
        let st = self.mgr.stats();
        assert_eq!(
            (st.table_entries, st.lingering, st.cache.in_use),
            (0, 0, 0),
            "flow_ops: leaked flow entries at the end"
        );
        assert_eq!(
            st.cache.allocs, st.cache.frees,
            "flow_ops: flow.entry allocations and frees differ"
        );
        for o in &self.owners {
            assert_eq!(
                (o.flow_count(), o.waiting(), o.fds().count()),
                (0, 0, self.fd_baseline),
                "flow_ops: owner {} not empty at the end",
                o.pid()
            );
        }
    }
}

/// References the model knows a live flow has: the caller's, the table's, the owner's id
/// tree's, and the divert pcb's while it holds the flow.
fn expected_refs(f: &MFlow) -> u32 {
    3 + u32::from(f.pcb.is_some())
}

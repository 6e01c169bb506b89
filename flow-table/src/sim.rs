//! Deterministic scenarios for `flowsim`: a workload of owners, flows, sleep/wake and
//! flow divert attach/detach, with faults switched on or off, and what the system would
//! have written (unified log, panic report, hang sample).
//!
//! Everything is single-threaded and seeded: the racy interleavings the field bugs need
//! are replayed step by step, so the same seed always gives the same files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::atfork::{ForkOutcome, PathLocks, simulate_fork_race};
use crate::divert::{ConnectOutcome, DivertPcb, FlowDivert};
use crate::entry::FlowEntryRef;
use crate::fault::{Fault, FaultSet};
use crate::log::{Clock, LogSink, LogSource, LogType, format_timestamp, render_log_show};
use crate::manager::{FlowManager, FlowManagerConfig, FlowRequest, OpenResult, SK_VERB_FLOW};
use crate::owner::{FlowOwner, OpenMode, WaitTicket};
use crate::panic::{PanicContext, PanicHost, PanicRecord, render_panic_ips, render_panic_text};
use crate::session::{SessionState, StartSource, VpnSession};
use crate::sync::Arc;

/// Start of every simulated run: 2026-11-21 07:30:00 UTC (µs since the epoch).
pub const SIM_EPOCH_US: u64 = 1_795_246_200_000_000;

/// One part of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// wifip2pd Wi-Fi Aware NDP connect/teardown cycles.
    NdpCycles,
    /// A transparent proxy opening more connections than its flow limit.
    ProxyBurst,
    /// A packet-tunnel VPN session across sleep/wake.
    VpnSleepWake,
    /// A pre-forking server forking while its path evaluator runs.
    Prefork,
    /// Apps' flows diverted to a provider, failover, provider restart at sleep.
    DivertChurn,
}

/// A named scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Name for `flowsim run`.
    pub name: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// What it runs, in order.
    pub parts: &'static [Part],
}

/// Every scenario.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "workday",
        summary: "everything below in one boot: NDP cycles, proxy burst, VPN sleep/wake, prefork server, flow divert churn",
        parts: &[
            Part::NdpCycles,
            Part::ProxyBurst,
            Part::VpnSleepWake,
            Part::Prefork,
            Part::DivertChurn,
        ],
    },
    Scenario {
        name: "proxy-burst",
        summary: "a transparent proxy opens 600 connections against a 512-flow limit, then closes 200",
        parts: &[Part::ProxyBurst],
    },
    Scenario {
        name: "divert-churn",
        summary: "apps' flows diverted to two provider units, rejected connects fail over, provider restarts at sleep",
        parts: &[Part::DivertChurn],
    },
    Scenario {
        name: "ndp-cycles",
        summary: "wifip2pd runs 300 Wi-Fi Aware NDP connect/teardown cycles",
        parts: &[Part::NdpCycles],
    },
    Scenario {
        name: "vpn-sleep-wake",
        summary: "a packet-tunnel VPN session goes through sleep and wake with On Demand and app start commands",
        parts: &[Part::VpnSleepWake],
    },
    Scenario {
        name: "prefork-server",
        summary: "a pre-forking ruby server forks workers while Network evaluates paths",
        parts: &[Part::Prefork],
    },
];

/// Looks a scenario up by name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Which part of a scenario surfaces each fault.
pub fn fault_part(f: Fault) -> Part {
    match f {
        Fault::SkmemSlabDoubleFree | Fault::FlowDivertNoControlUnits => Part::DivertChurn,
        Fault::NwConnectionEnomem => Part::ProxyBurst,
        Fault::Wifip2pdFdLeakEmfile => Part::NdpCycles,
        Fault::NesmVpnStartStorm => Part::VpnSleepWake,
        Fault::AtforkNwPathPrepareDeadlock => Part::Prefork,
    }
}

/// The smallest scenario that reproduces `f` (every fault also shows up in `workday`).
pub fn focused_scenario(f: Fault) -> &'static str {
    match fault_part(f) {
        Part::DivertChurn => "divert-churn",
        Part::ProxyBurst => "proxy-burst",
        Part::NdpCycles => "ndp-cycles",
        Part::VpnSleepWake => "vpn-sleep-wake",
        Part::Prefork => "prefork-server",
    }
}

/// A file the run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// File name (no directories).
    pub name: String,
    /// Contents.
    pub contents: String,
}

/// What happened, for the caller and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimSummary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Enabled faults.
    pub faults: Vec<Fault>,
    /// The kernel panic, if one happened (the run stops there).
    pub panic: Option<PanicRecord>,
    /// A process hung (fork deadlock).
    pub hang: bool,
    /// Connections still waiting at the end though slots were free.
    pub stuck_connections: usize,
    /// Descriptor allocations that failed with EMFILE.
    pub emfile_failures: usize,
    /// Descriptors wifip2pd still holds at the end beyond its baseline.
    pub leaked_fds: usize,
    /// Start commands skipped while connecting.
    pub skipped_starts: u64,
    /// Final VPN session state.
    pub vpn_state: Option<&'static str>,
    /// Sockets for which flow divert disabled itself.
    pub divert_disabled: usize,
    /// Connect results that failed over to another unit.
    pub divert_moves: usize,
    /// Flows opened.
    pub flows_opened: usize,
    /// `flow.entry` objects still in use after the final teardown.
    pub cache_in_use_at_end: u64,
    /// Log records written.
    pub log_records: usize,
}

impl SimSummary {
    /// True when nothing went wrong and nothing leaked.
    pub fn is_clean(&self) -> bool {
        self.panic.is_none()
            && !self.hang
            && self.stuck_connections == 0
            && self.emfile_failures == 0
            && self.leaked_fds == 0
            && self.divert_disabled == 0
            && self.cache_in_use_at_end == 0
            && self.vpn_state.is_none_or(|s| s == "connected")
    }

    /// Human-readable report for stdout.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let faults: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
        let _ = writeln!(s, "scenario:            {}", self.scenario);
        let _ = writeln!(s, "seed:                {}", self.seed);
        let _ = writeln!(
            s,
            "faults:              {}",
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(", ")
            }
        );
        let _ = writeln!(s, "flows opened:        {}", self.flows_opened);
        let _ = writeln!(s, "log records:         {}", self.log_records);
        if let Some(p) = &self.panic {
            let _ = writeln!(s, "kernel panic:        {}", p.panic_string());
        }
        if self.hang {
            let _ = writeln!(
                s,
                "hang:                fork deadlocked in the atfork prepare handler"
            );
        }
        let _ = writeln!(s, "stuck connections:   {}", self.stuck_connections);
        let _ = writeln!(s, "EMFILE failures:     {}", self.emfile_failures);
        let _ = writeln!(s, "leaked descriptors:  {}", self.leaked_fds);
        let _ = writeln!(s, "skipped starts:      {}", self.skipped_starts);
        if let Some(v) = self.vpn_state {
            let _ = writeln!(s, "VPN session state:   {v}");
        }
        let _ = writeln!(s, "divert failovers:    {}", self.divert_moves);
        let _ = writeln!(s, "divert disabled:     {}", self.divert_disabled);
        let _ = writeln!(s, "flow.entry in use:   {}", self.cache_in_use_at_end);
        let _ = writeln!(s, "clean:               {}", self.is_clean());
        s
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// Files to write into the output directory.
    pub files: Vec<OutputFile>,
    /// Summary.
    pub summary: SimSummary,
}

/// Output format of the panic report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PanicFormat {
    /// `panic-full-*.ips` (bug_type 210), as macOS writes it.
    #[default]
    Ips,
    /// The bare panic text (`*.panic`).
    Text,
}

/// Run settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Faults.
    pub faults: FaultSet,
    /// Seed.
    pub seed: u64,
    /// Panic report format.
    pub panic_format: PanicFormat,
}

/// Errors from [`run`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such scenario.
    #[error("unknown scenario `{0}` (see `flowsim list`)")]
    UnknownScenario(String),
}

impl SimError {
    /// Stable name.
    pub fn name(&self) -> &'static str {
        "unknown-scenario"
    }
}

/// splitmix64.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn remote_v4(&mut self) -> IpAddr {
        const NETS: [[u8; 2]; 4] = [[17, 253], [142, 250], [104, 16], [151, 101]];
        let n = NETS[self.below(4) as usize];
        IpAddr::V4(Ipv4Addr::new(
            n[0],
            n[1],
            self.below(256) as u8,
            1 + self.below(254) as u8,
        ))
    }

    fn link_local(&mut self) -> Ipv6Addr {
        let v = self.next();
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            (v >> 48) as u16 & 0xfeff,
            0x9bff | ((v >> 32) as u16 & 0xff) << 8,
            0xfe00 | (v >> 16) as u16 & 0xff,
            v as u16,
        )
    }
}

struct Socket {
    owner: Arc<FlowOwner>,
    flow: FlowEntryRef,
    pcb: Option<Arc<DivertPcb>>,
}

struct World {
    faults: FaultSet,
    rng: Rng,
    log: Arc<LogSink>,
    mgr: FlowManager,
    divert: FlowDivert,
    summary: SimSummary,
    hang: Option<OutputFile>,
    panic_time_us: u64,
    panic_proc: (u32, String),
    next_uuid: u128,
    next_conn: u32,
}

const LOCAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 23));

impl World {
    fn new(cfg: &SimConfig, scenario: &Scenario) -> Self {
        let clock = Arc::new(Clock::new(SIM_EPOCH_US + (cfg.seed % 600) * 1_000_000));
        let log = Arc::new(LogSink::new(Arc::clone(&clock)));
        let mgr = FlowManager::new(
            FlowManagerConfig {
                capacity: 1024,
                flow_limit: 512,
                fd_limit: 256,
                linger_ms: 2000,
                sk_verbose: SK_VERB_FLOW,
                faults: cfg.faults,
                ..FlowManagerConfig::default()
            },
            Arc::clone(&log),
        );
        let divert = FlowDivert::new(Arc::clone(&log), cfg.faults, (cfg.seed as u32) ^ 0x5eed);
        World {
            faults: cfg.faults,
            rng: Rng(cfg.seed ^ 0xf10_5eed),
            log,
            mgr,
            divert,
            summary: SimSummary {
                scenario: scenario.name.into(),
                seed: cfg.seed,
                faults: cfg.faults.iter().collect(),
                ..SimSummary::default()
            },
            hang: None,
            panic_time_us: 0,
            panic_proc: (0, "kernel_task".into()),
            next_uuid: 0x5A1E_0000_0000_4000_8000_0000_0000_0000
                | u128::from(cfg.seed as u32) << 64,
            next_conn: 1,
        }
    }

    fn halted(&self) -> bool {
        self.mgr.panic_record().is_some()
    }

    fn uuid(&mut self) -> u128 {
        self.next_uuid += 1;
        self.next_uuid
    }

    fn tick(&self, us: u64) {
        self.log.clock().advance(us);
    }

    fn open_tcp(
        &mut self,
        owner: &Arc<FlowOwner>,
        remote: IpAddr,
        rport: u16,
        mode: OpenMode,
    ) -> (FlowRequest, Option<OpenResult>) {
        let uuid = self.uuid();
        let lport = 49152 + (self.rng.below(16000) as u16);
        let mut req = FlowRequest::tcp(uuid, LOCAL_V4, lport, remote, rport);
        req.wait_close = true;
        let res = self.mgr.open(owner, &req, mode).ok();
        if matches!(res, Some(OpenResult::Opened(_))) {
            self.summary.flows_opened += 1;
        }
        (req, res)
    }

    // ---------------------------------------------------------------- NDP cycles

    fn ndp_cycles(&mut self) {
        let owner = self.mgr.owner(412, "wifip2pd");
        let net = LogSource::process("wifip2pd", 412)
            .sender("Network")
            .subsystem("com.apple.network", "path");
        let wp = LogSource::process("wifip2pd", 412).subsystem("com.apple.WiFiP2P", "datapath");
        let baseline = owner.fds().count();
        let mut addr = self.rng.link_local();
        for cycle in 0..300u32 {
            if self.halted() {
                return;
            }
            self.tick(1_900_000);
            self.log.log(
                &LogSource::kernel(),
                0x611,
                LogType::Default,
                "nan0: handleDataPathEstablished: NAN-DP Data path ESTABLISHED".into(),
            );
            let necp = owner.fds().open("necp");
            if necp.is_err() {
                self.summary.emfile_failures += 1;
                self.log.log(
                    &net,
                    0x7a2,
                    LogType::Error,
                    "nw_path_shared_necp_fd necp_open failed [24: Too many open files]".into(),
                );
            }
            let sock = owner.fds().open("socket");
            let new_addr = self.rng.link_local();
            match sock {
                Ok(fd) => {
                    self.log.log(
                        &wp,
                        0x7a2,
                        LogType::Default,
                        format!("Successfully updated nan0 IPv6 address to [{new_addr}]"),
                    );
                    // The data path's flow.
                    let uuid = self.uuid();
                    let peer = self.rng.link_local();
                    let mut req = FlowRequest::tcp(
                        uuid,
                        IpAddr::V6(new_addr),
                        7000 + (cycle % 1000) as u16,
                        IpAddr::V6(peer),
                        7000,
                    );
                    req.proto = 17;
                    if let Ok(OpenResult::Opened(fe)) =
                        self.mgr.open(&owner, &req, OpenMode::NonBlocking)
                    {
                        self.summary.flows_opened += 1;
                        self.tick(250_000);
                        self.mgr.destroy(&owner, fe, true);
                    }
                    let _ = owner.fds().close(fd);
                }
                Err(_) => {
                    self.summary.emfile_failures += 1;
                    self.log.log(
                        &wp,
                        0x7a2,
                        LogType::Error,
                        "Failed to create socket: Too many open files".into(),
                    );
                    self.log.log(
                        &net,
                        0x7a2,
                        LogType::Error,
                        "File descriptor is bad, could not create socket".into(),
                    );
                    self.log.log(
                        &wp,
                        0x7a2,
                        LogType::Error,
                        format!(
                            "Failed to update nan0 IPv6 address to [{new_addr}] (from [{addr}]) because <Apple80211Error Bad file descriptor>"
                        ),
                    );
                }
            }
            addr = new_addr;
            // Teardown: the evaluator's NECP descriptor must be closed too.
            if let Ok(fd) = necp
                && !self.faults.has(Fault::Wifip2pdFdLeakEmfile)
            {
                let _ = owner.fds().close(fd);
            }
            self.log.log(
                &LogSource::kernel(),
                0x611,
                LogType::Default,
                "nan0: handleDataPathTerminated: NAN-DP Data path TERMINATED".into(),
            );
        }
        self.summary.leaked_fds = owner.fds().count().saturating_sub(baseline);
    }

    // --------------------------------------------------------------- proxy burst

    fn proxy_burst(&mut self) {
        const NAME: &str = "com.example.proxy.extension";
        let owner = self.mgr.owner(811, NAME);
        let net = LogSource::process(NAME, 811)
            .sender("libnetwork.dylib")
            .subsystem("com.apple.network", "connection");
        let mut open: Vec<FlowEntryRef> = Vec::new();
        let mut waiting: Vec<(u32, WaitTicket, FlowRequest)> = Vec::new();
        for _ in 0..600 {
            if self.halted() {
                return;
            }
            self.tick(1_500);
            let c = self.next_conn;
            self.next_conn += 1;
            let remote = self.rng.remote_v4();
            match self.open_tcp(&owner, remote, 443, OpenMode::Queue) {
                (_, Some(OpenResult::Opened(fe))) => {
                    self.log.log(
                        &net,
                        0x9c01,
                        LogType::Default,
                        format!("nw_connection_report_state_with_handler_on_nw_queue [C{c}] reporting state ready"),
                    );
                    open.push(fe);
                }
                (req, Some(OpenResult::Waiting(t))) => {
                    self.log.log(
                        &net,
                        0x9c01,
                        LogType::Default,
                        format!("nw_connection_report_state_with_handler_on_nw_queue [C{c}] reporting state waiting"),
                    );
                    waiting.push((c, t, req));
                }
                _ => {}
            }
        }
        // 200 connections finish; each close should admit a waiter.
        for _ in 0..200 {
            let Some(fe) = open.pop() else { break };
            self.tick(20_000);
            self.mgr.destroy(&owner, fe, false);
        }
        // Waiters retry when their path changes and on their retry timers.
        for _retry in 0..3 {
            self.tick(10_000_000);
            self.mgr.reap(self.log.clock().now_ms());
            let mut still = Vec::new();
            for (c, t, req) in waiting {
                match self.mgr.complete_open(&owner, t, &req) {
                    Ok(Some(fe)) => {
                        self.summary.flows_opened += 1;
                        self.log.log(
                            &net,
                            0x9c01,
                            LogType::Default,
                            format!("nw_connection_report_state_with_handler_on_nw_queue [C{c}] reporting state ready"),
                        );
                        open.push(fe);
                    }
                    Ok(None) => {
                        self.log.log(
                            &net,
                            0x9c01,
                            LogType::Error,
                            format!("nw_connection_report_state_with_handler_on_nw_queue [C{c}] reporting state waiting with error: [12: Cannot allocate memory]"),
                        );
                        still.push((c, t, req));
                    }
                    Err(_) => {}
                }
            }
            waiting = still;
        }
        self.summary.stuck_connections += waiting.len();
        // The proxy gives up on the stuck ones and closes everything.
        for (_, t, _) in waiting {
            owner.cancel(t, self.faults);
        }
        for fe in open {
            self.mgr.destroy(&owner, fe, false);
        }
        self.tick(5_000_000);
        self.mgr.reap(self.log.clock().now_ms());
    }

    // ------------------------------------------------------------ VPN sleep/wake

    fn vpn_sleep_wake(&mut self) {
        let mut s = VpnSession::new(
            "Primary Tunnel:Secure DNS",
            562,
            Arc::clone(&self.log),
            self.faults,
        );
        let provider = self.mgr.owner(640, "com.example.vpn.PacketTunnel");
        s.request_start(StartSource::OnDemand { pid: 5454 });
        s.step(8);
        s.provider_started();
        // The tunnel's flow to the VPN server.
        let server = self.rng.remote_v4();
        let (_, tunnel) = self.open_tcp(&provider, server, 4500, OpenMode::NonBlocking);
        let mut tunnel = match tunnel {
            Some(OpenResult::Opened(fe)) => Some(fe),
            _ => None,
        };
        self.tick(60_000_000);
        // Sleep: the tunnel goes down with its flow.
        s.sleep();
        if let Some(fe) = tunnel.take() {
            self.mgr.destroy(&provider, fe, true);
        }
        self.tick(900_000_000);
        s.wake();
        s.request_start(StartSource::OnDemand { pid: 5454 });
        for pid in [5454, 5454, 5446, 5446] {
            s.request_start(StartSource::OnDemand { pid });
        }
        s.request_start(StartSource::App {
            name: "Spotify Helper".into(),
            pid: 69038,
        });
        for i in 0..1200 {
            s.step(4);
            self.tick(900);
            if i % 40 == 39 {
                s.provider_started();
                if s.state() == SessionState::Connected && tunnel.is_none() {
                    let server = self.rng.remote_v4();
                    if let (_, Some(OpenResult::Opened(fe))) =
                        self.open_tcp(&provider, server, 4500, OpenMode::NonBlocking)
                    {
                        tunnel = Some(fe);
                    }
                }
            }
            if s.queued() == 0 && s.state() == SessionState::Connected {
                break;
            }
        }
        self.summary.skipped_starts = s.skipped();
        self.summary.vpn_state = Some(s.state().as_str());
        if let Some(fe) = tunnel.take() {
            self.mgr.destroy(&provider, fe, true);
        }
    }

    // ---------------------------------------------------------------- prefork

    fn prefork(&mut self, host: &PanicHost) {
        let locks = PathLocks::new();
        for _worker in 0..4 {
            self.tick(250_000);
            locks.evaluate();
            match simulate_fork_race(&locks, self.faults) {
                ForkOutcome::Completed => {}
                ForkOutcome::Deadlock => {
                    self.summary.hang = true;
                    let now = self.log.clock().now_us();
                    self.hang = Some(OutputFile {
                        name: format!("ruby_{}.sample.txt", file_stamp(now)),
                        contents: render_fork_hang_sample(now, host),
                    });
                    return;
                }
            }
        }
    }

    // ----------------------------------------------------------- divert churn

    fn divert_churn(&mut self) {
        const PROVIDER: &str = "com.example.vpn.extension";
        let apps: [(&str, u32); 4] = [
            ("Safari", 1201),
            ("Slack Helper", 1302),
            ("Spotify Helper", 69038),
            ("Mail", 1410),
        ];
        let u1 = self.divert.kctl_setup(0, true, 700).unwrap_or(1);
        let u2 = self.divert.kctl_setup(0, true, 700).unwrap_or(2);
        let _ = self.divert.group_init(u1, 0, 10);
        let _ = self.divert.group_init(u2, 0, 20);
        let mut sockets: BTreeMap<u32, Socket> = BTreeMap::new();
        let mut plain: Vec<Socket> = Vec::new();
        for round in 0..3 {
            for (name, pid) in apps {
                let owner = self.mgr.owner(pid, name);
                for _ in 0..15 {
                    self.tick(3_000);
                    let remote = self.rng.remote_v4();
                    let (_, res) = self.open_tcp(&owner, remote, 443, OpenMode::NonBlocking);
                    let Some(OpenResult::Opened(fe)) = res else {
                        continue;
                    };
                    let pcb = self
                        .divert
                        .pcb_create(u1, 1 << (u2 - 1), 0, Some(fe.clone()));
                    if self.divert.pcb_insert(&pcb, u1).is_err() {
                        plain.push(Socket {
                            owner: Arc::clone(&owner),
                            flow: fe,
                            pcb: None,
                        });
                        continue;
                    }
                    let rejected = self.rng.below(8) == 0;
                    match self
                        .divert
                        .handle_connect_result(&pcb, if rejected { 61 } else { 0 })
                    {
                        ConnectOutcome::Moved { .. } => self.summary.divert_moves += 1,
                        ConnectOutcome::Disabled => self.summary.divert_disabled += 1,
                        _ => {}
                    }
                    self.divert.account(
                        &pcb,
                        1200 + self.rng.below(90_000),
                        4000 + self.rng.below(900_000),
                    );
                    let sock = Socket {
                        owner: Arc::clone(&owner),
                        flow: fe,
                        pcb: Some(Arc::clone(&pcb)),
                    };
                    if pcb.is_diverted() {
                        sockets.insert(pcb.hash(), sock);
                    } else {
                        plain.push(sock);
                    }
                }
            }
            // Half of the diverted sockets close normally.
            let closing: Vec<u32> = sockets
                .keys()
                .copied()
                .filter(|_| self.rng.below(2) == 0)
                .collect();
            for h in closing {
                if let Some(sock) = sockets.remove(&h) {
                    self.tick(40_000);
                    self.close_socket(sock);
                }
            }
            if round == 1 {
                // Sleep: the provider's control socket for unit 1 closes while apps'
                // flows are being torn down.
                self.tick(30_000_000);
                self.panic_proc = (700, PROVIDER.chars().take(16).collect());
                let faults = self.faults;
                let World { divert, mgr, .. } = self;
                let _ = divert.kctl_disconnect(u1, |pcb| {
                    let Some(sock) = sockets.remove(&pcb.hash()) else {
                        return;
                    };
                    let socket_ref = sock.flow;
                    if let Some(pcb_ref) = pcb.take_flow() {
                        if faults.has(Fault::SkmemSlabDoubleFree) {
                            // Divert close decrements …
                            let half = pcb_ref.release_split();
                            // … flow teardown runs on another CPU and frees …
                            mgr.destroy(&sock.owner, socket_ref, true);
                            // … and divert close re-reads 0 and frees again.
                            half.finish();
                            return;
                        }
                        drop(pcb_ref);
                    }
                    mgr.destroy(&sock.owner, socket_ref, true);
                });
                if self.halted() {
                    self.panic_time_us = self.log.clock().now_us();
                    // The machine is down: nothing else is written.
                    std::mem::forget(sockets);
                    std::mem::forget(plain);
                    return;
                }
                // Wake: the provider comes back on the first free unit.
                self.tick(600_000_000);
                if let Ok(u) = self.divert.kctl_setup(0, true, 700) {
                    let _ = self.divert.group_init(u, 0, 10);
                }
            }
        }
        for (_, sock) in std::mem::take(&mut sockets) {
            self.tick(10_000);
            self.close_socket(sock);
        }
        for sock in plain {
            self.close_socket(sock);
        }
        for u in [u1, u2] {
            let _ = self.divert.kctl_disconnect(u, |_| {});
        }
    }

    fn close_socket(&mut self, sock: Socket) {
        if let Some(pcb) = &sock.pcb {
            self.divert.detach(pcb);
            drop(pcb.take_flow());
        }
        self.mgr.destroy(&sock.owner, sock.flow, false);
    }
}

/// `YYYY-MM-DD-HHMMSS` for file names.
fn file_stamp(time_us: u64) -> String {
    let t = format_timestamp(time_us);
    // "2026-11-21 07:30:22.481498+0000"
    let date = t.get(..10).unwrap_or("1970-01-01");
    let hms: String = t.get(11..19).unwrap_or("00:00:00").replace(':', "");
    format!("{date}-{hms}")
}

/// A `sample`-style call graph of the hung pre-forking server.
fn render_fork_hang_sample(time_us: u64, host: &PanicHost) -> String {
    let ts = format_timestamp(time_us);
    let when = format!("{} +0000", ts.get(..23).unwrap_or(&ts));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Analysis of sampling ruby (pid 4242) every 1 millisecond"
    );
    let _ = writeln!(s, "Process:         ruby [4242]");
    let _ = writeln!(
        s,
        "Path:            /opt/homebrew/Cellar/ruby/3.4.1/bin/ruby"
    );
    let _ = writeln!(s, "Load Address:    0x100bd8000");
    let _ = writeln!(s, "Identifier:      ruby");
    let _ = writeln!(s, "Version:         ???");
    let _ = writeln!(s, "Code Type:       ARM64");
    let _ = writeln!(s, "Platform:        macOS");
    let _ = writeln!(s, "Parent Process:  zsh [4102]");
    let _ = writeln!(s);
    let _ = writeln!(s, "Date/Time:       {when}");
    let _ = writeln!(s, "Launch Time:     {when}");
    let _ = writeln!(
        s,
        "OS Version:      macOS {} ({})",
        host.os_version, host.os_build
    );
    let _ = writeln!(s, "Report Version:  7");
    let _ = writeln!(s, "Analysis Tool:   /usr/bin/sample");
    let _ = writeln!(s);
    let _ = writeln!(s, "Physical footprint:         38.2M");
    let _ = writeln!(s, "Physical footprint (peak):  38.9M");
    let _ = writeln!(s, "Idle exit:                  untracked");
    let _ = writeln!(s, "----");
    let _ = writeln!(s);
    let _ = writeln!(s, "Call graph:");
    let lines = [
        "    2519 Thread_1048576   DispatchQueue_1: com.apple.main-thread  (serial)",
        "    + 2519 start  (in dyld) + 6076  [0x18a7c2b98]",
        "    +   2519 main  (in ruby) + 92  [0x100bdbf1c]",
        "    +     2519 ruby_run_node  (in libruby.3.4.dylib) + 96  [0x1014a2e40]",
        "    +       2519 rb_f_fork  (in libruby.3.4.dylib) + 40  [0x1013f8a28]",
        "    +         2519 rb_fork_ruby  (in libruby.3.4.dylib) + 212  [0x1013f8894]",
        "    +           2519 fork  (in libsystem_c.dylib) + 20  [0x18a8a1a4c]",
        "    +             2519 libSystem_atfork_prepare  (in libSystem.B.dylib) + 36  [0x19a3b4e10]",
        "    +               2519 nw_path_prepare_fork  (in Network) + 56  [0x18f28c3f8]",
        "    +                 2519 _os_unfair_lock_lock_slow  (in libsystem_platform.dylib) + 196  [0x18ab02f54]",
        "    +                   2519 __ulock_wait2  (in libsystem_kernel.dylib) + 8  [0x18aac1ea8]",
        "    2519 Thread_1048611   DispatchQueue_57: com.apple.network.connections  (serial)",
        "    + 2519 start_wqthread  (in libsystem_pthread.dylib) + 8  [0x18ab0bb80]",
        "    +   2519 _pthread_wqthread  (in libsystem_pthread.dylib) + 292  [0x18ab0ce28]",
        "    +     2519 _dispatch_workloop_worker_thread  (in libdispatch.dylib) + 692  [0x18a99c3a4]",
        "    +       2519 _dispatch_lane_invoke  (in libdispatch.dylib) + 392  [0x18a98f9e8]",
        "    +         2519 nw_path_evaluator_evaluate  (in Network) + 540  [0x18f1d2a1c]",
        "    +           2519 nw_path_shared_necp_fd  (in Network) + 84  [0x18f1c4e54]",
        "    +             2519 _os_unfair_lock_lock_slow  (in libsystem_platform.dylib) + 196  [0x18ab02f54]",
        "    +               2519 __ulock_wait2  (in libsystem_kernel.dylib) + 8  [0x18aac1ea8]",
    ];
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Total number in stack (recursive counted multiple, when >=5):"
    );
    let _ = writeln!(
        s,
        "        5038       __ulock_wait2  (in libsystem_kernel.dylib) + 0  [0x18aac1ea0]"
    );
    let _ = writeln!(
        s,
        "        5038       _os_unfair_lock_lock_slow  (in libsystem_platform.dylib) + 0  [0x18ab02e90]"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Sort by top of stack, same collapsed (when >= 5):");
    let _ = writeln!(
        s,
        "        __ulock_wait2  (in libsystem_kernel.dylib)        5038"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Binary Images:");
    let _ = writeln!(
        s,
        "       0x100bd8000 -        0x100bdbfff +ruby (0) <5d1f1a1e-8f0a-3a55-9c62-1b0f3a7c2e11> /opt/homebrew/Cellar/ruby/3.4.1/bin/ruby"
    );
    let _ = writeln!(
        s,
        "       0x18f0a4000 -        0x18f7d3fff  com.apple.Network (1.0 - 1) <0b5e1c3d-2a4f-3e6b-8c7d-9e0f1a2b3c4d> /System/Library/Frameworks/Network.framework/Versions/A/Network"
    );
    let _ = writeln!(
        s,
        "       0x18ab00000 -        0x18ab08fff  libsystem_platform.dylib (349) <a1b2c3d4-e5f6-3a7b-8c9d-0e1f2a3b4c5d> /usr/lib/system/libsystem_platform.dylib"
    );
    s
}

/// Runs `scenario` with `cfg`.
pub fn run(scenario_name: &str, cfg: &SimConfig) -> Result<SimOutput, SimError> {
    let sc =
        scenario(scenario_name).ok_or_else(|| SimError::UnknownScenario(scenario_name.into()))?;
    let host = PanicHost::default();
    let mut w = World::new(cfg, sc);
    for part in sc.parts {
        if w.halted() {
            // The kernel panicked: the machine is down.
            break;
        }
        match part {
            Part::NdpCycles => w.ndp_cycles(),
            Part::ProxyBurst => w.proxy_burst(),
            Part::VpnSleepWake => w.vpn_sleep_wake(),
            Part::Prefork => w.prefork(&host),
            Part::DivertChurn => w.divert_churn(),
        }
    }
    let mut files = Vec::new();
    let panic = w.mgr.panic_record();
    if panic.is_none() {
        // Orderly shutdown: every flow goes, lingering ones too.
        w.mgr.terminate();
        w.summary.cache_in_use_at_end = w.mgr.stats().cache.in_use;
    } else {
        w.summary.cache_in_use_at_end = w.mgr.stats().cache.in_use;
    }
    let records = w.log.records();
    w.summary.log_records = records.len();
    files.push(OutputFile {
        name: "log-show.txt".into(),
        contents: render_log_show(&records),
    });
    if let Some(p) = &panic {
        let t = if w.panic_time_us == 0 {
            w.log.clock().now_us()
        } else {
            w.panic_time_us
        };
        let slide = 0x3460_0000 + (w.rng.below(0x400) << 14);
        let cx = PanicContext {
            cpu: w.rng.below(u64::from(host.ncpu)) as u32,
            caller: 0xffff_fe00_0756_8224 + slide,
            pid: w.panic_proc.0,
            process: w.panic_proc.1.clone(),
            tid: 0x1f_4a00 + w.rng.below(0x1000),
            time_us: t,
            slide,
            backtrace: [
                0x7568224u64,
                0x7567e90,
                0x755a1c4,
                0x7a3c9f0,
                0x7a3d6b8,
                0x7e12a44,
                0x7e11c30,
                0x7f0b4c8,
                0x71c5e10,
            ]
            .iter()
            .map(|o| 0xffff_fe00_0000_0000 + o + slide)
            .collect(),
        };
        let (name, contents) = match cfg.panic_format {
            PanicFormat::Ips => (
                format!("panic-full-{}.0002.ips", file_stamp(t)),
                render_panic_ips(p, &host, &cx, &incident_id(cfg.seed)),
            ),
            PanicFormat::Text => (
                format!("Kernel-{}.panic", file_stamp(t)),
                render_panic_text(p, &host, &cx),
            ),
        };
        files.push(OutputFile { name, contents });
    }
    w.summary.panic = panic;
    if let Some(h) = w.hang.take() {
        files.push(h);
    }
    Ok(SimOutput {
        files,
        summary: w.summary,
    })
}

fn incident_id(seed: u64) -> String {
    let mut r = Rng(seed ^ 0x1dc1_de17);
    let a = r.next();
    let b = r.next();
    format!(
        "{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn go(name: &str, faults: &[Fault]) -> SimOutput {
        run(
            name,
            &SimConfig {
                faults: FaultSet::of(faults),
                seed: 7,
                panic_format: PanicFormat::Ips,
            },
        )
        .unwrap()
    }

    fn file<'a>(o: &'a SimOutput, suffix: &str) -> Option<&'a OutputFile> {
        o.files.iter().find(|f| f.name.ends_with(suffix))
    }

    #[test]
    fn fault_free_runs_are_clean() {
        for sc in SCENARIOS {
            let o = go(sc.name, &[]);
            assert!(o.summary.is_clean(), "{}:\n{}", sc.name, o.summary.render());
            assert_eq!(o.files.len(), 1, "{}", sc.name);
            let log = &file(&o, "log-show.txt").unwrap().contents;
            for bad in [
                "Cannot allocate memory",
                "Too many open files",
                "No more valid control units",
                "Skipped all flow divert services",
                "skmem_slab_free_locked",
            ] {
                assert!(!log.contains(bad), "{} contains {bad}", sc.name);
            }
        }
    }

    #[test]
    fn every_fault_breaks_its_focused_scenario_and_workday() {
        for f in Fault::ALL {
            for sc in [focused_scenario(f), "workday"] {
                let o = go(sc, &[f]);
                assert!(!o.summary.is_clean(), "{f} in {sc} stayed clean");
            }
        }
    }

    #[test]
    fn runs_are_deterministic() {
        let a = go("workday", &[Fault::NwConnectionEnomem]);
        let b = go("workday", &[Fault::NwConnectionEnomem]);
        assert_eq!(a.files, b.files);
    }

    #[test]
    fn double_free_fault_panics_in_kernel_format() {
        let o = go("divert-churn", &[Fault::SkmemSlabDoubleFree]);
        let p = o.summary.panic.clone().unwrap();
        assert!(p.message.starts_with(
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x"
        ));
        let ips = file(&o, ".ips").unwrap();
        assert!(ips.name.starts_with("panic-full-2026-11-21-"));
        assert!(ips.contents.contains("on skm 0x"));
        assert!(ips.contents.contains("@skmem_slab.c:646\\nDebugger message: panic\\nMemory ID: 0xff\\nOS release type: User\\nOS version: 25D2128\\n"));
    }

    #[test]
    fn each_fault_reproduces_its_failure() {
        let o = go("proxy-burst", &[Fault::NwConnectionEnomem]);
        assert!(o.summary.stuck_connections > 0);
        let log = &file(&o, "log-show.txt").unwrap().contents;
        assert!(log.contains("reporting state waiting with error: [12: Cannot allocate memory]"));

        let o = go("ndp-cycles", &[Fault::Wifip2pdFdLeakEmfile]);
        assert!(o.summary.emfile_failures > 0);
        let log = &file(&o, "log-show.txt").unwrap().contents;
        for needle in [
            "wifip2pd: (Network) [com.apple.network:path] nw_path_shared_necp_fd necp_open failed [24: Too many open files]",
            "wifip2pd: [com.apple.WiFiP2P:datapath] Failed to create socket: Too many open files",
            "File descriptor is bad, could not create socket",
            "because <Apple80211Error Bad file descriptor>",
        ] {
            assert!(log.contains(needle), "missing {needle}");
        }

        let o = go("vpn-sleep-wake", &[Fault::NesmVpnStartStorm]);
        assert_eq!(o.summary.vpn_state, Some("connecting"));
        let log = &file(&o, "log-show.txt").unwrap().contents;
        assert!(
            log.matches("NESMVPNSession[Primary Tunnel:Secure DNS: Skip a start command from Spotify Helper[69038]: session in state connecting").count()
                > 300
        );

        let o = go("prefork-server", &[Fault::AtforkNwPathPrepareDeadlock]);
        let s = file(&o, ".sample.txt").unwrap();
        assert!(s.contents.contains("libSystem_atfork_prepare"));
        assert!(s.contents.contains("nw_path_prepare_fork"));

        let o = go("divert-churn", &[Fault::FlowDivertNoControlUnits]);
        assert!(o.summary.divert_disabled > 0);
        let log = &file(&o, "log-show.txt").unwrap().contents;
        assert!(log.contains("): No more valid control units, disabling flow divert"));
        assert!(log.contains("): Skipped all flow divert services, disabling flow divert"));
        assert_eq!(o.summary.cache_in_use_at_end, 0);
    }
}

//! The VPN session state machine of `nesessionmanager` (`NESMVPNSession`): start commands,
//! On Demand triggers, sleep and wake.
//!
//! While a session is `connecting`, further start commands are skipped
//! (`Skip a start command from …: session in state connecting`). The field bug
//! (`nesm-vpn-start-storm`) re-queues every skipped command after wake, so the same
//! commands come back at once, forever, and the provider's start never completes.

use std::collections::VecDeque;

use crate::fault::{Fault, FaultSet};
use crate::log::{LogSink, LogSource, LogType};
use crate::sync::Arc;

/// `NESMVPNSession` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// `disconnected`.
    Disconnected,
    /// `connecting`.
    Connecting,
    /// `connected`.
    Connected,
    /// `disconnecting`.
    Disconnecting,
}

impl SessionState {
    /// The word nesessionmanager logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Disconnected => "disconnected",
            SessionState::Connecting => "connecting",
            SessionState::Connected => "connected",
            SessionState::Disconnecting => "disconnecting",
        }
    }
}

/// Who asked for a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartSource {
    /// An On Demand trigger from a process (`got On Demand start message from pid N`).
    OnDemand {
        /// Triggering pid.
        pid: u32,
    },
    /// An explicit start command from an app (`Received a start command from Name[pid]`).
    App {
        /// Process name.
        name: String,
        /// Pid.
        pid: u32,
    },
}

/// One VPN session.
#[derive(Debug)]
pub struct VpnSession {
    name: String,
    state: SessionState,
    queue: VecDeque<StartSource>,
    faults: FaultSet,
    log: Arc<LogSink>,
    source: LogSource,
    skipped: u64,
    provider_pending: bool,
    asleep: bool,
}

impl VpnSession {
    /// A disconnected session named like `Primary Tunnel:Secure DNS`, logging as
    /// nesessionmanager (`pid`).
    pub fn new(name: &str, pid: u32, log: Arc<LogSink>, faults: FaultSet) -> Self {
        VpnSession {
            name: name.into(),
            state: SessionState::Disconnected,
            queue: VecDeque::new(),
            faults,
            log,
            source: LogSource::process("nesessionmanager", pid)
                .subsystem("com.apple.networkextension", "session"),
            skipped: 0,
            provider_pending: false,
            asleep: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Start commands skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Commands waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn say(&self, kind: LogType, msg: String) {
        self.log.log(
            &self.source,
            0x5a1c,
            kind,
            format!("NESMVPNSession[{}: {msg}", self.name),
        );
    }

    fn set_state(&mut self, s: SessionState) {
        if self.state != s {
            self.state = s;
            self.say(
                LogType::Default,
                format!("status changed to {}", s.as_str()),
            );
        }
    }

    /// A start request arrives (queued; [`VpnSession::step`] handles it).
    pub fn request_start(&mut self, src: StartSource) {
        self.queue.push_back(src);
    }

    /// The system goes to sleep: the tunnel is torn down.
    pub fn sleep(&mut self) {
        self.asleep = true;
        if self.state == SessionState::Connected {
            self.set_state(SessionState::Disconnecting);
            self.set_state(SessionState::Disconnected);
        }
    }

    /// The system wakes: On Demand will trigger starts again.
    pub fn wake(&mut self) {
        self.asleep = false;
    }

    /// Handles up to `budget` queued commands. Returns how many were handled.
    pub fn step(&mut self, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(cmd) = self.queue.pop_front() else {
                break;
            };
            n += 1;
            let who = match &cmd {
                StartSource::OnDemand { pid } => {
                    self.say(
                        LogType::Default,
                        format!("got On Demand start message from pid {pid}"),
                    );
                    format!("pid {pid}")
                }
                StartSource::App { name, pid } => {
                    self.say(
                        LogType::Default,
                        format!("Received a start command from {name}[{pid}]"),
                    );
                    format!("{name}[{pid}]")
                }
            };
            match self.state {
                SessionState::Disconnected if !self.asleep => {
                    self.set_state(SessionState::Connecting);
                    self.provider_pending = true;
                }
                SessionState::Connecting => {
                    self.skipped += 1;
                    if let StartSource::App { .. } = cmd {
                        self.say(
                            LogType::Default,
                            format!("Skip a start command from {who}: session in state connecting"),
                        );
                    }
                    if self.faults.has(Fault::NesmVpnStartStorm) {
                        // The bug: the skipped command goes straight back on the queue.
                        self.queue.push_back(cmd);
                    }
                }
                _ => {}
            }
        }
        n
    }

    /// The provider reports the tunnel up. With the storm running, the queue never
    /// drains, so the completion is starved and the session stays `connecting`.
    pub fn provider_started(&mut self) {
        if self.state == SessionState::Connecting && self.provider_pending {
            if self.faults.has(Fault::NesmVpnStartStorm) && !self.queue.is_empty() {
                return;
            }
            self.provider_pending = false;
            self.set_state(SessionState::Connected);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::log::Clock;

    fn run(faults: FaultSet) -> (VpnSession, Arc<LogSink>) {
        let log = Arc::new(LogSink::new(Arc::new(Clock::new(0))));
        let mut s = VpnSession::new("Primary Tunnel:Secure DNS", 562, Arc::clone(&log), faults);
        s.request_start(StartSource::OnDemand { pid: 5454 });
        s.step(10);
        s.provider_started();
        assert_eq!(s.state(), SessionState::Connected);
        s.sleep();
        s.wake();
        s.request_start(StartSource::OnDemand { pid: 5454 });
        s.request_start(StartSource::App {
            name: "Spotify Helper".into(),
            pid: 69038,
        });
        s.request_start(StartSource::OnDemand { pid: 5446 });
        for _ in 0..100 {
            s.step(10);
            s.provider_started();
        }
        (s, log)
    }

    #[test]
    fn healthy_session_connects_after_wake() {
        let (s, log) = run(FaultSet::none());
        assert_eq!(s.state(), SessionState::Connected);
        assert_eq!(s.queued(), 0);
        assert_eq!(
            log.count_containing(
                "NESMVPNSession[Primary Tunnel:Secure DNS: Skip a start command from Spotify Helper[69038]: session in state connecting"
            ),
            1
        );
    }

    #[test]
    fn storm_fault_loops_while_connecting() {
        let (s, log) = run(FaultSet::of(&[Fault::NesmVpnStartStorm]));
        assert_eq!(s.state(), SessionState::Connecting);
        assert!(s.skipped() > 200);
        assert!(log.count_containing("got On Demand start message from pid 5446") > 100);
    }
}

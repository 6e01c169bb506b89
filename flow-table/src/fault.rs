//! The run-time fault set: each fault re-creates one field failure (named by its
//! known-issue id from `field-failures.md`). All faults are off by default.

use std::fmt;
use std::str::FromStr;

/// One injectable field bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Flow divert's close path drops its flow reference with a decrement followed by a
    /// separate re-read of the count, so when it races flow teardown both sides see 0
    /// and both free the entry: the skmem double-free panic.
    SkmemSlabDoubleFree,
    /// Closing a flow does not wake the owner's waiters, so opens that hit the per-owner
    /// flow limit stay waiting with ENOMEM forever.
    NwConnectionEnomem,
    /// Each connect/teardown cycle leaks one descriptor (the NECP fd of the path
    /// evaluator is never closed) until the descriptor table is full (EMFILE).
    Wifip2pdFdLeakEmfile,
    /// After wake the VPN session re-queues start commands while "connecting" instead of
    /// coalescing them: a start-command storm.
    NesmVpnStartStorm,
    /// The atfork prepare handler takes the path lock before the evaluator lock, the
    /// reverse of every other path: a fork racing path evaluation deadlocks.
    AtforkNwPathPrepareDeadlock,
    /// The aggregate-unit derivation clears every candidate unit instead of only the one
    /// it picked, so failover finds no valid control unit and flow divert disables itself.
    FlowDivertNoControlUnits,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::SkmemSlabDoubleFree,
        Fault::NwConnectionEnomem,
        Fault::Wifip2pdFdLeakEmfile,
        Fault::NesmVpnStartStorm,
        Fault::AtforkNwPathPrepareDeadlock,
        Fault::FlowDivertNoControlUnits,
    ];

    /// The fault's name, which is the known-issue id it reproduces.
    pub fn name(self) -> &'static str {
        match self {
            Fault::SkmemSlabDoubleFree => "skmem-slab-double-free",
            Fault::NwConnectionEnomem => "nw-connection-enomem",
            Fault::Wifip2pdFdLeakEmfile => "wifip2pd-fd-leak-emfile",
            Fault::NesmVpnStartStorm => "nesm-vpn-start-storm",
            Fault::AtforkNwPathPrepareDeadlock => "atfork-nw-path-prepare-deadlock",
            Fault::FlowDivertNoControlUnits => "flow-divert-no-control-units",
        }
    }

    /// One-line description for `flowsim list`.
    pub fn summary(self) -> &'static str {
        match self {
            Fault::SkmemSlabDoubleFree => {
                "divert close races flow teardown; both free the flow entry (skmem panic)"
            }
            Fault::NwConnectionEnomem => {
                "closing a flow does not wake waiters blocked on the per-owner flow limit"
            }
            Fault::Wifip2pdFdLeakEmfile => {
                "one NECP descriptor leaked per NDP connect/teardown cycle until EMFILE"
            }
            Fault::NesmVpnStartStorm => {
                "VPN session re-queues start commands while connecting after wake"
            }
            Fault::AtforkNwPathPrepareDeadlock => {
                "atfork prepare handler takes path locks in the wrong order (fork hangs)"
            }
            Fault::FlowDivertNoControlUnits => {
                "aggregate unit derivation drops all units; failover disables flow divert"
            }
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault `{0}` (see `flowsim list`)")]
pub struct UnknownFault(pub String);

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault(s.to_string()))
    }
}

/// A set of enabled faults (empty by default). Cheap to copy and to test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet(u32);

impl FaultSet {
    /// No faults.
    pub const fn none() -> Self {
        FaultSet(0)
    }

    /// A set with `faults` enabled.
    pub fn of(faults: &[Fault]) -> Self {
        faults.iter().fold(FaultSet(0), |s, f| s.with(*f))
    }

    /// This set plus `f`.
    pub fn with(self, f: Fault) -> Self {
        FaultSet(self.0 | f.bit())
    }

    /// Whether `f` is enabled.
    pub fn has(self, f: Fault) -> bool {
        self.0 & f.bit() != 0
    }

    /// The enabled faults.
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        Fault::ALL.into_iter().filter(move |f| self.has(*f))
    }

    /// True when no fault is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_default_is_off() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
        }
        assert!("nope".parse::<Fault>().is_err());
        let s = FaultSet::default();
        assert!(Fault::ALL.iter().all(|f| !s.has(*f)));
        let s = FaultSet::of(&[Fault::NwConnectionEnomem]);
        assert!(s.has(Fault::NwConnectionEnomem));
        assert!(!s.has(Fault::SkmemSlabDoubleFree));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Fault::NwConnectionEnomem]
        );
    }
}

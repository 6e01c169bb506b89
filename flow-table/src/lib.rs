//! flow-table: a model of XNU's flowswitch flow table, flow owners and flow divert, with
//! the field bugs of `field-failures.md` switchable at run time.
//!
//! Main types:
//! * [`manager::FlowManager`]: the flow manager (`struct flow_mgr`): opens flows for
//!   [`owner::FlowOwner`]s (`flow_entry_alloc`), finds them by key trying the seven
//!   [`key::FlowMask`]s from most to least specific, destroys them (teardown, linger).
//! * [`entry::FlowEntryRef`]: a counted reference to a [`entry::FlowEntry`] with
//!   `os_refcnt` checks; the last release returns the entry's object to the alloc-core
//!   cache `skc.flow.entry`, whose audit mode catches a double free.
//! * [`cuckoo::CuckooTable`]: the concurrent bucketized cuckoo hash table.
//! * [`divert::FlowDivert`]: control units, groups, pcbs and the connect-result failover.
//! * [`session::VpnSession`], [`atfork::PathLocks`]: the VPN session state machine and
//!   Network's fork-handler lock order.
//! * [`fault::Fault`] / [`fault::FaultSet`]: the injectable bugs (off by default).
//! * [`sim`]: deterministic scenarios and the files `flowsim` writes.
//!
//! ```
//! use std::sync::Arc;
//! use flow_table::log::{Clock, LogSink};
//! use flow_table::manager::{FlowManager, FlowManagerConfig, FlowRequest, OpenResult};
//! use flow_table::owner::OpenMode;
//!
//! let log = Arc::new(LogSink::new(Arc::new(Clock::new(0))));
//! let mgr = FlowManager::new(FlowManagerConfig::default(), log);
//! let owner = mgr.owner(811, "proxy");
//! let req = FlowRequest::tcp(
//!     1,
//!     "10.0.0.2".parse().unwrap(),
//!     50000,
//!     "17.253.144.10".parse().unwrap(),
//!     443,
//! );
//! let Ok(OpenResult::Opened(fe)) = mgr.open(&owner, &req, OpenMode::NonBlocking) else {
//!     panic!("open failed");
//! };
//! assert_eq!(fe.refcnt(), 3); // caller + flow table + owner's id tree
//! let hit = mgr.find_by_key(fe.key()).expect("found"); // retained
//! assert_eq!(hit.addr(), fe.addr());
//! drop(hit);
//! mgr.destroy(&owner, fe, true); // teardown, out of the table and tree, freed
//! assert_eq!(mgr.stats().cache.in_use, 0);
//! assert!(mgr.panic_record().is_none());
//! ```
//!
//! # Safety and correctness
//!
//! `unsafe` is denied crate-wide except in [`cuckoo`], whose lock-free lookups turn slot
//! pointers back into references under an epoch pin (`crossbeam-epoch`); its module docs
//! state the invariants, each block has a `SAFETY` comment, and its unit tests run under
//! Miri (`cargo +nightly miri test -p flow-table --lib cuckoo`, with the `MIRIFLAGS` the
//! crate README gives for `crossbeam-epoch`). Every lock and atomic comes
//! from the private `sync` shim, which switches to loom under `--cfg loom`; the loom
//! models in `src/tests/loom_*.rs` cover retain/release racing teardown, cuckoo moves,
//! resizes and removals racing lock-free lookups, owner-limit waiters, flow divert group teardown and failover,
//! and the atfork lock order, and show each concurrency fault being caught.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod atfork;
pub mod cuckoo;
pub mod divert;
pub mod entry;
pub mod error;
pub mod fault;
pub mod flags;
pub mod key;
pub mod log;
pub mod manager;
pub mod objcache;
pub mod owner;
pub mod panic;
pub mod refcnt;
pub mod session;
pub mod sim;
mod sync;
#[cfg(test)]
mod tests;

pub use error::FlowError;

//! flowslab-fuzz: the bodies of the libFuzzer targets in `fuzz/` and their reference
//! models, as library code.
//!
//! Each target in `fuzz/fuzz_targets/` is one line that calls [`run_target`] (or the
//! module function directly), so the same code runs under libFuzzer (`cargo fuzz run`),
//! under ClusterFuzzLite, and on stable in `tests/replay.rs`, which replays every committed
//! corpus file and crash artifact.
//!
//! | target | body | oracle |
//! |---|---|---|
//! | `alloc_ops` | [`alloc::run`] | audit reports equal the model's misuse, stats agree, no leaks |
//! | `flow_ops` | [`flow::run`] | refcounts, owner/waiter/fd counts, failover, session, no leaks |
//! | `crashlog_parse_<family>` | [`parse::run`] | bounded model, renderable, chunking-invariant logs |
//! | `crashlog_roundtrip` | [`roundtrip::run`] | render → parse gives the same content |
//!
//! A failed oracle panics; the message starts with the target name.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod alloc;
pub mod bytes;
pub mod flow;
pub mod parse;
pub mod roundtrip;
pub mod seeds;

use parse::Family;

/// A harness body: panics when its oracle fails.
pub type Body = fn(&[u8]);

/// Every target: its name and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("alloc_ops", alloc::run),
    ("flow_ops", flow::run),
    ("crashlog_parse_auto", |d| parse::run(Family::Auto, d)),
    ("crashlog_parse_ips", |d| parse::run(Family::Ips, d)),
    ("crashlog_parse_panic", |d| parse::run(Family::Panic, d)),
    ("crashlog_parse_crash", |d| parse::run(Family::Crash, d)),
    ("crashlog_parse_stack", |d| parse::run(Family::Stack, d)),
    ("crashlog_parse_spindump", |d| {
        parse::run(Family::Spindump, d)
    }),
    ("crashlog_parse_log", |d| parse::run(Family::Log, d)),
    ("crashlog_roundtrip", roundtrip::run),
];

/// Runs the target called `name` on `data`; false if there is no such target.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}

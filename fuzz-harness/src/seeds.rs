//! Hand-written seed inputs for the operation targets, one per feature area. They are
//! what `fuzz/corpus/<target>/seed-*` holds (written by `cargo run -p flowslab-fuzz
//! --example write_seeds`); each is a valid, fault-free workload, and with the matching
//! fault switched on each makes the oracle fire (see `tests/replay.rs`).

use flow_table::fault::Fault;

/// One seed: a file name, the bytes, and the fault (if any) whose path it walks.
#[derive(Debug, Clone)]
pub struct Seed {
    /// File name under `fuzz/corpus/<target>/`.
    pub name: &'static str,
    /// The input.
    pub data: Vec<u8>,
    /// The flow-table fault this workload exposes when switched on.
    pub exposes: Option<Fault>,
}

/// Seeds for `flow_ops` (see [`crate::flow::OpTag`] for the encoding).
pub fn flow_ops() -> Vec<Seed> {
    let seed = |name, data: &[&[u8]], exposes| Seed {
        name,
        data: data.concat(),
        exposes,
    };
    vec![
        seed(
            "seed-owner-limit-waiters",
            &[
                &[0, 0, 0, 0],
                &[0, 0, 1, 0],
                &[0, 0, 2, 1],
                &[1, 0, 1],
                &[2, 0],
            ],
            Some(Fault::NwConnectionEnomem),
        ),
        seed(
            "seed-lookup-linger",
            &[&[0, 1, 3, 2], &[4, 3], &[4, 4], &[1, 0, 0], &[18, 255]],
            None,
        ),
        seed(
            "seed-divert-failover",
            &[
                &[0, 0, 0, 0],
                &[5, 1],
                &[5, 0],
                &[6, 0, 0, 0xff, 1],
                &[7, 0],
            ],
            Some(Fault::FlowDivertNoControlUnits),
        ),
        seed(
            "seed-divert-disconnect",
            &[
                &[0, 0, 0, 0],
                &[0, 1, 1, 0],
                &[5, 0],
                &[6, 0, 0, 0, 0],
                &[6, 1, 0, 0, 0],
                &[8, 0],
            ],
            Some(Fault::SkmemSlabDoubleFree),
        ),
        seed(
            "seed-vpn-sleep-wake",
            &[
                &[9, 0, 2],
                &[10, 3],
                &[13],
                &[11],
                &[12],
                &[9, 1, 1],
                &[10, 3],
            ],
            Some(Fault::NesmVpnStartStorm),
        ),
        seed(
            "seed-fds-ndp-cycle",
            &[
                &[14, 0],
                &[14, 0],
                &[14, 0],
                &[14, 0],
                &[14, 0],
                &[14, 0],
                &[15, 0, 0],
                &[16, 1],
            ],
            Some(Fault::Wifip2pdFdLeakEmfile),
        ),
        seed(
            "seed-fork",
            &[&[17]],
            Some(Fault::AtforkNwPathPrepareDeadlock),
        ),
    ]
}

/// Seeds for `crashlog_roundtrip`: bytes from a fixed xorshift stream that decode to
/// reports with frames and log rows.
pub fn crashlog_roundtrip() -> Vec<Seed> {
    const NAMES: [&str; 6] = [
        "seed-rt-0",
        "seed-rt-1",
        "seed-rt-2",
        "seed-rt-3",
        "seed-rt-4",
        "seed-rt-5",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::new();
    while out.len() < NAMES.len() {
        let data: Vec<u8> = (0..320)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if crate::roundtrip::run_checked(&data) {
            out.push(Seed {
                name: NAMES[out.len()],
                data,
                exposes: None,
            });
        }
    }
    out
}

/// Seeds for `alloc_ops`: valid workloads only (no misuse), so that the time to find each
/// misuse kind measures the fuzzer (see [`crate::alloc::OpTag`] for the encoding). The
/// first byte picks the object sizes.
pub fn alloc_ops() -> Vec<Seed> {
    let seed = |name, data: &[&[u8]]| Seed {
        name,
        data: data.concat(),
        exposes: None,
    };
    vec![
        seed(
            "seed-alloc-free",
            &[
                &[2],
                &[0, 0],
                &[0, 0],
                &[0, 1],
                &[1, 0, 0],
                &[0, 0],
                &[1, 1, 0],
                &[1, 0, 1],
            ],
        ),
        seed(
            "seed-batch",
            &[
                &[1],
                &[2, 0, 12],
                &[2, 1, 5],
                &[3, 0, 7],
                &[0, 2],
                &[3, 1, 16],
            ],
        ),
        seed(
            "seed-maintenance",
            &[
                &[3],
                &[2, 0, 16],
                &[3, 0, 8],
                &[4, 0],
                &[2, 0, 4],
                &[5, 0],
                &[6, 0, 0],
                &[7, 0],
                &[6, 0, 1],
            ],
        ),
        seed(
            "seed-three-caches",
            &[
                &[4],
                &[0, 0],
                &[0, 1],
                &[0, 2],
                &[1, 1, 0],
                &[4, 2],
                &[1, 2, 0],
                &[0, 0],
            ],
        ),
    ]
}

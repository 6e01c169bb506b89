//! Replays every committed corpus file and crash artifact (`fuzz/corpus/<target>/*`,
//! `fuzz/artifacts/<target>/*`) through the harness on stable, without libFuzzer; and
//! checks that each injected flow-table fault makes the `flow_ops` oracle fire on its
//! seed while the same seed is clean with the fault off.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use flow_table::fault::FaultSet;
use flowslab_fuzz::flow::{self, FaultMode, failure_text};
use flowslab_fuzz::{TARGETS, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn replay_corpora_and_artifacts() {
    let root = fuzz_dir();
    let mut total = 0;
    for (name, body) in TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty: every target needs committed seeds"
        );
        let artifacts = files(&root.join("artifacts").join(name));
        // Known bugs of other crates: the harness tolerates (or skips) them by default.
        let known = files(&root.join("known-bugs").join(name));
        for p in corpus.iter().chain(&artifacts).chain(&known) {
            let data = std::fs::read(p).unwrap();
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                panic!("{name}: {} fails (see the panic above)", p.display());
            }
            total += 1;
        }
    }
    assert!(total >= TARGETS.len(), "replayed only {total} inputs");
}

#[test]
fn committed_flow_seeds_are_current() {
    let dir = fuzz_dir().join("corpus/flow_ops");
    for s in seeds::flow_ops() {
        let on_disk = std::fs::read(dir.join(s.name)).unwrap_or_else(|e| {
            panic!(
                "fuzz/corpus/flow_ops/{}: {e} (run the write_seeds example)",
                s.name
            )
        });
        assert_eq!(on_disk, s.data, "fuzz/corpus/flow_ops/{} is stale", s.name);
    }
}

#[test]
fn each_fault_fires_on_its_seed_and_is_clean_when_off() {
    let seeds = seeds::flow_ops();
    for f in flow_table::fault::Fault::ALL {
        let seed = seeds
            .iter()
            .find(|s| s.exposes == Some(f))
            .unwrap_or_else(|| panic!("no seed exposes {f}"));
        flow::run_with(FaultMode::Off, &seed.data);
        let err = catch_unwind(|| flow::run_with(FaultMode::Fixed(FaultSet::of(&[f])), &seed.data))
            .expect_err(&format!("{f} on: the oracle did not fire on {}", seed.name));
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            msg.contains(failure_text(f)) && msg.contains(f.name()),
            "{f} on: fired with {msg:?}, expected {:?}",
            failure_text(f)
        );
    }
}

#[test]
fn fault_mode_parses_names() {
    assert_eq!(FaultMode::parse(""), Ok(FaultMode::Off));
    assert_eq!(FaultMode::parse("input"), Ok(FaultMode::Input));
    assert!(FaultMode::parse("no-such-fault").is_err());
    let all = flow_table::fault::Fault::ALL.map(|f| f.name()).join(",");
    assert_eq!(
        FaultMode::parse(&all),
        Ok(FaultMode::Fixed(FaultSet::of(
            &flow_table::fault::Fault::ALL
        )))
    );
}

/// Pseudo-random inputs (a fixed xorshift stream) through the round trip: every rendered
/// format must parse back to the same content.
#[test]
fn roundtrip_on_generated_reports() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut checked = 0;
    for n in 0..300 {
        let len = 16 + n % 400;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        checked += usize::from(flowslab_fuzz::roundtrip::run_checked(&data));
    }
    assert!(checked >= 100, "only {checked} of 300 inputs were checked");
}

/// One hand-made input per misuse kind: each is reported (the harness stops with
/// `found <kind>`), and without the stop the same input passes every oracle.
#[test]
fn each_misuse_kind_is_reported() {
    use flowslab_fuzz::alloc::{self, Misuse};
    let cases: [(Misuse, &[u8]); 6] = [
        // alloc, free, double free
        (Misuse::DoubleFree, &[2, 0, 0, 1, 0, 0, 8, 0, 0]),
        // foreign free
        (Misuse::Foreign, &[2, 9, 0, 40]),
        // alloc, interior free at +4
        (Misuse::Interior, &[2, 0, 0, 10, 0, 0, 3, 0]),
        // alloc in cache 1, free it to cache 0
        (Misuse::OtherCache, &[2, 0, 1, 11, 0, 1, 0]),
        // alloc ×2, free one (into the magazine), write after free, alloc (hands it out)
        (
            Misuse::ModifiedAfterFree,
            &[
                2, 0, 0, 0, 0, 1, 0, 0, 12, 0, 0, 0, 0, 0x34, 0x12, 0x01, 0, 0,
            ],
        ),
        // end with a live object (config bit 7)
        (Misuse::NotEmpty, &[0x82, 0, 0]),
    ];
    for (kind, input) in cases {
        alloc::run_with(None, input);
        let err = catch_unwind(|| alloc::run_with(Some(kind), input))
            .expect_err(&format!("{}: not reported", kind.name()));
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("alloc_ops: found {}", kind.name())),
            "{}: {msg}",
            kind.name()
        );
    }
}

#[test]
fn committed_alloc_seeds_are_current() {
    let dir = fuzz_dir().join("corpus/alloc_ops");
    for s in seeds::alloc_ops() {
        let on_disk = std::fs::read(dir.join(s.name)).unwrap_or_else(|e| {
            panic!(
                "fuzz/corpus/alloc_ops/{}: {e} (run the write_seeds example)",
                s.name
            )
        });
        assert_eq!(on_disk, s.data, "fuzz/corpus/alloc_ops/{} is stale", s.name);
    }
}

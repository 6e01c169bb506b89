//! End to end: each flow-table fault, run in its focused flowsim scenario, writes files
//! that `crashlog triage` recognises as exactly the known issue the fault is named after;
//! the fault-free `workday` run claims no known issue.

use std::collections::BTreeSet;

use crashlog::triage::{NoProgress, Rules, Triage, TriageOptions, triage_paths};
use flow_table::fault::{Fault, FaultSet};
use flow_table::sim::{self, PanicFormat, SimConfig};

fn run_and_triage(scenario: &str, faults: FaultSet, panic_format: PanicFormat) -> Triage {
    let out = sim::run(
        scenario,
        &SimConfig {
            faults,
            seed: 1,
            panic_format,
        },
    )
    .expect("known scenario");
    let dir = tempfile::tempdir().expect("temp dir");
    for f in &out.files {
        std::fs::write(dir.path().join(&f.name), &f.contents).expect("write output");
    }
    triage_paths(
        &Rules::builtin(),
        &[dir.path().to_path_buf()],
        &TriageOptions::default(),
        &NoProgress,
    )
}

fn known_issues(t: &Triage) -> BTreeSet<String> {
    t.reports
        .iter()
        .filter_map(|r| r.known_issue.clone())
        .chain(t.findings.iter().filter_map(|f| f.known_issue.clone()))
        .collect()
}

#[test]
fn each_fault_is_triaged_as_its_known_issue() {
    for f in Fault::ALL {
        let t = run_and_triage(
            sim::focused_scenario(f),
            FaultSet::of(&[f]),
            PanicFormat::Ips,
        );
        assert!(t.errors.is_empty(), "{}: {:?}", f.name(), t.errors);
        assert_eq!(
            known_issues(&t),
            BTreeSet::from([f.name().to_string()]),
            "fault {} in {}",
            f.name(),
            sim::focused_scenario(f)
        );
    }
}

#[test]
fn panic_text_format_is_triaged_too() {
    let f = Fault::SkmemSlabDoubleFree;
    let t = run_and_triage(
        sim::focused_scenario(f),
        FaultSet::of(&[f]),
        PanicFormat::Text,
    );
    let panics: Vec<_> = t
        .reports
        .iter()
        .filter(|r| r.kind.as_str() == "panic")
        .collect();
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0].known_issue.as_deref(), Some(f.name()));
}

#[test]
fn fault_free_workday_claims_no_known_issue() {
    let t = run_and_triage("workday", FaultSet::none(), PanicFormat::Ips);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert!(t.log_entries > 0);
    assert_eq!(known_issues(&t), BTreeSet::new(), "{:?}", t.findings);
    assert!(t.reports.is_empty());
}

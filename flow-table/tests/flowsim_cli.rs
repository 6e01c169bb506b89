//! `flowsim` end to end: the binary's verbs, files and exit codes.

use std::process::Command;

fn flowsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowsim"))
}

#[test]
fn list_names_every_scenario_and_fault() {
    let out = flowsim().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "workday",
        "proxy-burst",
        "divert-churn",
        "ndp-cycles",
        "vpn-sleep-wake",
        "prefork-server",
        "skmem-slab-double-free",
        "nw-connection-enomem",
        "wifip2pd-fd-leak-emfile",
        "nesm-vpn-start-storm",
        "atfork-nw-path-prepare-deadlock",
        "flow-divert-no-control-units",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
}

#[test]
fn run_writes_the_panic_report_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowsim()
        .args([
            "run",
            "divert-churn",
            "--fault",
            "skmem-slab-double-free",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "log-show.txt");
    assert!(names[1].starts_with("panic-full-") && names[1].ends_with(".ips"));
    let ips = std::fs::read_to_string(dir.path().join(&names[1])).unwrap();
    assert!(
        ips.contains("): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x")
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("clean:               false"));
}

#[test]
fn text_panic_format_and_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowsim()
        .args(["run", "workday", "--panic-format", "text"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("flow.entry in use:   0"));
    assert!(summary.contains("clean:               true"));
    let log = std::fs::read_to_string(dir.path().join("log-show.txt")).unwrap();
    assert!(log.starts_with("Timestamp                       Thread     Type"));
    assert!(log.trim_end().ends_with("entries, done. **"));
}

#[test]
fn unknown_names_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowsim()
        .args(["run", "no-such-scenario", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario `no-such-scenario`"));
    let out = flowsim()
        .args(["run", "workday", "--fault", "nope", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

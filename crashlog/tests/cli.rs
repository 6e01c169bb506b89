//! The `crashlog` binary: JSON output, errors naming file and line, exit codes, help,
//! broken pipes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashlog"))
}

fn data(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)
}

#[test]
fn json_for_a_directory_with_errors_per_file() {
    let out = bin()
        .args(["parse", "--json"])
        .arg(data(""))
        .output()
        .unwrap();
    // Some files are deliberately bad: exit status 1, the rest still printed.
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(v["schema"], "crashlog.parse.v1");
    let reports = v["reports"].as_array().unwrap();
    let files = std::fs::read_dir(data("")).unwrap().count();
    // Every good file yields a report; the two forum posts with a panic yield two each
    // (panic + log).
    assert_eq!(reports.len(), files - 2 + 2);
    let kinds: Vec<&str> = reports
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for k in ["panic", "crash", "hang", "stack", "log"] {
        assert!(kinds.contains(&k), "no {k} report");
    }
    // Null, not omitted; hex strings for addresses.
    let ips = reports
        .iter()
        .find(|r| {
            r["source"]
                .as_str()
                .unwrap()
                .ends_with("crash-quic-309.ips")
        })
        .unwrap();
    assert!(ips.get("panic").unwrap().is_null());
    let f = &ips["threads"][7]["frames"][3];
    assert_eq!(f["address"], "0x18f671f34");
    assert_eq!(f["image_offset"], "0x2d1f34");
    assert_eq!(f["symbol_offset"], 180);
    assert!(f["file"].is_null());
    // Errors: file, line, stable kind.
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let trunc = errors
        .iter()
        .find(|e| {
            e["source"]
                .as_str()
                .unwrap()
                .ends_with("malformed-truncated.ips")
        })
        .unwrap();
    assert_eq!(trunc["line"], 21);
    assert_eq!(trunc["kind"], "invalid_json");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("malformed-truncated.ips:21: invalid JSON in .ips body: EOF while parsing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not-a-report.txt:1: unrecognized input"),
        "{stderr}"
    );
}

#[test]
fn text_summary_and_forced_format() {
    let out = bin()
        .arg("parse")
        .arg(data("panic-skmem-210.ips"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("panic-skmem-210.ips: panic (ips_panic, bug_type 210)"),
        "{s}"
    );
    assert!(s.contains(
        "Panic:       skmem_slab_free_locked: attempt to free invalid or already-freed obj"
    ));
    assert!(s.contains("Kext:        com.apple.iokit.IOSkywalkFamily(1.0)"));

    let out = bin()
        .args(["parse", "--format", "stack"])
        .arg(data("stack-quic-oneline.txt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("nw_protocol_data_access_buffer + 180")
    );

    // Forcing the wrong format is a per-file error naming file and line.
    let out = bin()
        .args(["parse", "--format", "spindump"])
        .arg(data("log-asl-nesm.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("log-asl-nesm.txt:1: not a spindump report"),
        "{err}"
    );
}

#[test]
fn streamed_log_json_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.log");
    let mut text = String::from(
        "Timestamp                       Thread     Type        Activity             PID    TTL\n",
    );
    for i in 0..5000 {
        text.push_str(&format!("2026-05-14 09:19:44.{i:06}+0200 0x1a2f3    Error       0x0                  213    0    wifip2pd: [com.apple.WiFiP2P:nan] Failed to create socket: Too many open files\n"));
    }
    text.push_str("  a continuation line\n");
    std::fs::write(&p, text).unwrap();
    let out = bin().args(["parse", "--json"]).arg(&p).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = v["reports"][0]["log"].as_array().unwrap();
    assert_eq!(log.len(), 5000);
    assert_eq!(
        log[4999]["message"],
        "Failed to create socket: Too many open files\n  a continuation line"
    );
    assert_eq!(log[0]["timestamp"], "2026-05-14T09:19:44+02:00");
    assert_eq!(v["reports"][0]["kind"], "log");
}

#[test]
fn help_has_examples() {
    let out = bin().args(["parse", "--help"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("Examples:"));
    assert!(s.contains("--format <FORMAT>"));
    assert!(s.contains("spindump"));
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_path_is_an_error_and_the_batch_goes_on() {
    let out = bin()
        .arg("parse")
        .arg(data("no-such-file.crash"))
        .arg(data("watchdog-409.ips"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("watchdog-409.ips: panic")
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no-such-file.crash: ")
    );
}

#[test]
fn broken_pipe_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.log");
    let line = "2026-05-14 09:19:44.902311+0200 0x1a2f3    Error       0x0                  213    0    wifip2pd: Failed to create socket: Too many open files\n";
    std::fs::write(&p, line.repeat(200_000)).unwrap();
    let mut child = bin()
        .arg("parse")
        .arg(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 1024];
    stdout.read_exact(&mut buf).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn stdin_dash() {
    for (input, want) in [
        (
            std::fs::read(data("stack-quic-oneline.txt")).unwrap(),
            "<stdin>: stack",
        ),
        (
            std::fs::read(data("log-compact-wifip2pd.log")).unwrap(),
            "7 log entries",
        ),
    ] {
        let mut child = bin()
            .args(["parse", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let s = String::from_utf8(out.stdout).unwrap();
        assert!(s.contains(want), "{s}");
    }
}

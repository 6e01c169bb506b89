//! Golden files lock the readable output, the JSON and `--help`. After an intended change,
//! regenerate with `UPDATE_GOLDEN=1 cargo test -p crashlog --test golden` and review the diff.

use std::path::Path;
use std::process::Command;

use crashlog::parse::parse_auto;
use crashlog::render::{JsonWriter, write_text};

fn check(name: &str, actual: &str) {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or(expected.lines().count().min(actual.lines().count()), |i| i);
        panic!(
            "{name} differs from the golden file at line {}:\n  expected: {:?}\n  actual:   {:?}",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)).unwrap()
}

#[test]
fn text_summaries() {
    for (sample, golden) in [
        ("panic-skmem-210.ips", "panic-skmem-210.txt"),
        ("crash-quic-ios.crash", "crash-quic-ios.txt"),
        ("hang-atfork.spindump.txt", "hang-atfork.spindump.txt"),
        ("forum-skmem-mixed.txt", "forum-skmem-mixed.txt"),
    ] {
        let mut out = Vec::new();
        for r in parse_auto(&data(sample)).unwrap() {
            write_text(&mut out, sample, &r).unwrap();
        }
        check(golden, &String::from_utf8(out).unwrap());
    }
}

#[test]
fn json_documents() {
    for (sample, golden) in [
        ("stack-quic-lines.txt", "stack-quic-lines.json"),
        ("log-compact-wifip2pd.log", "log-compact-wifip2pd.json"),
    ] {
        let mut j = JsonWriter::new(Vec::new()).unwrap();
        for r in parse_auto(&data(sample)).unwrap() {
            j.report(sample, &r).unwrap();
        }
        let out = j.finish().unwrap();
        // Pretty-print so the golden file diffs line by line.
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        check(golden, &(serde_json::to_string_pretty(&v).unwrap() + "\n"));
    }
}

#[test]
fn help() {
    let out = Command::new(env!("CARGO_BIN_EXE_crashlog"))
        .args(["parse", "--help"])
        .output()
        .unwrap();
    check("parse-help.txt", &String::from_utf8(out.stdout).unwrap());
}

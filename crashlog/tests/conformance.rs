//! Conformance: every file in `../shared/conformance/` parses, the legacy `.crash` fixtures
//! agree with apple-crash-report-parser's own snapshots, and the values pycrashreport's
//! tests assert (listed in `conformance/INDEX.md`) hold.

use std::path::{Path, PathBuf};

use crashlog::parse::{Format, parse, parse_auto};
use crashlog::{Report, ReportKind};

fn conformance() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ))
    .to_path_buf()
}

fn read(rel: &str) -> Vec<u8> {
    let p = conformance().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn one(rel: &str) -> Report {
    let mut v = parse_auto(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(v.len(), 1, "{rel}: expected one report");
    v.remove(0)
}

/// The parts of an insta YAML snapshot of `AppleCrashReport` that we compare.
#[derive(Debug, Default)]
struct Snap {
    incident: String,
    metadata: Vec<(String, String)>,
    /// (id, crashed, name, frames: (module, symbol, addr, file, line))
    threads: Vec<(u32, bool, Option<String>, Vec<SnapFrame>)>,
    images: Vec<SnapImage>,
}

#[derive(Debug, Default, Clone)]
struct SnapFrame {
    module: Option<String>,
    symbol: Option<String>,
    addr: Option<u64>,
    file: Option<String>,
    line: Option<u32>,
}

#[derive(Debug, Default, Clone)]
struct SnapImage {
    addr: u64,
    size: u64,
    uuid: String,
    arch: Option<String>,
    version: Option<String>,
    name: String,
    path: String,
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .replace("\\\"", "\"")
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(unquote(s).trim_start_matches("0x"), 16).unwrap()
}

/// A line-based reader for the fixed layout insta writes for this struct.
fn read_snapshot(text: &str) -> Snap {
    let mut snap = Snap::default();
    let mut section = "";
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 0 {
            section = t.split(':').next().unwrap_or("");
            if let Some(v) = t.strip_prefix("incident_identifier: ") {
                snap.incident = unquote(v);
            }
            continue;
        }
        match section {
            "metadata" => {
                if let Some((k, v)) = t.split_once(": ") {
                    snap.metadata.push((k.to_string(), unquote(v)));
                }
            }
            "threads" => {
                if let Some(v) = t.strip_prefix("- id: ") {
                    snap.threads
                        .push((v.parse().unwrap(), false, None, Vec::new()));
                    continue;
                }
                let th = snap.threads.last_mut().unwrap();
                if indent == 4 {
                    if let Some(v) = t.strip_prefix("crashed: ") {
                        th.1 = v == "true";
                    } else if let Some(v) = t.strip_prefix("name: ") {
                        th.2 = Some(unquote(v));
                    }
                    continue;
                }
                if indent == 6 && t.starts_with("- ") {
                    th.3.push(SnapFrame::default());
                }
                if let Some(f) = th.3.last_mut().filter(|_| indent >= 6) {
                    let kv = t.trim_start_matches("- ");
                    if let Some((k, v)) = kv.split_once(": ") {
                        match k {
                            "module" => f.module = Some(unquote(v)),
                            "symbol" => f.symbol = Some(unquote(v)),
                            "instruction_addr" => f.addr = Some(hex(v)),
                            "filename" => f.file = Some(unquote(v)),
                            "lineno" => f.line = Some(v.parse().unwrap()),
                            _ => {}
                        }
                    }
                }
            }
            "binary_images" => {
                if let Some(v) = t.strip_prefix("- addr: ") {
                    snap.images.push(SnapImage {
                        addr: hex(v),
                        ..SnapImage::default()
                    });
                    continue;
                }
                let img = snap.images.last_mut().unwrap();
                if let Some((k, v)) = t.split_once(": ") {
                    match k {
                        "size" => img.size = v.parse().unwrap(),
                        "uuid" => img.uuid = unquote(v),
                        "arch" => img.arch = Some(unquote(v)),
                        "version" => img.version = Some(unquote(v)),
                        "name" => img.name = unquote(v),
                        "path" => img.path = unquote(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    snap
}

fn check_against_snapshot(name: &str) {
    let report = one(&format!(
        "apple-crash-report-parser/tests/fixtures/{name}.txt"
    ));
    let snap_text = String::from_utf8(read(&format!(
        "apple-crash-report-parser/tests/snapshots/test_snapshots__{name}.snap"
    )))
    .unwrap();
    let snap = read_snapshot(&snap_text);
    assert!(
        !snap.threads.is_empty() && !snap.images.is_empty(),
        "{name}: snapshot reader found nothing"
    );

    // Incident id: the peer writes the nil UUID when the report has none; we say null.
    if snap.incident.chars().all(|c| c == '0' || c == '-') {
        assert_eq!(report.incident_id, None, "{name}");
    } else {
        assert_eq!(
            report
                .incident_id
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some(snap.incident.as_str()),
            "{name}"
        );
    }
    let meta = |k: &str| {
        snap.metadata
            .iter()
            .find(|(mk, _)| mk == k)
            .map(|(_, v)| v.clone())
    };
    // Process `name [pid]`.
    if let Some(p) = meta("Process") {
        let ours = format!(
            "{} [{}]",
            report.process.name.as_deref().unwrap(),
            report.process.pid.unwrap()
        );
        assert_eq!(ours, p, "{name}: process");
    }
    // Exception type and codes as written.
    let exc = report.exception.clone().unwrap_or_default();
    assert_eq!(exc.kind, meta("Exception Type"), "{name}: exception type");
    assert_eq!(
        exc.codes,
        meta("Exception Codes"),
        "{name}: exception codes"
    );

    // Threads: same ids, crashed flag, names, and frame by frame the same module,
    // symbol, address and file:line.
    assert_eq!(
        report.threads.len(),
        snap.threads.len(),
        "{name}: thread count"
    );
    let snap_crashed: Vec<u32> = snap.threads.iter().filter(|t| t.1).map(|t| t.0).collect();
    let ours_crashed: Vec<u32> = report
        .threads
        .iter()
        .filter(|t| t.crashed)
        .map(|t| t.index)
        .collect();
    assert_eq!(ours_crashed, snap_crashed, "{name}: crashed thread");
    if let Some(&c) = snap_crashed.first() {
        assert_eq!(
            report.crashed_thread,
            Some(c),
            "{name}: crashed_thread field"
        );
    }
    for (ours, (id, _, tname, frames)) in report.threads.iter().zip(&snap.threads) {
        assert_eq!(ours.index, *id, "{name}");
        assert_eq!(
            ours.name.as_ref(),
            tname.as_ref(),
            "{name}: thread {id} name"
        );
        assert_eq!(
            ours.frames.len(),
            frames.len(),
            "{name}: thread {id} frame count"
        );
        for (f, sf) in ours.frames.iter().zip(frames) {
            assert_eq!(f.address, sf.addr, "{name}: thread {id} frame {}", f.index);
            // `???` images: the peer omits the module, so do we (image = None).
            assert_eq!(f.image, sf.module, "{name}: thread {id} frame {}", f.index);
            assert_eq!(f.symbol, sf.symbol, "{name}: thread {id} frame {}", f.index);
            assert_eq!(f.file, sf.file, "{name}: thread {id} frame {}", f.index);
            assert_eq!(f.line, sf.line, "{name}: thread {id} frame {}", f.index);
        }
    }

    assert_eq!(
        report.binary_images.len(),
        snap.images.len(),
        "{name}: image count"
    );
    for (img, si) in report.binary_images.iter().zip(&snap.images) {
        assert_eq!(img.base, Some(si.addr), "{name}: {}", si.name);
        // Deliberate difference: the peer reports `end - start` as the size, but END in
        // `0xSTART - 0xEND` is the last byte of the image (e.g. 0x…fff), so the size is
        // `end - start + 1` (a page multiple).
        assert_eq!(img.size, Some(si.size + 1), "{name}: {} size", si.name);
        assert_eq!(
            img.uuid.as_deref(),
            Some(si.uuid.as_str()),
            "{name}: {}",
            si.name
        );
        assert_eq!(
            img.name.as_deref(),
            Some(si.name.as_str()),
            "{name}: image name"
        );
        assert_eq!(
            img.path.as_deref(),
            Some(si.path.as_str()),
            "{name}: {}",
            si.name
        );
        // Deliberate difference: PLCrashReporter-style lines write `name (x86_64) <uuid>`;
        // the peer keeps the parentheses in the arch (`(x86_64)`), we strip them.
        let snap_arch = si
            .arch
            .as_deref()
            .map(|a| a.trim_matches(|c| c == '(' || c == ')'));
        assert_eq!(img.arch.as_deref(), snap_arch, "{name}: {} arch", si.name);
        assert_eq!(img.version, si.version, "{name}: {} version", si.name);
    }
}

#[test]
fn acrp_handcrafted_matches_snapshot() {
    // The header says `Crashed Thread: 5` but the report only has threads 0 and 1 and
    // marks `Thread 1 Crashed`; like the peer we take thread 1 (and warn).
    check_against_snapshot("handcrafted");
    let r = one("apple-crash-report-parser/tests/fixtures/handcrafted.txt");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("crashed thread 5"))
    );
    assert_eq!(
        r.application_specific.as_deref(),
        Some("objc_msgSend() selector name: respondsToSelector:\nmore information here")
    );
    // Registers go to the thread named in `Thread 1 crashed with X86-64 Thread State:`.
    assert_eq!(r.threads[1].registers.get("rip"), Some(&0x1090a0132));
    assert_eq!(r.threads[1].registers.len(), 21);
}

#[test]
fn acrp_bruno_matches_snapshot() {
    check_against_snapshot("bruno");
}

#[test]
fn acrp_spaces_matches_snapshot() {
    check_against_snapshot("spaces");
}

#[test]
fn acrp_xcdyoutubekit_matches_snapshot() {
    check_against_snapshot("XCDYouTubeKit-54");
}

#[test]
fn acrp_xcode16_header_only() {
    // No snapshot upstream: the fixture is a header cut short before any thread.
    let r = one("apple-crash-report-parser/tests/fixtures/xcode16.txt");
    assert_eq!(r.kind, ReportKind::Crash);
    assert_eq!(
        r.incident_id.as_deref(),
        Some("6156848E-344E-4D9E-84E0-87AFD0D0AE7B")
    );
    assert_eq!(r.process.name.as_deref(), Some("TouchCanvas"));
    assert_eq!(r.process.pid, Some(1052));
    assert_eq!(r.process.code_type.as_deref(), Some("ARM-64 (Native)"));
    assert_eq!(r.os.version.as_deref(), Some("13.3.1"));
    assert_eq!(r.os.build.as_deref(), Some("17D50"));
    assert!(r.threads.is_empty());
    assert!(r.warnings.iter().any(|w| w.message.contains("truncated")));
}

#[test]
fn pycrashreport_values_hold() {
    let abort = one("pycrashreport/tests/user_mode_crash_report_ios14_non_symbolicated_abort.ips");
    let sym = one("pycrashreport/tests/user_mode_crash_report_ios14_symbolicated.ips");
    let monterey = one("pycrashreport/tests/user_mode_crash_report_monterey_non_symbolicated.ips");
    let reset = one("pycrashreport/tests/kernel_mode_crash_report_ios16_forceReset-full.ips");

    assert_eq!(abort.bug_type.as_deref(), Some("109"));
    assert_eq!(sym.bug_type.as_deref(), Some("109"));
    assert_eq!(monterey.bug_type.as_deref(), Some("309"));
    assert_eq!(reset.bug_type.as_deref(), Some("151"));

    assert_eq!(abort.crashed_thread, Some(7));
    assert_eq!(sym.crashed_thread, Some(0));
    assert_eq!(monterey.crashed_thread, Some(0));
    assert!(abort.crashed_thread().unwrap().crashed);

    assert_eq!(
        abort.exception.as_ref().unwrap().kind.as_deref(),
        Some("EXC_CRASH (SIGABRT)")
    );
    assert_eq!(
        sym.exception.as_ref().unwrap().kind.as_deref(),
        Some("EXC_CRASH (SIGABRT)")
    );
    let me = monterey.exception.as_ref().unwrap();
    assert_eq!(me.kind.as_deref(), Some("EXC_BAD_ACCESS"));
    assert_eq!(
        me.subtype.as_deref(),
        Some("KERN_INVALID_ADDRESS at 0x0000000000000000")
    );

    let p = reset.panic.as_ref().unwrap();
    assert_eq!(reset.kind, ReportKind::Panic);
    assert_eq!(p.message.as_deref(), Some("btn_rst"));
    assert_eq!(reset.os.build.as_deref(), Some("20C65"));
    assert_eq!(p.paniclog_version, Some(14));
    let task = p.panicked_task.as_ref().unwrap();
    assert_eq!(
        (task.pid, task.name.as_deref(), task.threads),
        (Some(0), Some("kernel_task"), Some(263))
    );
    assert_eq!(p.panicked_thread.as_ref().unwrap().tid, Some(798));
}

#[test]
fn pycrashreport_details() {
    // bug_type 309: frames resolved through usedImages (address = base + imageOffset).
    let m = one("pycrashreport/tests/user_mode_crash_report_monterey_non_symbolicated.ips");
    let t = m.crashed_thread().unwrap();
    assert_eq!(t.queue.as_deref(), Some("com.apple.main-thread"));
    assert_eq!(t.frames.len(), 4);
    let f1 = &t.frames[1];
    assert_eq!(f1.image.as_deref(), Some("libsystem_c.dylib"));
    assert_eq!(f1.symbol.as_deref(), Some("nanosleep"));
    assert_eq!(f1.symbol_offset, Some(196));
    assert_eq!(f1.image_offset, Some(67753));
    assert_eq!(f1.address, Some(140703336611840 + 67753));
    assert_eq!(
        f1.image_uuid.as_deref(),
        Some("e58814cc-dcb7-35a5-badc-e367ed3ac207")
    );
    assert_eq!(m.process.parent.as_deref(), Some("zsh"));
    assert_eq!(
        m.termination.as_ref().unwrap().indicator.as_deref(),
        Some("Segmentation fault: 11")
    );
    assert_eq!(m.device.as_deref(), Some("MacBookPro15,1"));
    assert_eq!(t.registers.get("rip"), Some(&0));

    // bug_type 109: the text body, with tabs between image and address.
    let s = one("pycrashreport/tests/user_mode_crash_report_ios14_symbolicated.ips");
    let f = &s.crashed_thread().unwrap().frames[4];
    assert_eq!(
        (f.image.as_deref(), f.symbol.as_deref(), f.symbol_offset),
        (Some("kaki"), Some("main"), Some(108))
    );
    assert_eq!(s.process.bundle_id.as_deref(), Some("cyber.bitim.kaki2"));
    assert_eq!(
        s.application_specific.as_deref(),
        Some("dyld3 mode\nstack buffer overflow")
    );

    // bug_type 151: panicked-thread frames attributed to the kext in the backtrace.
    let r = one("pycrashreport/tests/kernel_mode_crash_report_ios16_forceReset-full.ips");
    let p = r.panic.as_ref().unwrap();
    assert_eq!(p.kexts.len(), 3);
    assert_eq!(p.kexts[0].name, "com.apple.driver.AppleM68Buttons");
    assert!(p.loaded_kexts.len() > 100);
    let th = r.crashed_thread().unwrap();
    assert_eq!(th.frames.len(), 13);
    assert!(
        th.frames
            .iter()
            .any(|f| f.image.as_deref() == Some("com.apple.driver.AppleM68Buttons"))
    );
}

#[test]
fn every_conformance_file_parses() {
    // Every fixture (not the licences, commits, index or the peer's YAML snapshots).
    let (files, errors) = crashlog::load::collect_files(&[conformance()]);
    assert!(errors.is_empty());
    let mut n = 0;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let is_fixture = f.to_string_lossy().contains("/fixtures/") || name.ends_with(".ips");
        if !is_fixture {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(&f).unwrap();
        let reports =
            parse(&bytes, Format::Auto).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!reports.is_empty());
    }
    assert_eq!(n, 9);
}

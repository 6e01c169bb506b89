//! `crashlog triage` on the sample corpus (`crashlog/samples/`, see its README): every
//! known-issue report and log is matched to its id, no unrelated report is claimed, and
//! the clusters are exactly the intended groups. Plus archives, stability, exit codes,
//! output formats and the `signature` verb.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crashlog::triage::{NoProgress, Rules, Triage, TriageOptions, triage_paths};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn rel(source: &str) -> String {
    let root = format!("{}/", samples().display());
    source.strip_prefix(&root).unwrap_or(source).to_string()
}

fn triage(paths: &[PathBuf]) -> Triage {
    triage_paths(
        &Rules::builtin(),
        paths,
        &TriageOptions::default(),
        &NoProgress,
    )
}

const TARBALL: &str =
    "skmem-slab-double-free/sysdiagnose_2026.03.30_14-11-23+0300_macOS_Mac17-2_25D2128.tar.gz";

fn member(inner: &str) -> String {
    format!("{TARBALL}:sysdiagnose_2026.03.30_14-11-23+0300_macOS_Mac17-2_25D2128/{inner}")
}

/// The intended clusters, each with its known issue.
fn intended_clusters() -> Vec<(Option<&'static str>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut skmem = s(&[
        "dart-sid-exception/forum-post-flattened.txt",
        "skmem-slab-double-free/field/Kernel-2026-03-30-141123.panic",
        "skmem-slab-double-free/field/forum-post-panic-and-log.txt",
        "skmem-slab-double-free/field/panic-full-2026-03-30-141123.ips",
        "skmem-slab-double-free/flowsim/Kernel-2026-11-21-073034.panic",
        "skmem-slab-double-free/flowsim/panic-full-2026-11-21-073034.0002.ips",
    ]);
    skmem.push(member(
        "crashes_and_spins/panic-full-2026-03-30-141123.0002.ips",
    ));
    vec![
        // Field panics (.ips, text, forum pastes, a sysdiagnose) and flowsim's reproduction:
        // only addresses, line numbers and the kext list differ.
        (Some("skmem-slab-double-free"), skmem),
        // .ips, a .crash from another device (other offsets, one extra inlined frame on
        // top) and two pastes.
        (
            Some("quic-migration-buffer-uaf"),
            s(&[
                "quic-migration-buffer-uaf/Courier-2026-02-11-172241.ips",
                "quic-migration-buffer-uaf/Courier-2026-02-14-080312.crash",
                "quic-migration-buffer-uaf/forum-stack-lines.txt",
                "quic-migration-buffer-uaf/forum-stack-oneline.txt",
            ]),
        ),
        // Unsymbolicated system frames cannot be compared with symbols: its own cluster,
        // still recognised by the known issue through the symbolicated migration frames.
        (
            Some("quic-migration-buffer-uaf"),
            s(&["quic-migration-buffer-uaf/Courier-2026-02-11-172241-partly-symbolicated.crash"]),
        ),
        (
            Some("getaddrinfo-fork-child-nat64"),
            s(&[
                "getaddrinfo-fork-child-nat64/forum-arrow-chain.txt",
                "getaddrinfo-fork-child-nat64/ruby-2026-01-19-110452-translated.ips",
                "getaddrinfo-fork-child-nat64/ruby-2026-01-19-110452.crash",
            ]),
        ),
        (
            Some("atfork-nw-path-prepare-deadlock"),
            s(&[
                "atfork-nw-path-prepare-deadlock/forum-arrow-chain.txt",
                "atfork-nw-path-prepare-deadlock/ruby_2026-11-21-073001.sample.txt",
                "atfork-nw-path-prepare-deadlock/unicorn.sample.txt",
                "atfork-nw-path-prepare-deadlock/unicorn.spindump.txt",
            ]),
        ),
        // The same classq assertion, arm64 .ips 110 and x86 text.
        (
            None,
            s(&[
                "unrelated/Kernel-classq-assert-x86.panic",
                "unrelated/panic-classq-assert-110.ips",
            ]),
        ),
        // Two app bugs that both end in abort(): apart.
        (None, s(&["unrelated/Notes2-2026-03-02-101544.crash"])),
        (None, s(&["unrelated/Syncer-2026-03-05-174501.crash"])),
        // libquic in another function, same thread name: not the migration bug.
        (None, s(&["unrelated/Courier-quic-flow-control.crash"])),
        // Related but different panics.
        (
            None,
            s(&["unrelated/Kernel-2026-03-12-093311-os_refcnt.panic"]),
        ),
        (
            None,
            s(&["unrelated/Kernel-2026-03-18-221407-skmem_cache_destroy.panic"]),
        ),
        (None, s(&["unrelated/watchdog-nesessionmanager-409.ips"])),
        (None, s(&["unrelated/nesessionmanager-guard-308.ips"])),
    ]
}

/// The intended log findings: (source, known issue or None for an unknown burst).
fn intended_findings() -> BTreeSet<(String, Option<String>)> {
    let k = |s: &str, id: &str| (s.to_string(), Some(id.to_string()));
    let mut v = BTreeSet::from([
        k(
            "nesm-vpn-start-storm/flowsim-vpn-sleep-wake.log",
            "nesm-vpn-start-storm",
        ),
        k(
            "nesm-vpn-start-storm/nesessionmanager-syslog.log",
            "nesm-vpn-start-storm",
        ),
        k(
            "nw-connection-enomem/flowsim-proxy-burst.log",
            "nw-connection-enomem",
        ),
        k(
            "nw-connection-enomem/proxy-compact.log",
            "nw-connection-enomem",
        ),
        k(
            "wifip2pd-fd-leak-emfile/flowsim-ndp-cycles.log",
            "wifip2pd-fd-leak-emfile",
        ),
        k(
            "wifip2pd-fd-leak-emfile/wifip2pd-compact.log",
            "wifip2pd-fd-leak-emfile",
        ),
        k(
            "flow-divert-no-control-units/flowsim-divert-churn.log",
            "flow-divert-no-control-units",
        ),
        k(
            "dart-sid-exception/m5-before-panic.log",
            "flow-divert-no-control-units",
        ),
        k(
            "dart-sid-exception/m5-before-panic.log",
            "dart-sid-exception",
        ),
        k(
            "dart-sid-exception/forum-post-flattened.txt",
            "flow-divert-no-control-units",
        ),
        k(
            "dart-sid-exception/forum-post-flattened.txt",
            "dart-sid-exception",
        ),
        k(
            "skmem-slab-double-free/field/forum-post-panic-and-log.txt",
            "flow-divert-no-control-units",
        ),
        k(
            "skmem-slab-double-free/field/forum-post-panic-and-log.txt",
            "dart-sid-exception",
        ),
        k(
            "companion-link-tls-1200/watch-sysdiagnose.log",
            "companion-link-tls-1200",
        ),
        k(
            "companion-link-tls-1200/watch-log.ndjson",
            "companion-link-tls-1200",
        ),
        k(
            "network-request-enospc/Courier-xcode-console.txt",
            "network-request-enospc",
        ),
        k(
            "network-request-enospc/Courier-cellular.log",
            "network-request-enospc",
        ),
        ("unrelated/configd-dhcp-errors.log".to_string(), None),
    ]);
    let log = member("logs/log-show-last-5m.txt");
    v.insert((log.clone(), Some("dart-sid-exception".into())));
    v.insert((log, Some("flow-divert-no-control-units".into())));
    v
}

#[test]
fn corpus_known_issues_and_clusters_are_the_intended_ones() {
    let t = triage(&[samples()]);
    assert!(t.errors.is_empty(), "{:?}", t.errors);

    // Every report: its known issue is the one of its intended group (None = unrelated).
    let intended = intended_clusters();
    let mut expected_issue: BTreeMap<String, Option<&str>> = BTreeMap::new();
    for (id, group) in &intended {
        for s in group {
            expected_issue.insert(s.clone(), *id);
        }
    }
    let got_issue: BTreeMap<String, Option<&str>> = t
        .reports
        .iter()
        .map(|r| (rel(&r.source), r.known_issue.as_deref()))
        .collect();
    assert_eq!(got_issue, expected_issue);
    for r in &t.reports {
        if r.known_issue.is_some() {
            assert!(!r.evidence.is_empty(), "{} has no evidence", r.source);
        }
    }

    // Clusters are exactly the intended groups.
    let mut got: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in &t.reports {
        got.entry(r.cluster.as_str())
            .or_default()
            .insert(rel(&r.source));
    }
    let got: BTreeSet<BTreeSet<String>> = got.into_values().collect();
    let want: BTreeSet<BTreeSet<String>> = intended
        .iter()
        .map(|(_, g)| g.iter().cloned().collect())
        .collect();
    assert_eq!(got, want);
    assert_eq!(t.clusters.len(), intended.len());
    for c in &t.clusters {
        let members: BTreeSet<String> = c.sources.iter().map(|s| rel(s)).collect();
        let (id, _) = intended
            .iter()
            .find(|(_, g)| g.iter().cloned().collect::<BTreeSet<_>>() == members)
            .unwrap();
        assert_eq!(c.known_issue.as_deref(), *id, "cluster {}", c.signature);
        assert_eq!(c.count, members.len());
    }

    // Log findings: exactly the intended ones; nothing from the calm logs.
    let got: BTreeSet<(String, Option<String>)> = t
        .findings
        .iter()
        .map(|f| (rel(&f.source), f.known_issue.clone()))
        .collect();
    assert_eq!(got, intended_findings());
    assert!(t.findings.iter().all(|f| !f.source.contains("/calm/")));
}

#[test]
fn every_known_issue_is_in_the_corpus_in_two_or_more_files() {
    let t = triage(&[samples()]);
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &t.reports {
        if let Some(k) = &r.known_issue {
            files.entry(k.clone()).or_default().insert(r.source.clone());
        }
    }
    for f in &t.findings {
        if let Some(k) = &f.known_issue {
            files.entry(k.clone()).or_default().insert(f.source.clone());
        }
    }
    for issue in &Rules::builtin().issues {
        let n = files.get(&issue.id).map_or(0, BTreeSet::len);
        assert!(n >= 2, "{} appears in {n} sample files", issue.id);
    }
}

#[test]
fn findings_carry_counts_processes_times_and_related_crashes() {
    let t = triage(&[samples()]);
    let storm = t
        .findings
        .iter()
        .find(|f| f.source.ends_with("nesessionmanager-syslog.log"))
        .unwrap();
    assert_eq!(storm.count, 360);
    assert_eq!(storm.processes[0].name, "nesessionmanager");
    assert_eq!(storm.processes[0].count, 360);
    assert!(storm.peak_per_second.unwrap() >= 100);
    assert_eq!(
        storm.first_seen.unwrap().to_string(),
        "2025-12-02T17:11:52.119700+02:00"
    );
    // The log inside the sysdiagnose is reported with the panic of the same archive.
    let skmem = t
        .clusters
        .iter()
        .find(|c| c.known_issue.as_deref() == Some("skmem-slab-double-free"))
        .unwrap();
    let in_archive = t
        .findings
        .iter()
        .find(|f| {
            f.source.contains(".tar.gz:") && f.known_issue.as_deref() == Some("dart-sid-exception")
        })
        .unwrap();
    assert_eq!(in_archive.related_clusters, std::slice::from_ref(&skmem.id));
    // Logs with no crash nearby have no related clusters.
    let configd = t.findings.iter().find(|f| f.known_issue.is_none()).unwrap();
    assert!(configd.related_clusters.is_empty(), "{configd:?}");
}

#[test]
fn cluster_ids_are_stable_across_runs_and_input_order() {
    let dirs: Vec<PathBuf> = [
        "unrelated",
        "quic-migration-buffer-uaf",
        "skmem-slab-double-free",
    ]
    .iter()
    .map(|d| samples().join(d))
    .collect();
    let a = triage(&dirs);
    let mut rev = dirs.clone();
    rev.reverse();
    let b = triage(&rev);
    let ids = |t: &Triage| -> BTreeMap<String, String> {
        t.reports
            .iter()
            .map(|r| (r.source.clone(), r.cluster.clone()))
            .collect()
    };
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(
        crashlog::triage::output::to_json(&a),
        crashlog::triage::output::to_json(&triage(&dirs))
    );
}

#[test]
fn zip_and_tar_gz_members_are_sources() {
    let dir = tempfile::tempdir().unwrap();
    let panic = std::fs::read(samples().join("unrelated/Kernel-2026-03-12-093311-os_refcnt.panic"))
        .unwrap();
    let log = std::fs::read(samples().join("nw-connection-enomem/proxy-compact.log")).unwrap();

    let zp = dir.path().join("logs.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zp).unwrap());
    let o = zip::write::SimpleFileOptions::default();
    z.start_file("incident/Kernel.panic", o).unwrap();
    z.write_all(&panic).unwrap();
    z.start_file("incident/proxy.log", o).unwrap();
    z.write_all(&log).unwrap();
    z.start_file("__MACOSX/incident/._proxy.log", o).unwrap();
    z.write_all(b"junk").unwrap();
    z.finish().unwrap();

    let tp = dir.path().join("sysdiagnose.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tp).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tb = tar::Builder::new(gz);
    for (name, data) in [("sd/Kernel.panic", &panic), ("sd/proxy.log", &log)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tb.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tb.into_inner().unwrap().finish().unwrap();

    let t = triage(&[dir.path().to_path_buf()]);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let sources: BTreeSet<String> = t.reports.iter().map(|r| r.source.clone()).collect();
    let d = dir.path().display();
    assert_eq!(
        sources,
        BTreeSet::from([
            format!("{d}/logs.zip:incident/Kernel.panic"),
            format!("{d}/sysdiagnose.tar.gz:sd/Kernel.panic"),
        ])
    );
    assert_eq!(t.clusters.len(), 1);
    let f: BTreeSet<(String, Option<String>)> = t
        .findings
        .iter()
        .map(|f| (f.source.clone(), f.known_issue.clone()))
        .collect();
    assert_eq!(
        f,
        BTreeSet::from([
            (
                format!("{d}/logs.zip:incident/proxy.log"),
                Some("nw-connection-enomem".into())
            ),
            (
                format!("{d}/sysdiagnose.tar.gz:sd/proxy.log"),
                Some("nw-connection-enomem".into())
            ),
        ])
    );
}

fn crashlog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crashlog"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_status_and_formats() {
    let s = samples();
    let all = s.to_str().unwrap();
    let (code, out, err) = crashlog(&["triage", all]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("crashlog triage: 28 reports in 13 clusters"),
        "{out}"
    );
    assert!(out.contains("CLUSTERS (by count)") && out.contains("LOG FINDINGS"));

    let (code, out, _) = crashlog(&["triage", all, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "crashlog.triage.v1");
    for key in ["reports", "clusters", "findings", "errors"] {
        assert!(v[key].is_array(), "{key}");
    }
    let r = &v["reports"][0];
    for key in ["source", "kind", "signature", "cluster", "known_issue"] {
        assert!(r.get(key).is_some(), "report.{key}");
    }
    let f = &v["findings"][0];
    for key in [
        "source",
        "known_issue",
        "title",
        "count",
        "first_seen",
        "last_seen",
        "processes",
    ] {
        assert!(f.get(key).is_some(), "finding.{key}");
    }

    let (_, out, _) = crashlog(&["triage", all, "--format", "ndjson"]);
    let types: BTreeSet<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["schema"], "crashlog.triage.v1");
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["summary", "report", "cluster", "finding"].map(String::from))
    );

    let (_, out, _) = crashlog(&["triage", all, "--format", "markdown", "--min-count", "3"]);
    assert!(out.contains("| count | cluster | known issue | signature |"));
    assert!(
        !out.contains("os_refcnt"),
        "singletons hidden by --min-count 3"
    );

    // Calm logs: nothing found.
    let calm = s.join("calm");
    let (code, out, _) = crashlog(&["triage", calm.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing found"));

    // An unreadable input: exit 2, `path:line: message` on stderr, the rest still printed.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.txt"), "hello there\n").unwrap();
    let (code, out, err) = crashlog(&[
        "triage",
        dir.path().to_str().unwrap(),
        calm.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("junk.txt:1: unrecognized input"), "{err}");
    assert!(out.contains("ERRORS"));

    // A bad rules file names its line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[issue]]\nid = \"x\"\ntitle = \"t\"\n[[issue.match]]\nframes = []\n",
    )
    .unwrap();
    let (code, _, err) = crashlog(&["triage", all, "--rules", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:4: issue x: empty frames list"),
        "{err}"
    );
}

#[test]
fn user_rules_extend_the_knowledge_base() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("mine.toml");
    std::fs::write(
        &rules,
        "[[issue]]\nid = \"notes2-draft-save-abort\"\ntitle = \"Notes2 aborts saving a draft\"\nkind = \"crash\"\n[[issue.match]]\nframes = [\"-[DraftStore saveDraft:error:]\"]\nexception = \"EXC_CRASH\"\n",
    )
    .unwrap();
    let unrelated = samples().join("unrelated");
    let (code, out, err) = crashlog(&[
        "triage",
        unrelated.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let claimed: Vec<&str> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["known_issue"] == "notes2-draft-save-abort")
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].ends_with("Notes2-2026-03-02-101544.crash"));
}

#[test]
fn signature_verb_shows_skipped_frames_and_reasons() {
    let f = samples().join("unrelated/Syncer-2026-03-05-174501.crash");
    let (code, out, err) = crashlog(&["signature", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("signature:  EXC_CRASH (SIGABRT) | sync::ConfigParser::parse("),
        "{out}"
    );
    assert!(out.contains("#0   __pthread_kill"), "{out}");
    assert!(out.contains("signal delivery (__pthread_kill)"), "{out}");
    assert!(out.contains("C++ terminate handler"), "{out}");
    assert!(out.contains("known issue: -"), "{out}");
}

#[test]
fn every_parser_sample_and_conformance_fixture_triages_without_panicking() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    let t = triage(&[data, conformance]);
    assert!(t.reports.len() > 30, "{}", t.reports.len());
    // Every report gets a signature and a cluster; only the deliberately bad samples fail.
    for r in &t.reports {
        assert!(!r.signature.is_empty() && r.cluster.len() == 16, "{r:?}");
    }
    let failed: BTreeSet<String> = t
        .errors
        .iter()
        .filter(|e| e.source.contains("/tests/data/"))
        .map(|e| e.source.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from([
            "malformed-truncated.ips".to_string(),
            "not-a-report.txt".to_string()
        ])
    );
}

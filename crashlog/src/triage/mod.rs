//! Triage: signatures, clusters, known issues and log findings.
//!
//! [`triage_paths`] walks files, directories and `.tar.gz`/`.tgz`/`.tar`/`.zip`
//! archives, parses every report (in parallel) and streams every log through a
//! [`findings::LogScanner`], then clusters the reports. The result ([`Triage`]) is what
//! `crashlog triage` prints ([`output`]) — JSON contract `crashlog.triage.v1`, see
//! [`crate::json_schema`].
//!
//! Layers, each usable alone: [`template`] (message templates), [`signature`](mod@signature) (per
//! report, with the skipped frames and why), [`cluster`] (exact buckets + PDM
//! near-duplicates, stable ids), [`rules`] (the TOML knowledge base and skip rules),
//! [`kb`] (known-issue matching with evidence), [`findings`] (streaming log detectors),
//! [`archive`] (archive members as sources).
//!
//! ```
//! use crashlog::triage::{Rules, triage_reports};
//! let panic = b"panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646\nDebugger message: panic\nOS version: 25D2128\n";
//! let reports = crashlog::parse::parse_auto(panic).unwrap();
//! let rules = Rules::builtin();
//! let t = triage_reports(&rules, vec![("forum.txt".to_string(), reports)]);
//! assert_eq!(t.reports[0].known_issue.as_deref(), Some("skmem-slab-double-free"));
//! assert_eq!(t.clusters.len(), 1);
//! ```

pub mod archive;
pub mod cluster;
pub mod findings;
pub mod kb;
pub mod output;
pub mod rules;
pub mod signature;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{LoadError, ParseError};
use crate::load::{self, LoadOptions};
use crate::model::{LogTime, Report, ReportKind};
use crate::parse::{self, Format, LogReader};

pub use findings::{Finding, LogScanner, ProcessCount};
pub use kb::Match;
pub use rules::{KnownIssue, Rules, RulesError};
pub use signature::{Signature, signature};

/// A report within this many seconds of a finding's log lines (same directory or
/// archive) is reported with it.
pub const RELATED_WINDOW_S: f64 = 3600.0;

/// The JSON schema name.
pub const SCHEMA: &str = "crashlog.triage.v1";

/// One report, triaged.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TriagedReport {
    /// Where (file, or `archive.tar.gz:inner/path`).
    pub source: String,
    /// `panic`, `crash`, `hang` or `stack`.
    pub kind: ReportKind,
    /// The signature text.
    pub signature: String,
    /// Cluster id.
    pub cluster: String,
    /// Known-issue id.
    pub known_issue: Option<String>,
    /// What matched the known issue.
    pub evidence: Vec<String>,
    /// OS as written (`macOS 26.3 (25D2128)`).
    pub os: Option<String>,
    /// Process name.
    pub process: Option<String>,
    /// Report time.
    pub timestamp: Option<LogTime>,
    /// Incident id.
    pub incident_id: Option<String>,
    /// Meaningful frames (innermost first).
    pub frames: Vec<String>,
    /// The full signature (frames skipped and why, template, exception).
    #[serde(skip)]
    pub detail: Signature,
    /// The input it came from (file or archive).
    #[serde(skip)]
    pub input: String,
}

/// A group of reports of one problem.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cluster {
    /// Stable id (hash of the canonical signature).
    pub id: String,
    /// The canonical signature.
    pub signature: String,
    /// Report kind of the canonical signature.
    pub kind: ReportKind,
    /// Reports.
    pub count: usize,
    /// Known issue (the one most of its reports match).
    pub known_issue: Option<String>,
    /// Known-issue title.
    pub title: Option<String>,
    /// Distinct signatures merged into it.
    pub signatures: Vec<String>,
    /// Sources, in order.
    pub sources: Vec<String>,
    /// OS versions (distinct).
    pub os_versions: Vec<String>,
    /// Processes (distinct).
    pub processes: Vec<String>,
    /// Earliest report time.
    pub first_seen: Option<LogTime>,
    /// Latest report time.
    pub last_seen: Option<LogTime>,
}

/// An input that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TriageError {
    /// The path (inside an archive: `archive.tar.gz:inner/path`).
    pub source: String,
    /// `path:line: message` style message (without the path).
    pub message: String,
    /// Stable error name (`io`, `unrecognized`, `malformed`…).
    pub name: String,
}

/// Everything triage found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Triage {
    /// Reports (walk order).
    pub reports: Vec<TriagedReport>,
    /// Clusters, largest first (then by id).
    pub clusters: Vec<Cluster>,
    /// Log findings (known issues first, then unknown bursts).
    pub findings: Vec<Finding>,
    /// Inputs that failed.
    pub errors: Vec<TriageError>,
    /// Files read (archive members included).
    pub files: usize,
    /// Log entries scanned.
    pub log_entries: u64,
    /// Symbolication problems (`--symbols`), once per image and kind, as
    /// `source: image …: message [name]`; the frames concerned were left as they were.
    pub symbol_problems: Vec<String>,
}

impl Triage {
    /// Whether anything was found (a report or a finding).
    pub fn found_anything(&self) -> bool {
        !self.clusters.is_empty() || !self.findings.is_empty()
    }
}

/// Options of a triage run.
#[derive(Debug, Clone, Default)]
pub struct TriageOptions {
    /// How files are read.
    pub load: LoadOptions,
    /// Binaries and debug info (`--symbols`): when set, every report is symbolicated
    /// before its signature is computed, so an unsymbolicated copy of a crash and its
    /// symbolicated twin get the same signature and cluster together.
    pub symbols: Option<std::sync::Arc<crashlog_symbols::SymbolStore>>,
}

/// Progress callbacks (the CLI draws a bar on a terminal).
pub trait Progress: Sync {
    /// `total` inputs are about to be read.
    fn start(&self, total: u64);
    /// One input (file or archive) is done.
    fn advance(&self, source: &str);
}

/// No progress output.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: &str) {}
}

/// Per-input partial result.
#[derive(Debug, Default)]
struct Part {
    reports: Vec<TriagedReport>,
    findings: Vec<Finding>,
    errors: Vec<TriageError>,
    files: usize,
    log_entries: u64,
    symbol_problems: Vec<String>,
}

impl Part {
    fn error(&mut self, source: &str, e: &LoadError) {
        let message = match e.line() {
            Some(l) => format!("{l}: {}", e.message()),
            None => e.message(),
        };
        self.errors.push(TriageError {
            source: source.to_string(),
            message,
            name: e.name().to_string(),
        });
    }
}

fn triage_one(rules: &Rules, source: &str, input: &str, r: &Report) -> TriagedReport {
    let sig = signature(r, rules);
    let m = kb::match_report(rules, r, &sig);
    TriagedReport {
        source: source.to_string(),
        kind: r.kind,
        signature: sig.text.clone(),
        cluster: String::new(),
        known_issue: m.as_ref().map(|m| m.id.clone()),
        evidence: m.map(|m| m.evidence).unwrap_or_default(),
        os: os_text(&r.os),
        process: r
            .process
            .name
            .clone()
            .or_else(|| r.panic.as_ref().and_then(|p| p.process_name.clone())),
        timestamp: r.time(),
        incident_id: r.incident_id.clone(),
        frames: sig.frames.clone(),
        detail: sig,
        input: input.to_string(),
    }
}

/// `macOS 26.3 (25D2128)`; a version that only repeats the build (panics write
/// `macOS version: 25D2128`) is dropped: `macOS (25D2128)`.
fn os_text(os: &crate::model::Os) -> Option<String> {
    let version = os
        .version
        .as_deref()
        .filter(|v| Some(*v) != os.build.as_deref());
    match (os.name.as_deref(), version, os.build.as_deref()) {
        (Some(n), Some(v), Some(b)) => Some(format!("{n} {v} ({b})")),
        (Some(n), Some(v), None) => Some(format!("{n} {v}")),
        (Some(n), None, Some(b)) => Some(format!("{n} ({b})")),
        (None, Some(v), Some(b)) => Some(format!("{v} ({b})")),
        (None, None, Some(b)) => Some(b.to_string()),
        _ => os.raw.clone(),
    }
}

/// Add the reports parsed from one input (logs inside them are scanned for findings).
fn add_reports(
    rules: &Rules,
    opts: &TriageOptions,
    part: &mut Part,
    source: &str,
    input: &str,
    reports: &[Report],
) {
    for r in reports {
        let symbols = opts.symbols.as_ref().filter(|_| r.kind != ReportKind::Log);
        if let Some(store) = symbols {
            let mut r = r.clone();
            let outcome = crate::symbolicate::symbolicate_report(&mut r, store);
            for p in &outcome.problems {
                part.symbol_problems.push(format!("{source}: {p}"));
            }
            part.reports.push(triage_one(rules, source, input, &r));
        } else if r.kind == ReportKind::Log {
            let mut sc = LogScanner::new(rules, source, input);
            for e in &r.log {
                sc.feed(e);
            }
            part.log_entries += sc.entries();
            part.findings.extend(sc.finish());
        } else {
            part.reports.push(triage_one(rules, source, input, r));
        }
    }
}

/// Stream a log through a scanner.
fn scan_log<R: BufRead>(
    rules: &Rules,
    part: &mut Part,
    reader: LogReader<R>,
    path: &Path,
    source: &str,
    input: &str,
) {
    let mut sc = LogScanner::new(rules, source, input);
    let mut first_err: Option<ParseError> = None;
    for item in reader {
        match item {
            Ok(e) => sc.feed(&e),
            Err(e @ ParseError::Io { .. }) => {
                first_err = Some(e);
                break;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let n = sc.entries();
    part.log_entries += n;
    if n == 0 || matches!(first_err, Some(ParseError::Io { .. })) {
        let source_err = first_err.unwrap_or(ParseError::WrongFormat {
            line: 1,
            format: "log",
            hint: "no log entries found".into(),
        });
        part.error(
            source,
            &LoadError::Parse {
                path: path.to_path_buf(),
                source: source_err,
            },
        );
    }
    if n > 0 {
        part.findings.extend(sc.finish());
    }
}

/// Read one stream (an archive member): sniffed, then streamed as a log or read
/// (capped) and parsed.
fn stream_into(
    rules: &Rules,
    opts: &TriageOptions,
    part: &mut Part,
    reader: impl Read,
    source: &str,
    input: &str,
) {
    let path = PathBuf::from(source);
    let lo = &opts.load;
    part.files += 1;
    // Sniff the first bytes (a decompressing reader may return short reads), then read
    // on from where the sniffing stopped.
    let mut reader = reader;
    let mut head = Vec::with_capacity(lo.sniff_bytes.min(1 << 20));
    if let Err(e) = reader
        .by_ref()
        .take(lo.sniff_bytes as u64)
        .read_to_end(&mut head)
    {
        part.error(source, &LoadError::Io { path, source: e });
        return;
    }
    let is_log = match lo.format {
        Format::Log => true,
        Format::Auto => {
            let mut h = head.as_slice();
            if h.len() == lo.sniff_bytes
                && let Some(nl) = memchr::memrchr(b'\n', h)
            {
                h = &h[..=nl];
            }
            parse::detect(h) == Format::Log
        }
        _ => false,
    };
    let buf = BufReader::with_capacity(256 * 1024, std::io::Cursor::new(head).chain(reader));
    if is_log {
        let reader = LogReader::with_limits(buf, lo.log_limits);
        scan_log(rules, part, reader, &path, source, input);
        return;
    }
    let mut bytes = Vec::new();
    if let Err(e) = buf.take(lo.max_report_bytes + 1).read_to_end(&mut bytes) {
        part.error(source, &LoadError::Io { path, source: e });
        return;
    }
    if bytes.len() as u64 > lo.max_report_bytes {
        part.error(
            source,
            &LoadError::TooLarge {
                path,
                size: bytes.len() as u64,
                limit: lo.max_report_bytes,
            },
        );
        return;
    }
    match parse::parse(&bytes, lo.format) {
        Ok(rs) => add_reports(rules, opts, part, source, input, &rs),
        Err(_) if is_empty_log(&bytes) => {}
        Err(e) => part.error(source, &LoadError::Parse { path, source: e }),
    }
}

/// A `log show` output with no entries (header and footer only) is an empty log, not
/// an error: a quiet machine writes exactly that.
pub fn is_empty_log(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let mut header = false;
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l.starts_with("Timestamp") {
            header = true;
        } else if !(l.starts_with("** Processed ")
            || l.starts_with("Filtering the log data")
            || l.starts_with("Skipping ")
            || l.bytes().all(|c| c == b'-' || c == b'='))
        {
            return false;
        }
    }
    header
}

fn is_empty_log_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() <= 4096)
        && std::fs::read(path).is_ok_and(|b| is_empty_log(&b))
}

fn triage_file(rules: &Rules, opts: &TriageOptions, path: &Path) -> Part {
    let mut part = Part::default();
    let source = path.display().to_string();
    if archive::is_archive(path) {
        archive::for_each_member(path, &mut |inner, reader| {
            let member = format!("{source}:{inner}");
            stream_into(rules, opts, &mut part, reader, &member, &source);
        })
        .unwrap_or_else(|e| {
            let message = e.to_string();
            part.errors.push(TriageError {
                source: source.clone(),
                message,
                name: "archive".into(),
            });
        });
        return part;
    }
    part.files += 1;
    // An incident is usually one directory (an extracted sysdiagnose, a flowsim run).
    let input = path
        .parent()
        .map_or_else(|| source.clone(), |p| p.display().to_string());
    match load::is_log_file(path, &opts.load) {
        Ok(true) => match load::open_log(path, opts.load.log_limits) {
            Ok(reader) => scan_log(rules, &mut part, reader, path, &source, &input),
            Err(e) => part.error(&source, &e),
        },
        Ok(false) => match load::load_file(path, &opts.load) {
            Ok(rs) => add_reports(rules, opts, &mut part, &source, &input, &rs),
            Err(e) if is_empty_log_file(path) => drop(e),
            Err(e) => part.error(&source, &e),
        },
        Err(e) => part.error(&source, &e),
    }
    part
}

/// Triage files, directories and archives (files in parallel, logs streamed).
pub fn triage_paths(
    rules: &Rules,
    paths: &[PathBuf],
    opts: &TriageOptions,
    progress: &dyn Progress,
) -> Triage {
    let (files, walk_errors) = load::collect_files(paths);
    progress.start(files.len() as u64);
    let parts: Vec<Part> = files
        .par_iter()
        .map(|p| {
            let part = triage_file(rules, opts, p);
            progress.advance(&p.display().to_string());
            part
        })
        .collect();
    let mut all = Part::default();
    for e in &walk_errors {
        all.error(&e.path().display().to_string(), e);
    }
    for p in parts {
        all.reports.extend(p.reports);
        all.findings.extend(p.findings);
        all.errors.extend(p.errors);
        all.files += p.files;
        all.log_entries += p.log_entries;
        all.symbol_problems.extend(p.symbol_problems);
    }
    finish(rules, all)
}

/// Stream one log (any `BufRead`, e.g. a multi-GB `log show` dump) through the log
/// detectors in bounded memory; returns the findings and the number of entries read.
pub fn scan_log_stream(
    rules: &Rules,
    reader: impl BufRead,
    source: &str,
) -> (Vec<Finding>, u64, Vec<TriageError>) {
    let mut part = Part::default();
    let reader = LogReader::with_limits(reader, crate::parse::LogLimits::default());
    scan_log(rules, &mut part, reader, Path::new(source), source, source);
    (part.findings, part.log_entries, part.errors)
}

/// Triage reports already parsed (`(source, reports)` per input; log reports become
/// findings).
pub fn triage_reports(rules: &Rules, inputs: Vec<(String, Vec<Report>)>) -> Triage {
    let mut part = Part::default();
    for (source, reports) in &inputs {
        part.files += 1;
        add_reports(
            rules,
            &TriageOptions::default(),
            &mut part,
            source,
            source,
            reports,
        );
    }
    finish(rules, part)
}

fn finish(rules: &Rules, mut part: Part) -> Triage {
    let sigs: Vec<&Signature> = part.reports.iter().map(|r| &r.detail).collect();
    let clustering = cluster::cluster(&sigs);
    let mut clusters = Vec::with_capacity(clustering.clusters.len());
    for (id, canonical, members) in &clustering.clusters {
        let mut issues: BTreeMap<&str, usize> = BTreeMap::new();
        let mut signatures = BTreeSet::new();
        let mut os = BTreeSet::new();
        let mut processes = BTreeSet::new();
        let mut first: Option<LogTime> = None;
        let mut last: Option<LogTime> = None;
        let mut sources = Vec::new();
        let mut kind = ReportKind::Stack;
        for &i in members {
            let Some(r) = part.reports.get(i) else {
                continue;
            };
            if r.signature == *canonical {
                kind = r.kind;
            }
            if let Some(k) = &r.known_issue {
                *issues.entry(k.as_str()).or_insert(0) += 1;
            }
            signatures.insert(r.signature.clone());
            if let Some(o) = &r.os {
                os.insert(o.clone());
            }
            if let Some(p) = &r.process {
                processes.insert(p.clone());
            }
            if let Some(t) = r.timestamp {
                let k = |t: &LogTime| t.unix_seconds().unwrap_or(0.0);
                if first.is_none_or(|f| k(&t) < k(&f)) {
                    first = Some(t);
                }
                if last.is_none_or(|l| k(&t) > k(&l)) {
                    last = Some(t);
                }
            }
            sources.push(r.source.clone());
        }
        let known = issues
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k.to_string());
        clusters.push(Cluster {
            id: id.clone(),
            signature: canonical.clone(),
            kind,
            count: members.len(),
            title: known
                .as_deref()
                .and_then(|k| rules.issue(k))
                .map(|i| i.title.clone()),
            known_issue: known,
            signatures: signatures.into_iter().collect(),
            sources,
            os_versions: os.into_iter().collect(),
            processes: processes.into_iter().collect(),
            first_seen: first,
            last_seen: last,
        });
    }
    for (i, r) in part.reports.iter_mut().enumerate() {
        if let Some((id, ..)) = clustering
            .assignment
            .get(i)
            .and_then(|c| clustering.clusters.get(*c))
        {
            r.cluster = id.clone();
        }
    }
    clusters.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
    // Findings and crashes from the same input are reported together: same file, or
    // same archive / directory with the report within an hour of the log lines.
    let mut by_input: BTreeMap<&str, Vec<&TriagedReport>> = BTreeMap::new();
    for r in &part.reports {
        by_input.entry(r.input.as_str()).or_default().push(r);
    }
    for f in &mut part.findings {
        let Some(rs) = by_input.get(f.input.as_str()) else {
            continue;
        };
        let window = (
            f.first_seen.and_then(|t| t.unix_seconds()),
            f.last_seen.and_then(|t| t.unix_seconds()),
        );
        let mut related = BTreeSet::new();
        for r in rs {
            let near = match (r.timestamp.and_then(|t| t.unix_seconds()), window) {
                (Some(t), (Some(a), Some(b))) => {
                    t >= a - RELATED_WINDOW_S && t <= b + RELATED_WINDOW_S
                }
                _ => false,
            };
            if r.source == f.source || near {
                related.insert(r.cluster.clone());
            }
        }
        f.related_clusters = related.into_iter().collect();
    }
    part.findings.sort_by(|a, b| {
        b.known_issue
            .is_some()
            .cmp(&a.known_issue.is_some())
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.title.cmp(&b.title))
    });
    Triage {
        reports: part.reports,
        clusters,
        findings: part.findings,
        errors: part.errors,
        files: part.files,
        log_entries: part.log_entries,
        symbol_problems: {
            let mut v = part.symbol_problems;
            v.sort();
            v.dedup();
            v
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_log_show_output_is_an_empty_log() {
        assert!(is_empty_log(
            b"Timestamp                       Thread     Type        Activity             PID    TTL  \n** Processed 0 entries, done. **\n"
        ));
        assert!(!is_empty_log(b"** Processed 0 entries, done. **\n"));
        assert!(!is_empty_log(b"Timestamp\nhello\n"));
        assert!(!is_empty_log(b""));
    }

    #[test]
    fn log_inside_a_report_file_becomes_findings_with_its_crash() {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/forum-skmem-mixed.txt"
        ))
        .unwrap();
        let reports = crate::parse::parse_auto(&text).unwrap();
        let t = triage_reports(&Rules::builtin(), vec![("post.txt".into(), reports)]);
        assert_eq!(t.reports.len(), 1);
        let ids: BTreeSet<_> = t
            .findings
            .iter()
            .map(|f| f.known_issue.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            ids,
            BTreeSet::from([
                "dart-sid-exception".to_string(),
                "flow-divert-no-control-units".to_string()
            ])
        );
        for f in &t.findings {
            assert_eq!(f.related_clusters, [t.reports[0].cluster.clone()]);
        }
    }
}

//! Log findings: streaming detectors over log entries.
//!
//! A [`LogScanner`] sees one entry at a time (logs can be many GB; no entry is kept) and
//! keeps, per known-issue log matcher, a count, first/last seen, counts per process, the
//! first matching line as evidence and — for rate matchers — the peak number of entries
//! within any one-second window (a sliding window of timestamps, bounded by the rate).
//! Error and Fault entries that no matcher claims are grouped by (process, message
//! template); a group of at least [`BURST_MIN`] entries is an "unknown error burst".

use std::collections::{BTreeMap, HashMap, VecDeque};

use memchr::memmem::Finder;

use crate::model::{LogEntry, LogTime, LogType};

use super::rules::{LogMatcher, Matcher, Rules};
use super::template::template;

/// Entries of one template that make an unknown error burst.
pub const BURST_MIN: u64 = 3;
/// Distinct unknown-error templates tracked per log (the rest are counted as overflow).
pub const MAX_ERROR_GROUPS: usize = 4096;
/// Timestamps kept for a rate window (a storm above this rate reads as this rate).
pub const MAX_WINDOW: usize = 1 << 16;

/// A process and how many entries it logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessCount {
    /// Process name (`<unknown>` when the style has none).
    pub name: String,
    /// Entries.
    pub count: u64,
}

/// What the logs say: a known issue's detector fired, or an unknown error burst.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// Where (file, or `archive.tar.gz:inner/path`).
    pub source: String,
    /// The known-issue id, `null` for an unknown error burst.
    pub known_issue: Option<String>,
    /// The issue's title, or `<process>: <message template>`.
    pub title: String,
    /// Matching entries.
    pub count: u64,
    /// First matching entry's timestamp.
    pub first_seen: Option<LogTime>,
    /// Last matching entry's timestamp.
    pub last_seen: Option<LogTime>,
    /// Counts per process (largest first).
    pub processes: Vec<ProcessCount>,
    /// Peak entries within one second.
    pub peak_per_second: Option<u64>,
    /// Entries of the healthy counterpart seen in the same log.
    pub healthy_count: Option<u64>,
    /// What fired, with a sample line.
    pub evidence: Vec<String>,
    /// Cluster ids of reports from the same input (same file or same archive).
    pub related_clusters: Vec<String>,
    /// The input the finding came from (the file, or the archive of an archive member).
    #[serde(skip)]
    pub input: String,
}

#[derive(Debug, Default)]
struct Stats {
    count: u64,
    first: Option<LogTime>,
    last: Option<LogTime>,
    processes: HashMap<String, u64>,
    sample: Option<(u64, String)>,
    window: VecDeque<f64>,
    peak: u64,
    untimed: u64,
}

impl Stats {
    fn add(&mut self, e: &LogEntry, rate: bool) {
        self.count += 1;
        if let Some(t) = e.timestamp {
            if self.first.is_none() {
                self.first = Some(t);
            }
            self.last = Some(t);
        }
        let p = e.process.as_deref().unwrap_or("<unknown>");
        match self.processes.get_mut(p) {
            Some(n) => *n += 1,
            None => {
                if self.processes.len() < 256 {
                    self.processes.insert(p.to_string(), 1);
                }
            }
        }
        if self.sample.is_none() {
            let mut m = e.message.clone();
            if m.len() > 300 {
                let mut cut = 300;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
                m.push('…');
            }
            self.sample = Some((e.line, m));
        }
        if rate {
            match e.timestamp.and_then(|t| t.unix_seconds()) {
                Some(now) => {
                    while self
                        .window
                        .front()
                        .is_some_and(|t| now - t >= 1.0 || *t > now)
                    {
                        self.window.pop_front();
                    }
                    if self.window.len() < MAX_WINDOW {
                        self.window.push_back(now);
                    }
                    self.peak = self.peak.max(self.window.len() as u64);
                }
                None => self.untimed += 1,
            }
        }
    }

    fn processes(&self) -> Vec<ProcessCount> {
        let mut v: Vec<ProcessCount> = self
            .processes
            .iter()
            .map(|(name, count)| ProcessCount {
                name: name.clone(),
                count: *count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

struct Detector<'r> {
    issue: usize,
    matcher: &'r LogMatcher,
    finder: Finder<'r>,
    stats: Stats,
}

/// A streaming scanner for one log source.
pub struct LogScanner<'r> {
    rules: &'r Rules,
    source: String,
    input: String,
    detectors: Vec<Detector<'r>>,
    healthy: Vec<(usize, &'r LogMatcher, Finder<'r>, u64)>,
    errors: HashMap<(String, String), Stats>,
    error_overflow: u64,
    entries: u64,
}

impl std::fmt::Debug for LogScanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogScanner")
            .field("source", &self.source)
            .field("entries", &self.entries)
            .field("error_groups", &self.errors.len())
            .finish_non_exhaustive()
    }
}

impl<'r> LogScanner<'r> {
    /// A scanner for `source` (as reported) that belongs to `input` (the file or archive).
    pub fn new(rules: &'r Rules, source: &str, input: &str) -> Self {
        let mut detectors = Vec::new();
        let mut healthy = Vec::new();
        for (i, issue) in rules.issues.iter().enumerate() {
            for m in &issue.matchers {
                if let Matcher::Log(l) = m {
                    detectors.push(Detector {
                        issue: i,
                        matcher: l,
                        finder: Finder::new(l.message.as_bytes()),
                        stats: Stats::default(),
                    });
                }
            }
            for h in &issue.healthy {
                healthy.push((i, h, Finder::new(h.message.as_bytes()), 0));
            }
        }
        LogScanner {
            rules,
            source: source.to_string(),
            input: input.to_string(),
            detectors,
            healthy,
            errors: HashMap::new(),
            error_overflow: 0,
            entries: 0,
        }
    }

    /// Entries seen.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Feed one entry.
    pub fn feed(&mut self, e: &LogEntry) {
        self.entries += 1;
        let msg = e.message.as_bytes();
        let process = e.process.as_deref();
        let mut claimed = false;
        for d in &mut self.detectors {
            if d.finder.find(msg).is_some() && d.matcher.matches(process, &e.message) {
                d.stats.add(e, d.matcher.min_per_second.is_some());
                claimed = true;
            }
        }
        for (_, h, finder, n) in &mut self.healthy {
            if finder.find(msg).is_some() && h.matches(process, &e.message) {
                *n += 1;
            }
        }
        if !claimed && matches!(e.log_type, Some(LogType::Error | LogType::Fault)) {
            let key = (
                process.unwrap_or("<unknown>").to_string(),
                template(&e.message),
            );
            if let Some(s) = self.errors.get_mut(&key) {
                s.add(e, true);
            } else if self.errors.len() < MAX_ERROR_GROUPS {
                let mut s = Stats::default();
                s.add(e, true);
                self.errors.insert(key, s);
            } else {
                self.error_overflow += 1;
            }
        }
    }

    /// The findings: known issues whose detectors fired (any matcher reaching its
    /// `min_count` / `min_per_second`), then unknown error bursts (≥ [`BURST_MIN`]).
    pub fn finish(self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut by_issue: BTreeMap<usize, Vec<&Detector<'_>>> = BTreeMap::new();
        for d in &self.detectors {
            if d.stats.count > 0 {
                by_issue.entry(d.issue).or_default().push(d);
            }
        }
        for (i, ds) in by_issue {
            let Some(issue) = self.rules.issues.get(i) else {
                continue;
            };
            let fired = ds.iter().any(|d| {
                d.stats.count >= d.matcher.min_count
                    && d.matcher.min_per_second.is_none_or(|r| d.stats.peak >= r)
            });
            let total_count: u64 = ds.iter().map(|d| d.stats.count).sum();
            if !fired || total_count < issue.min_count {
                continue;
            }
            let mut total = Stats::default();
            let mut evidence = Vec::new();
            let mut peak: Option<u64> = None;
            for d in &ds {
                let s = &d.stats;
                total.count += s.count;
                total.first = min_time(total.first, s.first);
                total.last = max_time(total.last, s.last);
                for (p, n) in &s.processes {
                    *total.processes.entry(p.clone()).or_insert(0) += n;
                }
                let mut line = format!("{}× {}", s.count, d.matcher.describe());
                if let Some(r) = d.matcher.min_per_second {
                    peak = Some(peak.unwrap_or(0).max(s.peak));
                    line.push_str(&format!(" — peak {}/s (storm threshold {r}/s)", s.peak));
                    if s.untimed > 0 {
                        line.push_str(&format!(", {} entries without a timestamp", s.untimed));
                    }
                } else if d.matcher.min_count > 1 {
                    line.push_str(&format!(" (threshold {})", d.matcher.min_count));
                }
                if let Some((l, m)) = &s.sample {
                    line.push_str(&format!("; line {l}: {m}"));
                }
                evidence.push(line);
            }
            let healthy: Vec<u64> = self
                .healthy
                .iter()
                .filter(|(hi, ..)| *hi == i)
                .map(|(.., n)| *n)
                .collect();
            out.push(Finding {
                source: self.source.clone(),
                known_issue: Some(issue.id.clone()),
                title: issue.title.clone(),
                count: total.count,
                first_seen: total.first,
                last_seen: total.last,
                processes: total.processes(),
                peak_per_second: peak,
                healthy_count: (!healthy.is_empty()).then(|| healthy.iter().sum()),
                evidence,
                related_clusters: Vec::new(),
                input: self.input.clone(),
            });
        }
        let mut bursts: Vec<_> = self
            .errors
            .into_iter()
            .filter(|(_, s)| s.count >= BURST_MIN)
            .collect();
        bursts.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        for ((process, tpl), s) in bursts {
            let mut evidence = vec![format!(
                "{} Error/Fault entries with this template, peak {}/s",
                s.count, s.peak
            )];
            if let Some((l, m)) = &s.sample {
                evidence.push(format!("line {l}: {m}"));
            }
            out.push(Finding {
                source: self.source.clone(),
                known_issue: None,
                title: format!("{process}: {tpl}"),
                count: s.count,
                first_seen: s.first,
                last_seen: s.last,
                processes: s.processes(),
                peak_per_second: Some(s.peak),
                healthy_count: None,
                evidence,
                related_clusters: Vec::new(),
                input: self.input.clone(),
            });
        }
        if self.error_overflow > 0 {
            out.push(Finding {
                source: self.source,
                known_issue: None,
                title: format!(
                    "more than {MAX_ERROR_GROUPS} distinct error templates: {} further Error/Fault entries not grouped",
                    self.error_overflow
                ),
                count: self.error_overflow,
                first_seen: None,
                last_seen: None,
                processes: Vec::new(),
                peak_per_second: None,
                healthy_count: None,
                evidence: Vec::new(),
                related_clusters: Vec::new(),
                input: self.input,
            });
        }
        out
    }
}

fn key(t: &LogTime) -> (Option<i64>, LogTime) {
    (t.unix_seconds().map(|s| (s * 1e6) as i64), *t)
}

fn min_time(a: Option<LogTime>, b: Option<LogTime>) -> Option<LogTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if key(&y) < key(&x) { y } else { x }),
        (x, y) => x.or(y),
    }
}

fn max_time(a: Option<LogTime>, b: Option<LogTime>) -> Option<LogTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if key(&y) > key(&x) { y } else { x }),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogStyle;

    fn entry(line: u64, secs: f64, process: &str, message: &str, ty: LogType) -> LogEntry {
        let mut e = LogEntry::new(LogStyle::Default, line, message.to_string());
        let whole = secs.floor();
        e.timestamp = Some(LogTime {
            year: 2026,
            month: 3,
            day: 30,
            hour: 14,
            minute: (whole as u64 / 60) as u8,
            second: (whole as u64 % 60) as u8,
            nanos: ((secs - whole) * 1e9) as u32,
            offset_minutes: Some(0),
        });
        e.process = Some(process.to_string());
        e.log_type = Some(ty);
        e
    }

    const SKIP: &str = "NESMVPNSession[Primary Tunnel:Secure DNS: Skip a start command from Spotify Helper[69038]: session in state connecting";

    #[test]
    fn a_storm_is_a_rate_not_a_line() {
        let rules = Rules::builtin();
        // Five start commands minutes apart: normal.
        let mut calm = LogScanner::new(&rules, "calm.log", "calm.log");
        for i in 0..5 {
            calm.feed(&entry(
                i,
                i as f64 * 120.0,
                "nesessionmanager",
                SKIP,
                LogType::Default,
            ));
        }
        assert!(calm.finish().is_empty());
        // 500 within one second: a storm.
        let mut storm = LogScanner::new(&rules, "storm.log", "storm.log");
        for i in 0..500 {
            storm.feed(&entry(
                i,
                10.0 + i as f64 / 1000.0,
                "nesessionmanager",
                SKIP,
                LogType::Default,
            ));
        }
        let f = storm.finish();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].known_issue.as_deref(), Some("nesm-vpn-start-storm"));
        assert_eq!(f[0].count, 500);
        assert_eq!(f[0].peak_per_second, Some(500));
        assert_eq!(f[0].processes[0].name, "nesessionmanager");
    }

    #[test]
    fn one_emfile_line_from_another_daemon_is_not_the_leak() {
        let rules = Rules::builtin();
        let mut s = LogScanner::new(&rules, "a.log", "a.log");
        s.feed(&entry(
            1,
            1.0,
            "mDNSResponder",
            "Failed to create socket: Too many open files",
            LogType::Error,
        ));
        assert!(s.finish().is_empty());
        let mut s = LogScanner::new(&rules, "b.log", "b.log");
        for i in 0..4 {
            s.feed(&entry(
                i,
                i as f64,
                "wifip2pd",
                "Failed to create socket: Too many open files",
                LogType::Error,
            ));
        }
        let f = s.finish();
        assert_eq!(f[0].known_issue.as_deref(), Some("wifip2pd-fd-leak-emfile"));
        assert_eq!(
            f.len(),
            1,
            "claimed entries are not an unknown burst: {f:?}"
        );
    }

    #[test]
    fn unknown_error_bursts_group_by_template() {
        let rules = Rules::builtin();
        let mut s = LogScanner::new(&rules, "c.log", "c.log");
        for i in 0..5 {
            s.feed(&entry(
                i,
                i as f64,
                "myd",
                &format!("request {i} failed: error 0x{:x}", 0xdead00 + i),
                LogType::Error,
            ));
        }
        s.feed(&entry(9, 9.0, "myd", "something else", LogType::Error));
        let f = s.finish();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].known_issue, None);
        assert_eq!(f[0].title, "myd: request NUM failed: error ADDR");
        assert_eq!(f[0].count, 5);
    }
}

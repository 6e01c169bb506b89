//! Rules: frame skip rules for signatures and the known-issue knowledge base.
//!
//! Both live in TOML data files shipped with the crate (`rules/frames.toml`,
//! `rules/known-issues.toml`, embedded with `include_str!`) and are extended with
//! `--rules FILE` ([`Rules::add_toml`]): a file may hold `[[skip]]` rules, `[[issue]]`
//! entries or both. A user `[[issue]]` whose id already exists replaces the shipped one.
//! A bad file is an error naming `path:line: message`.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

/// The shipped frame rules.
pub const BUILTIN_FRAMES: &str = include_str!("../../rules/frames.toml");
/// The shipped knowledge base.
pub const BUILTIN_KNOWN_ISSUES: &str = include_str!("../../rules/known-issues.toml");

/// A rules file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct RulesError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl RulesError {
    /// A stable identifier.
    pub fn name(&self) -> &'static str {
        "bad_rules"
    }
}

/// A frame skip rule.
#[derive(Debug, Clone)]
pub struct SkipRule {
    /// The pattern (on the normalised symbol).
    pub symbol: Regex,
    /// Why such frames are skipped (shown by `crashlog signature`).
    pub reason: String,
    /// A blocking primitive (a hang is "blocked in" it).
    pub wait: bool,
}

/// What a known issue is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// Kernel panics.
    Panic,
    /// App crashes.
    Crash,
    /// Hangs and deadlocks.
    Hang,
    /// Log findings.
    Log,
}

impl IssueKind {
    fn parse(s: &str) -> Option<IssueKind> {
        Some(match s {
            "panic" => IssueKind::Panic,
            "crash" => IssueKind::Crash,
            "hang" => IssueKind::Hang,
            "log" => IssueKind::Log,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Panic => "panic",
            IssueKind::Crash => "crash",
            IssueKind::Hang => "hang",
            IssueKind::Log => "log",
        }
    }
}

/// A log-entry matcher.
#[derive(Debug, Clone)]
pub struct LogMatcher {
    /// Substring of the message (required).
    pub message: String,
    /// A second substring the message must also contain.
    pub contains_also: Option<String>,
    /// Exact process name.
    pub process: Option<String>,
    /// Entries needed (default 1).
    pub min_count: u64,
    /// Entries within one second needed (a rate detector).
    pub min_per_second: Option<u64>,
}

impl LogMatcher {
    /// Whether one entry matches (process and substrings; counts are the caller's).
    pub fn matches(&self, process: Option<&str>, message: &str) -> bool {
        if let Some(p) = &self.process
            && process != Some(p.as_str())
        {
            return false;
        }
        message.contains(self.message.as_str())
            && self
                .contains_also
                .as_deref()
                .is_none_or(|also| message.contains(also))
    }

    /// A short description for evidence lines.
    pub fn describe(&self) -> String {
        let mut s = format!("\"{}\"", self.message);
        if let Some(a) = &self.contains_also {
            s.push_str(&format!(" + \"{a}\""));
        }
        if let Some(p) = &self.process {
            s.push_str(&format!(" from {p}"));
        }
        s
    }
}

/// One way to recognise a known issue.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Substring of the panic template.
    Panic(String),
    /// Ordered frames (innermost first, gaps allowed).
    Frames {
        /// Symbols (a trailing `*` matches a prefix).
        frames: Vec<String>,
        /// Deepest index the first frame may have.
        within: usize,
        /// Required exception-type prefix.
        exception: Option<String>,
    },
    /// A log detector.
    Log(LogMatcher),
}

/// One known issue.
#[derive(Debug, Clone)]
pub struct KnownIssue {
    /// Stable id (`skmem-slab-double-free`).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// What it is about.
    pub kind: Option<IssueKind>,
    /// Affected OS versions / builds / feedback ids.
    pub affected: Vec<String>,
    /// References (forum threads, source files).
    pub references: Vec<String>,
    /// What to do about it.
    pub what_to_do: String,
    /// Matchers (any one is enough).
    pub matchers: Vec<Matcher>,
    /// Healthy counterparts (counted, never a match).
    pub healthy: Vec<LogMatcher>,
    /// Log entries (all log matchers together) needed for a finding (default 1).
    pub min_count: u64,
    /// Where it was defined (`rules/known-issues.toml:31`).
    pub defined_at: String,
}

/// Skip rules plus the knowledge base.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Frame skip rules, in order (first match decides).
    pub skip: Vec<SkipRule>,
    /// Known issues.
    pub issues: Vec<KnownIssue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    skip: Vec<Spanned<SkipDef>>,
    #[serde(default)]
    issue: Vec<Spanned<IssueDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipDef {
    symbol: String,
    reason: String,
    #[serde(default)]
    wait: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueDef {
    id: String,
    title: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    affected: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    what_to_do: String,
    #[serde(default)]
    healthy: Vec<LogDef>,
    #[serde(default)]
    min_count: Option<u64>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<MatchDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDef {
    #[serde(default)]
    panic: Option<String>,
    #[serde(default)]
    frames: Option<Vec<String>>,
    #[serde(default)]
    within: Option<usize>,
    #[serde(default)]
    exception: Option<String>,
    #[serde(default)]
    log: Option<LogDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogDef {
    message: String,
    #[serde(default)]
    contains_also: Option<String>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    min_count: Option<u64>,
    #[serde(default)]
    min_per_second: Option<u64>,
}

impl From<LogDef> for LogMatcher {
    fn from(d: LogDef) -> Self {
        LogMatcher {
            message: d.message,
            contains_also: d.contains_also,
            process: d.process,
            min_count: d.min_count.unwrap_or(1).max(1),
            min_per_second: d.min_per_second,
        }
    }
}

/// Default depth bound of a frames matcher.
pub const DEFAULT_WITHIN: usize = 16;

fn line_of(text: &str, offset: usize) -> u64 {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| memchr::memchr_iter(b'\n', b).count()) as u64
        + 1
}

impl Rules {
    /// The shipped rules (frame rules and the knowledge base).
    pub fn builtin() -> Rules {
        let mut r = Rules::default();
        // The shipped files are tested (`builtin_rules_load`); a failure here is a build bug.
        if let Err(e) = r.add_toml(Path::new("rules/frames.toml"), BUILTIN_FRAMES) {
            debug_assert!(false, "{e}");
        }
        if let Err(e) = r.add_toml(Path::new("rules/known-issues.toml"), BUILTIN_KNOWN_ISSUES) {
            debug_assert!(false, "{e}");
        }
        r
    }

    /// Add the rules of a file read from disk.
    pub fn add_file(&mut self, path: &Path) -> Result<(), RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?;
        self.add_toml(path, &text)
    }

    /// Add rules from TOML text (`path` names it in errors). Nothing is added on error.
    pub fn add_toml(&mut self, path: &Path, text: &str) -> Result<(), RulesError> {
        let err = |offset: usize, message: String| RulesError {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let def: FileDef = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            err(offset, e.message().trim().to_string())
        })?;
        if let Some(s) = &def.schema
            && s != "crashlog.kb.v1"
            && s != "crashlog.rules.v1"
        {
            return Err(err(
                0,
                format!(
                    "unknown schema {s:?} (expected \"crashlog.rules.v1\" or \"crashlog.kb.v1\")"
                ),
            ));
        }
        let mut skip = Vec::new();
        for s in def.skip {
            let at = s.span().start;
            let s = s.into_inner();
            let symbol = Regex::new(&s.symbol)
                .map_err(|e| err(at, format!("bad symbol pattern {:?}: {e}", s.symbol)))?;
            skip.push(SkipRule {
                symbol,
                reason: s.reason,
                wait: s.wait,
            });
        }
        let mut issues = Vec::new();
        for i in def.issue {
            let at = i.span().start;
            let i = i.into_inner();
            if i.id.trim().is_empty() {
                return Err(err(at, "issue id is empty".into()));
            }
            let kind = match i.kind.as_deref() {
                None => None,
                Some(k) => Some(IssueKind::parse(k).ok_or_else(|| {
                    err(
                        at,
                        format!(
                            "issue {}: unknown kind {k:?} (panic, crash, hang or log)",
                            i.id
                        ),
                    )
                })?),
            };
            let mut matchers = Vec::new();
            for m in i.matchers {
                let mat = m.span().start;
                let m = m.into_inner();
                let set = usize::from(m.panic.is_some())
                    + usize::from(m.frames.is_some())
                    + usize::from(m.log.is_some());
                if set != 1 {
                    return Err(err(
                        mat,
                        format!(
                            "issue {}: each [[issue.match]] needs exactly one of panic, frames or log",
                            i.id
                        ),
                    ));
                }
                if let Some(p) = m.panic {
                    matchers.push(Matcher::Panic(p));
                } else if let Some(frames) = m.frames {
                    if frames.is_empty() || frames.iter().any(|f| f.trim().is_empty()) {
                        return Err(err(
                            mat,
                            format!("issue {}: empty frames list or frame", i.id),
                        ));
                    }
                    matchers.push(Matcher::Frames {
                        frames,
                        within: m.within.unwrap_or(DEFAULT_WITHIN),
                        exception: m.exception,
                    });
                } else if let Some(l) = m.log {
                    if l.message.is_empty() {
                        return Err(err(mat, format!("issue {}: empty log message", i.id)));
                    }
                    matchers.push(Matcher::Log(l.into()));
                }
            }
            if matchers.is_empty() {
                return Err(err(at, format!("issue {} has no [[issue.match]]", i.id)));
            }
            issues.push(KnownIssue {
                defined_at: format!("{}:{}", path.display(), line_of(text, at)),
                id: i.id,
                title: i.title,
                kind,
                affected: i.affected,
                references: i.references,
                what_to_do: i.what_to_do,
                matchers,
                healthy: i.healthy.into_iter().map(LogMatcher::from).collect(),
                min_count: i.min_count.unwrap_or(1).max(1),
            });
        }
        self.skip.extend(skip);
        for issue in issues {
            match self.issues.iter_mut().find(|k| k.id == issue.id) {
                Some(old) => *old = issue,
                None => self.issues.push(issue),
            }
        }
        Ok(())
    }

    /// The known issue with this id.
    pub fn issue(&self, id: &str) -> Option<&KnownIssue> {
        self.issues.iter().find(|i| i.id == id)
    }

    /// The first skip rule matching a normalised symbol.
    pub fn skip_rule(&self, symbol: &str) -> Option<&SkipRule> {
        self.skip.iter().find(|r| r.symbol.is_match(symbol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load() {
        let mut r = Rules::default();
        r.add_toml(Path::new("rules/frames.toml"), BUILTIN_FRAMES)
            .unwrap();
        r.add_toml(Path::new("rules/known-issues.toml"), BUILTIN_KNOWN_ISSUES)
            .unwrap();
        // Every id of ../shared/reference/field-failures.md, exactly.
        let ids: Vec<&str> = r.issues.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "skmem-slab-double-free",
                "quic-migration-buffer-uaf",
                "getaddrinfo-fork-child-nat64",
                "atfork-nw-path-prepare-deadlock",
                "wifip2pd-fd-leak-emfile",
                "flow-divert-no-control-units",
                "nesm-vpn-start-storm",
                "dart-sid-exception",
                "nw-connection-enomem",
                "companion-link-tls-1200",
                "network-request-enospc",
            ]
        );
        for i in &r.issues {
            assert!(!i.title.is_empty() && !i.what_to_do.is_empty(), "{}", i.id);
            assert!(
                !i.affected.is_empty() && !i.references.is_empty(),
                "{}",
                i.id
            );
        }
        assert!(r.skip_rule("__pthread_kill").is_some());
        assert!(r.skip_rule("_dispatch_lane_invoke").is_some());
        assert!(r.skip_rule("quic_conn_send_packet").is_none());
        assert!(r.skip_rule("_os_unfair_lock_lock_slow").unwrap().wait);
    }

    #[test]
    fn bad_rules_name_file_and_line() {
        let mut r = Rules::builtin();
        let n = r.issues.len();
        let e = r
            .add_toml(
                Path::new("my.toml"),
                "[[skip]]\nsymbol = '^ok$'\nreason = \"x\"\n\n[[skip]]\nsymbol = '(unclosed'\nreason = \"y\"\n",
            )
            .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.to_string().starts_with("my.toml:5: bad symbol pattern"),
            "{e}"
        );
        let e = r
            .add_toml(Path::new("kb.toml"), "[[issue]]\nid = \"x\"\ntitle = \"t\"\n\n[[issue.match]]\nlog = { message = \"m\" }\nframes = [\"a\"]\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kb.toml:5: issue x: each [[issue.match]] needs exactly one of panic, frames or log"
        );
        let e = r
            .add_toml(
                Path::new("kb.toml"),
                "[[issue]]\nid = \"x\"\ntitle = \"t\"\nbogus = 1\n",
            )
            .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = r
            .add_toml(Path::new("kb.toml"), "schema = 3\n[[issue]\n")
            .unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert_eq!(r.issues.len(), n, "nothing added on error");
    }

    #[test]
    fn user_issue_overrides_and_extends() {
        let mut r = Rules::builtin();
        r.add_toml(
            Path::new("user.toml"),
            "[[issue]]\nid = \"dart-sid-exception\"\ntitle = \"mine\"\n[[issue.match]]\nlog = { message = \"DART\" }\n\n[[issue]]\nid = \"my-bug\"\ntitle = \"new\"\nkind = \"crash\"\n[[issue.match]]\nframes = [\"my_func*\"]\n",
        )
        .unwrap();
        assert_eq!(r.issue("dart-sid-exception").unwrap().title, "mine");
        assert_eq!(r.issue("my-bug").unwrap().defined_at, "user.toml:7");
    }
}

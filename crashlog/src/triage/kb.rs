//! Matching reports against the known-issue knowledge base.
//!
//! Panic matchers look at the panic template, frame matchers at the frames of the
//! crashed / blocked thread (every thread of a hang report), log matchers at log entries
//! (see [`super::findings`]). Each match carries its evidence.

use crate::model::{Report, ReportKind};

use super::rules::{KnownIssue, Matcher, Rules};
use super::signature::{Signature, frame_name};

/// A known issue recognised in a report, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Match {
    /// The known-issue id.
    pub id: String,
    /// What matched, e.g. `frames #3 nw_protocol_data_access_buffer … #8 quic_migration_probe_path`.
    pub evidence: Vec<String>,
}

/// The first known issue (in knowledge-base order) matching a report.
pub fn match_report(rules: &Rules, report: &Report, sig: &Signature) -> Option<Match> {
    rules
        .issues
        .iter()
        .find_map(|issue| match_issue(issue, report, sig))
}

fn match_issue(issue: &KnownIssue, report: &Report, sig: &Signature) -> Option<Match> {
    let mut evidence = Vec::new();
    for m in &issue.matchers {
        match m {
            Matcher::Panic(needle) => {
                if report.kind != ReportKind::Panic {
                    continue;
                }
                let tpl = sig.template.as_deref().unwrap_or("");
                let raw = report
                    .panic
                    .as_ref()
                    .and_then(|p| p.message.as_deref())
                    .unwrap_or("");
                if tpl.contains(needle.as_str()) || raw.contains(needle.as_str()) {
                    evidence.push(format!("panic message: {tpl}"));
                }
            }
            Matcher::Frames {
                frames,
                within,
                exception,
            } => {
                if report.kind == ReportKind::Panic || report.kind == ReportKind::Log {
                    continue;
                }
                if let Some(want) = exception {
                    let have = sig.exception.as_deref().unwrap_or("");
                    if !have.starts_with(want.as_str()) {
                        continue;
                    }
                }
                if let Some(hit) = frames_in(&sig.all_frames, frames, *within) {
                    evidence.push(hit);
                } else if report.kind == ReportKind::Hang {
                    // A deadlock involves several threads: look at all of them.
                    for t in &report.threads {
                        let names: Vec<String> = t.frames.iter().map(frame_name).collect();
                        if let Some(hit) = frames_in(&names, frames, *within) {
                            evidence.push(format!("thread {}: {hit}", t.index));
                            break;
                        }
                    }
                }
            }
            Matcher::Log(_) => {}
        }
    }
    (!evidence.is_empty()).then(|| Match {
        id: issue.id.clone(),
        evidence,
    })
}

fn frame_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// `frames` in order (gaps allowed) in `names`, the first at depth ≤ `within`;
/// returns the evidence text.
fn frames_in(names: &[String], frames: &[String], within: usize) -> Option<String> {
    let first = frames.first()?;
    for (start, n) in names.iter().enumerate().take(within.saturating_add(1)) {
        if !frame_matches(first, n) {
            continue;
        }
        let mut hits = vec![(start, n.as_str())];
        let mut pos = start + 1;
        let mut ok = true;
        for want in frames.iter().skip(1) {
            match names
                .iter()
                .enumerate()
                .skip(pos)
                .find(|(_, n)| frame_matches(want, n))
            {
                Some((i, n)) => {
                    hits.push((i, n.as_str()));
                    pos = i + 1;
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            let list: Vec<String> = hits.iter().map(|(i, n)| format!("#{i} {n}")).collect();
            return Some(format!("frames {}", list.join(" … ")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ordered_frames_with_gaps() {
        let n = names(&["a", "x", "b", "y", "c"]);
        assert_eq!(
            frames_in(&n, &names(&["a", "b", "c"]), 16).as_deref(),
            Some("frames #0 a … #2 b … #4 c")
        );
        assert!(frames_in(&n, &names(&["b", "a"]), 16).is_none());
        assert!(frames_in(&n, &names(&["c"]), 2).is_none());
        assert!(frames_in(&n, &names(&["x*", "y"]), 16).is_some());
    }
}

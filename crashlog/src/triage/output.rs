//! Rendering a [`Triage`]: the readable table, Markdown, JSON and NDJSON
//! (`crashlog.triage.v1`, see [`crate::json_schema`]). All over `impl Write`.

use std::collections::BTreeSet;
use std::io::{self, Write};

use serde_json::{Value, json};

use super::signature::Signature;
use super::{Cluster, Finding, Rules, SCHEMA, Triage};
use crate::model::LogTime;

/// Output format of `crashlog triage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Readable table.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (`"type"`: summary, report, cluster, finding, error).
    Ndjson,
    /// Markdown tables (for a bug tracker).
    Markdown,
}

/// Keep only clusters and findings with at least `min` entries (and the reports of the
/// clusters kept).
pub fn apply_min_count(t: &mut Triage, min: usize) {
    if min <= 1 {
        return;
    }
    t.clusters.retain(|c| c.count >= min);
    let kept: BTreeSet<String> = t.clusters.iter().map(|c| c.id.clone()).collect();
    t.reports.retain(|r| kept.contains(&r.cluster));
    t.findings.retain(|f| f.count >= min as u64);
}

/// Write `t` in `format`.
pub fn write(
    out: &mut impl Write,
    t: &Triage,
    rules: &Rules,
    format: OutputFormat,
) -> io::Result<()> {
    match format {
        OutputFormat::Table => write_table(out, t, rules),
        OutputFormat::Json => write_json(out, t),
        OutputFormat::Ndjson => write_ndjson(out, t),
        OutputFormat::Markdown => write_markdown(out, t, rules),
    }
}

fn summary(t: &Triage) -> Value {
    json!({
        "files": t.files,
        "reports": t.reports.len(),
        "clusters": t.clusters.len(),
        "findings": t.findings.len(),
        "errors": t.errors.len(),
        "log_entries": t.log_entries,
        "known_issues": known_ids(t),
    })
}

fn known_ids(t: &Triage) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for c in &t.clusters {
        ids.extend(c.known_issue.clone());
    }
    for f in &t.findings {
        ids.extend(f.known_issue.clone());
    }
    ids.into_iter().collect()
}

/// The JSON document.
pub fn to_json(t: &Triage) -> Value {
    json!({
        "schema": SCHEMA,
        "summary": summary(t),
        "reports": t.reports,
        "clusters": t.clusters,
        "findings": t.findings,
        "errors": t.errors,
    })
}

fn write_json(out: &mut impl Write, t: &Triage) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_json(t))?;
    writeln!(out)
}

fn tagged(kind: &str, v: impl serde::Serialize) -> io::Result<Value> {
    let mut v = serde_json::to_value(v)?;
    if let Value::Object(m) = &mut v {
        m.insert("schema".into(), Value::from(SCHEMA));
        m.insert("type".into(), Value::from(kind));
    }
    Ok(v)
}

fn write_ndjson(out: &mut impl Write, t: &Triage) -> io::Result<()> {
    let mut line = |v: Value| -> io::Result<()> {
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)
    };
    line(tagged("summary", summary(t))?)?;
    for r in &t.reports {
        line(tagged("report", r)?)?;
    }
    for c in &t.clusters {
        line(tagged("cluster", c)?)?;
    }
    for f in &t.findings {
        line(tagged("finding", f)?)?;
    }
    for e in &t.errors {
        line(tagged("error", e)?)?;
    }
    Ok(())
}

fn time(t: Option<LogTime>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut o: String = s.chars().take(max.saturating_sub(1)).collect();
    o.push('…');
    o
}

fn list(v: &[String], max: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut s = v.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > max {
        s.push_str(&format!(" (+{} more)", v.len() - max));
    }
    s
}

fn seen(first: Option<LogTime>, last: Option<LogTime>) -> String {
    match (first, last) {
        (None, None) => "-".into(),
        (f, l) if f == l => time(f),
        (f, l) => format!("{} .. {}", time(f), time(l)),
    }
}

/// `N reports in N clusters, N log findings, N errors (N files, N log entries)`.
fn summary_line(t: &Triage) -> String {
    format!(
        "{} reports in {} clusters, {} log findings, {} errors ({} files, {} log entries)",
        t.reports.len(),
        t.clusters.len(),
        t.findings.len(),
        t.errors.len(),
        t.files,
        t.log_entries
    )
}

fn write_table(out: &mut impl Write, t: &Triage, rules: &Rules) -> io::Result<()> {
    writeln!(out, "crashlog triage: {}", summary_line(t))?;
    if !t.clusters.is_empty() {
        writeln!(out, "\nCLUSTERS (by count)")?;
        writeln!(
            out,
            "{:>5}  {:<16}  {:<31}  SIGNATURE",
            "COUNT", "CLUSTER", "KNOWN ISSUE"
        )?;
        for c in &t.clusters {
            write_cluster_row(out, c)?;
        }
    }
    if !t.findings.is_empty() {
        writeln!(
            out,
            "\nLOG FINDINGS (known issues first, then unknown error bursts)"
        )?;
        writeln!(out, "{:>5}  {:<31}  TITLE", "COUNT", "KNOWN ISSUE")?;
        for f in &t.findings {
            write_finding_row(out, f)?;
        }
    }
    let ids = known_ids(t);
    if !ids.is_empty() {
        writeln!(out, "\nKNOWN ISSUES")?;
        for id in ids {
            if let Some(i) = rules.issue(&id) {
                writeln!(out, "  {} — {}", i.id, i.title)?;
                writeln!(out, "      affected:   {}", i.affected.join("; "))?;
                writeln!(out, "      what to do: {}", i.what_to_do)?;
                writeln!(out, "      references: {}", i.references.join("; "))?;
            }
        }
    }
    if !t.errors.is_empty() {
        writeln!(out, "\nERRORS")?;
        for e in &t.errors {
            writeln!(out, "  {}:{}", e.source, sep_message(&e.message))?;
        }
    }
    if !t.found_anything() && t.errors.is_empty() {
        writeln!(out, "\nnothing found")?;
    }
    Ok(())
}

fn sep_message(m: &str) -> String {
    if m.starts_with(|c: char| c.is_ascii_digit()) {
        m.to_string()
    } else {
        format!(" {m}")
    }
}

fn write_cluster_row(out: &mut impl Write, c: &Cluster) -> io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<16}  {:<31}  {}",
        c.count,
        c.id,
        c.known_issue.as_deref().unwrap_or("-"),
        cut(&c.signature, 110)
    )?;
    writeln!(
        out,
        "{:>5}  os: {}; processes: {}; seen: {}",
        "",
        list(&c.os_versions, 3),
        list(&c.processes, 4),
        seen(c.first_seen, c.last_seen)
    )?;
    if c.signatures.len() > 1 {
        writeln!(
            out,
            "{:>5}  merged {} signatures (near duplicates)",
            "",
            c.signatures.len()
        )?;
    }
    writeln!(out, "{:>5}  sources: {}", "", list(&c.sources, 4))
}

fn write_finding_row(out: &mut impl Write, f: &Finding) -> io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<31}  {}",
        f.count,
        f.known_issue.as_deref().unwrap_or("- (unknown burst)"),
        cut(&f.title, 110)
    )?;
    let procs: Vec<String> = f
        .processes
        .iter()
        .map(|p| format!("{} ×{}", p.name, p.count))
        .collect();
    let mut line = format!(
        "{:>5}  source: {}; processes: {}; seen: {}",
        "",
        f.source,
        list(&procs, 3),
        seen(f.first_seen, f.last_seen)
    );
    if let Some(p) = f.peak_per_second {
        line.push_str(&format!("; peak {p}/s"));
    }
    if let Some(h) = f.healthy_count {
        line.push_str(&format!("; healthy lines: {h}"));
    }
    writeln!(out, "{line}")?;
    for e in f.evidence.iter().take(3) {
        writeln!(out, "{:>5}  evidence: {}", "", cut(e, 160))?;
    }
    if !f.related_clusters.is_empty() {
        writeln!(
            out,
            "{:>5}  with crashes in the same input: clusters {}",
            "",
            f.related_clusters.join(", ")
        )?;
    }
    Ok(())
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn write_markdown(out: &mut impl Write, t: &Triage, rules: &Rules) -> io::Result<()> {
    writeln!(out, "# crashlog triage\n")?;
    writeln!(out, "{}.\n", summary_line(t))?;
    if !t.clusters.is_empty() {
        writeln!(out, "## Clusters\n")?;
        writeln!(
            out,
            "| count | cluster | known issue | signature | OS versions | processes | first seen | last seen |"
        )?;
        writeln!(out, "|---:|---|---|---|---|---|---|---|")?;
        for c in &t.clusters {
            writeln!(
                out,
                "| {} | `{}` | {} | `{}` | {} | {} | {} | {} |",
                c.count,
                c.id,
                c.known_issue
                    .as_deref()
                    .map_or("-".into(), |k| format!("`{k}`")),
                md(&c.signature),
                md(&list(&c.os_versions, 3)),
                md(&list(&c.processes, 4)),
                time(c.first_seen),
                time(c.last_seen)
            )?;
        }
        writeln!(out)?;
    }
    if !t.findings.is_empty() {
        writeln!(out, "## Log findings\n")?;
        writeln!(
            out,
            "| count | known issue | title | source | processes | peak/s | first seen | last seen |"
        )?;
        writeln!(out, "|---:|---|---|---|---|---:|---|---|")?;
        for f in &t.findings {
            let procs: Vec<String> = f
                .processes
                .iter()
                .map(|p| format!("{} ×{}", p.name, p.count))
                .collect();
            writeln!(
                out,
                "| {} | {} | {} | `{}` | {} | {} | {} | {} |",
                f.count,
                f.known_issue
                    .as_deref()
                    .map_or("-".into(), |k| format!("`{k}`")),
                md(&f.title),
                md(&f.source),
                md(&list(&procs, 3)),
                f.peak_per_second.map_or("-".into(), |p| p.to_string()),
                time(f.first_seen),
                time(f.last_seen)
            )?;
        }
        writeln!(out)?;
    }
    let ids = known_ids(t);
    if !ids.is_empty() {
        writeln!(out, "## Known issues\n")?;
        for id in ids {
            if let Some(i) = rules.issue(&id) {
                writeln!(out, "- **`{}`** — {}", i.id, md(&i.title))?;
                writeln!(out, "  - affected: {}", md(&i.affected.join("; ")))?;
                writeln!(out, "  - what to do: {}", md(&i.what_to_do))?;
                writeln!(out, "  - references: {}", md(&i.references.join("; ")))?;
            }
        }
        writeln!(out)?;
    }
    if !t.errors.is_empty() {
        writeln!(out, "## Errors\n")?;
        for e in &t.errors {
            writeln!(
                out,
                "- `{}`:{}",
                md(&e.source),
                md(&sep_message(&e.message))
            )?;
        }
    }
    Ok(())
}

/// `crashlog signature`: one report's signature with the reasons.
pub fn write_signature(
    out: &mut impl Write,
    source: &str,
    sig: &Signature,
    known: Option<&super::Match>,
) -> io::Result<()> {
    writeln!(out, "== {source}: {}", sig.kind)?;
    writeln!(out, "signature:  {}", sig.text)?;
    writeln!(
        out,
        "bucket:     {} (the cluster id when this is its cluster's canonical signature)",
        super::cluster::cluster_id(&sig.text)
    )?;
    if let Some(e) = &sig.exception {
        writeln!(out, "exception:  {e}")?;
    }
    if let Some(t) = &sig.template {
        writeln!(out, "template:   {t}")?;
    }
    if let Some(s) = &sig.subsystem {
        writeln!(out, "subsystem:  {s}")?;
    }
    if let Some(w) = &sig.blocked_in {
        writeln!(out, "blocked in: {w}")?;
    }
    if !sig.frames.is_empty() {
        writeln!(out, "frames (for near-duplicate matching):")?;
        for f in &sig.frames {
            writeln!(out, "    {f}")?;
        }
    }
    if !sig.skipped.is_empty() {
        writeln!(out, "skipped frames:")?;
        for s in &sig.skipped {
            writeln!(out, "    #{:<3} {:<40} {}", s.index, s.frame, s.reason)?;
        }
    }
    for n in &sig.notes {
        writeln!(out, "note:       {n}")?;
    }
    match known {
        Some(m) => {
            writeln!(out, "known issue: {}", m.id)?;
            for e in &m.evidence {
                writeln!(out, "    evidence: {e}")?;
            }
        }
        None => writeln!(out, "known issue: -")?,
    }
    writeln!(out)
}

//! Bytes → [`Report`]s. No file I/O happens here (see [`crate::load`] for files).
//!
//! Entry points, one per format family plus auto-detection, all taking `&[u8]`:
//!
//! | function | reads |
//! |---|---|
//! | [`parse_auto`] | anything below; a text mixing a log excerpt and a panic/crash yields both |
//! | [`parse_ips`] | `.ips`/`.panic` JSON (any bug_type), bug_type 109, Console's translated report |
//! | [`parse_panic`] | panic text (or a panic `.ips`) |
//! | [`parse_crash`] | legacy `.crash` text (or a crash `.ips`) |
//! | [`parse_stack`] | pasted stacks |
//! | [`parse_spindump`] | spindump / `sample` hang reports |
//! | [`parse_log`] | log text in every supported style (in memory; use [`LogReader`] to stream) |
//!
//! None of them panics, loops without progress or allocates beyond a constant factor of
//! the input: frames, threads and images per report are capped, JSON nesting is limited
//! by serde_json, and log lines/messages are capped by [`LogLimits`].

mod crash;
mod ips;
pub mod log;
mod panic;
mod spindump;
mod stack;
pub(crate) mod text;
pub(crate) mod time;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub use self::log::{LogLimits, LogReader, LogStats};
use crate::error::ParseError;
use crate::model::{Report, ReportKind, SourceFormat};

/// Most frames kept per thread.
pub(crate) const MAX_FRAMES: usize = 4096;
/// Most threads kept per report.
pub(crate) const MAX_THREADS: usize = 4096;
/// Most binary images (or kexts) kept per report.
pub(crate) const MAX_IMAGES: usize = 16384;
/// Lines examined by the format detector.
const DETECT_LINES: usize = 4000;

/// Input format, as chosen with `--format` (or detected with `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Detect from the content.
    #[default]
    Auto,
    /// `.ips` / `.panic` JSON containers (and Console's translated report).
    Ips,
    /// Kernel panic text.
    Panic,
    /// Legacy `.crash` text.
    Crash,
    /// Pasted stack.
    Stack,
    /// spindump / `sample`.
    Spindump,
    /// Log text.
    Log,
}

impl Format {
    /// All formats, in `--format` order.
    pub const ALL: [Format; 7] = [
        Format::Auto,
        Format::Ips,
        Format::Panic,
        Format::Crash,
        Format::Stack,
        Format::Spindump,
        Format::Log,
    ];

    /// The `--format` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Ips => "ips",
            Format::Panic => "panic",
            Format::Crash => "crash",
            Format::Stack => "stack",
            Format::Spindump => "spindump",
            Format::Log => "log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `--format` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?} (expected auto, ips, panic, crash, stack, spindump or log)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

fn decode(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}

/// Parse with a format (or [`Format::Auto`]); returns every report the input holds.
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<Report>, ParseError> {
    let text = decode(bytes);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    match format {
        Format::Auto => parse_auto_text(&text),
        Format::Ips => ips_or_translated(&text).map(|r| vec![r]),
        Format::Panic => panic_text(&text).map(|r| vec![r]),
        Format::Crash => crash_text(&text).map(|r| vec![r]),
        Format::Stack => stack_text(&text).map(|r| vec![r]),
        Format::Spindump => spindump::parse_spindump(&text, 1).map(|r| vec![r]),
        Format::Log => log_text(text.as_bytes()).map(|r| vec![r]),
    }
}

/// Detect the format and parse; a text that mixes a log excerpt with a panic or crash
/// report yields both reports.
pub fn parse_auto(bytes: &[u8]) -> Result<Vec<Report>, ParseError> {
    parse(bytes, Format::Auto)
}

/// Parse an `.ips`/`.panic` container (any bug_type, 109 included) or Console's
/// "Translated Report (Full Report Below)" file.
pub fn parse_ips(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Ips)?)
}

/// Parse kernel panic text (alone, inside `*** Panic Report ***`, or a panic `.ips`).
pub fn parse_panic(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Panic)?)
}

/// Parse a legacy `.crash` text report (or a crash `.ips`).
pub fn parse_crash(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Crash)?)
}

/// Parse a pasted stack.
pub fn parse_stack(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Stack)?)
}

/// Parse a spindump or `sample` report.
pub fn parse_spindump(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Spindump)?)
}

/// Parse log text held in memory into one [`ReportKind::Log`] report. Bad records (e.g.
/// a corrupt JSON line) become warnings; the call fails only when no entry is found.
pub fn parse_log(bytes: &[u8]) -> Result<Report, ParseError> {
    one(parse(bytes, Format::Log)?)
}

/// What [`detect`] thinks the input is.
///
/// [`Format::Auto`] means "no single format": unrecognised text, or text flattened onto
/// long lines (a forum paste) that [`parse_auto`] first splits back into lines.
pub fn detect(bytes: &[u8]) -> Format {
    let text = decode(bytes.get(..bytes.len().min(256 * 1024)).unwrap_or(bytes));
    let format = detect_text(&text).unwrap_or(Format::Auto);
    // A file that starts like a log stays a log (and is streamed), whatever its lines say.
    let starts_as_log = first_line(&text).is_some_and(|(_, l)| {
        log::is_log_line(l)
            || l.trim_start().starts_with("Timestamp")
            || l.starts_with("Filtering the log data")
    });
    if format != Format::Ips && !starts_as_log && unflatten(&text).is_some() {
        return Format::Auto;
    }
    format
}

fn one(mut v: Vec<Report>) -> Result<Report, ParseError> {
    match v.len() {
        0 => Err(ParseError::Empty),
        _ => Ok(v.swap_remove(0)),
    }
}

/// The first non-blank line and its 1-based number.
fn first_line(text: &str) -> Option<(usize, &str)> {
    text.lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

const TRANSLATED: &str = "Translated Report (Full Report Below)";

fn is_translated(text: &str) -> bool {
    text.lines().take(8).any(|l| l.trim() == TRANSLATED)
}

fn detect_text(text: &str) -> Option<Format> {
    let (_, first) = first_line(text)?;
    if ips::is_ips_header(first) || is_translated(text) {
        return Some(Format::Ips);
    }
    let ft = first.trim_start();
    if ft.starts_with('{') && ips::is_headerless_body(text) {
        return Some(Format::Ips);
    }
    if ft.starts_with('[') || ft.starts_with('{') {
        return Some(Format::Log);
    }
    let mut logs = 0usize;
    let mut frames = 0usize;
    let mut chains = 0usize;
    let mut thread_headers = 0usize;
    for line in text.lines().take(DETECT_LINES) {
        if panic::is_panic_anchor(line) {
            return Some(Format::Panic);
        }
        if crash::is_crash_anchor(line) {
            return Some(Format::Crash);
        }
        if spindump::is_spindump_anchor(line) {
            return Some(Format::Spindump);
        }
        if log::is_log_line(line) {
            logs += 1;
        } else if stack::is_arrow_chain(line) {
            chains += 1;
        } else if stack::is_frame_line(line) {
            frames += 1;
        } else if line.starts_with("Thread ") && line.trim_end().ends_with(':') {
            thread_headers += 1;
        }
    }
    if logs > 0 && logs >= frames + chains {
        return Some(Format::Log);
    }
    if thread_headers > 0 && frames > 0 {
        return Some(Format::Crash);
    }
    if frames + chains > 0 {
        return Some(Format::Stack);
    }
    None
}

/// Byte offset of the start of each line, plus the text length.
fn line_starts(text: &str) -> Vec<usize> {
    let mut v = Vec::with_capacity(text.len() / 64 + 2);
    v.push(0);
    v.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
    if *v.last().unwrap_or(&0) != text.len() {
        v.push(text.len());
    }
    v
}

/// Lines longer than this are candidates for [`unflatten`].
const FLAT_LINE: usize = 400;

/// Panic header keys that start a new line when a panic was flattened onto one line.
const PANIC_KEYS: [&str; 14] = [
    "Debugger message:",
    "Memory ID:",
    "OS release type:",
    "OS version:",
    "macOS version:",
    "Kernel version:",
    "Fileset Kernelcache UUID:",
    "Kernel UUID:",
    "Boot session UUID:",
    "iBoot version:",
    "Paniclog version:",
    "Panicked task ",
    "Panicked thread:",
    "Kernel Extensions in backtrace:",
];

/// Byte offsets (after a space) where a flattened line should be cut: a panic, its header
/// keys once a panic was seen, and log timestamps with a zone.
fn flat_cuts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    let mut cuts = Vec::new();
    let mut in_panic = false;
    let mut skip_to = 0;
    for sp in memchr::memchr_iter(b' ', b) {
        let p = sp + 1;
        if p < skip_to || p >= b.len() {
            continue;
        }
        let rest = &line[p..];
        let cut = if rest.starts_with("panic(cpu ") {
            in_panic = true;
            true
        } else if in_panic && PANIC_KEYS.iter().any(|k| rest.starts_with(k)) {
            true
        } else if b[p].is_ascii_digit() {
            let ts = time::datetime(rest.as_bytes()).or_else(|| time::time_only(rest.as_bytes()));
            match ts {
                Some((t, end)) if t.offset_minutes.is_some() && t.nanos > 0 => {
                    skip_to = p + end;
                    true
                }
                _ => false,
            }
        } else {
            false
        };
        if cut {
            cuts.push(p);
        }
    }
    cuts
}

/// Forum scrapers and chat tools flatten pasted reports and logs onto one line. When a
/// long line holds a panic or at least two zoned log timestamps after a space, start a
/// new line at each of them. `None` when nothing needs cutting.
fn unflatten(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut done = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.len() > FLAT_LINE {
            let cuts = flat_cuts(line);
            let strong = line.contains(" panic(cpu ") || cuts.len() >= 2;
            if strong && !cuts.is_empty() {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 1024));
                o.push_str(&text[done..offset]);
                let mut last = 0;
                for c in cuts {
                    o.push_str(line[last..c].trim_end_matches(' '));
                    o.push('\n');
                    last = c;
                }
                o.push_str(&line[last..]);
                done = offset + line.len();
            }
        }
        offset += line.len();
    }
    let mut o = out?;
    o.push_str(&text[done..]);
    Some(o)
}

fn parse_auto_text(text: &str) -> Result<Vec<Report>, ParseError> {
    if !first_line(text).is_some_and(|(_, l)| ips::is_ips_header(l))
        && let Some(flat) = unflatten(text)
    {
        return parse_auto_unflattened(&flat);
    }
    parse_auto_unflattened(text)
}

fn parse_auto_unflattened(text: &str) -> Result<Vec<Report>, ParseError> {
    let Some(format) = detect_text(text) else {
        let (line, first) = first_line(text).ok_or(ParseError::Empty)?;
        let mut hint: String = first.trim().chars().take(60).collect();
        if first.trim().chars().count() > 60 {
            hint.push('…');
        }
        return Err(ParseError::Unrecognized {
            line: line as u64,
            hint: format!("no known report or log format (first line: {hint:?})"),
        });
    };
    match format {
        Format::Ips => Ok(vec![ips_or_translated(text)?]),
        Format::Log => Ok(vec![log_text(text.as_bytes())?]),
        Format::Stack => Ok(vec![stack_text(text)?]),
        Format::Spindump => Ok(vec![spindump::parse_spindump(text, 1)?]),
        Format::Panic => mixed(text, format),
        Format::Crash => {
            if text.lines().any(crash::is_crash_anchor) {
                mixed(text, format)
            } else {
                let mut r = crash::parse_crash_text(text, 1)?;
                mark_headerless_stack(&mut r);
                Ok(vec![r])
            }
        }
        Format::Auto => Err(ParseError::Empty),
    }
}

/// A panic or crash report, possibly surrounded by log lines (forum posts): the report
/// region runs from its anchor to the next log line; log lines elsewhere form a log report.
fn mixed(text: &str, format: Format) -> Result<Vec<Report>, ParseError> {
    let starts = line_starts(text);
    let nlines = starts.len().saturating_sub(1);
    let line_at = |i: usize| -> &str {
        let s = starts[i];
        let e = starts.get(i + 1).copied().unwrap_or(text.len());
        text[s..e].trim_end_matches(['\n', '\r'])
    };
    let is_anchor = |l: &str| match format {
        Format::Panic => panic::is_panic_anchor(l),
        _ => crash::is_crash_anchor(l),
    };
    let Some(mut a) = (0..nlines).find(|&i| is_anchor(line_at(i))) else {
        return Err(ParseError::Empty);
    };
    // Panic preamble: `Anonymous UUID:` / date lines directly above `*** Panic Report ***`.
    while a > 0 {
        let prev = line_at(a - 1).trim();
        if prev.starts_with("Anonymous UUID:")
            || prev.starts_with("*** Panic Report")
            || prev.starts_with("Incident Identifier:")
            || prev.starts_with("CrashReporter Key:")
        {
            a -= 1;
        } else {
            break;
        }
    }
    let b = (a + 1..nlines)
        .find(|&i| log::is_log_line(line_at(i)))
        .unwrap_or(nlines);
    let region = &text[starts[a]..starts.get(b).copied().unwrap_or(text.len())];
    let first = a as u64 + 1;
    let mut report = match format {
        Format::Panic => panic::parse_panic_text(region, first)?,
        _ => crash::parse_crash_text(region, first)?,
    };
    if format == Format::Crash {
        mark_headerless_stack(&mut report);
    }
    let mut out = vec![report];
    // Log lines outside the region (region lines blanked so line numbers hold).
    let has_logs = (0..a)
        .chain(b..nlines)
        .any(|i| log::is_log_line(line_at(i)));
    if has_logs {
        let mut rest = String::with_capacity(text.len() - region.len() + (b - a));
        rest.push_str(&text[..starts[a]]);
        for _ in a..b {
            rest.push('\n');
        }
        rest.push_str(&text[starts.get(b).copied().unwrap_or(text.len())..]);
        if let Ok(log) = log_text_with(rest.as_bytes(), true) {
            out.push(log);
        }
    }
    Ok(out)
}

/// A crash-text parse with no header and no image list is a pasted stack.
fn mark_headerless_stack(r: &mut Report) {
    if r.incident_id.is_none()
        && r.process.name.is_none()
        && r.exception.is_none()
        && r.binary_images.is_empty()
    {
        r.kind = ReportKind::Stack;
        r.format = SourceFormat::PastedStack;
    }
}

fn ips_or_translated(text: &str) -> Result<Report, ParseError> {
    if is_translated(text) {
        return translated(text);
    }
    let (line, first) = first_line(text).ok_or(ParseError::Empty)?;
    if first.trim_start().starts_with('{')
        && !ips::is_ips_header(first)
        && ips::is_headerless_body(text)
    {
        let start = text.find('{').unwrap_or(0);
        return ips::parse_ips_body(&text[start..], line as u64);
    }
    if !ips::is_ips_header(first) {
        return Err(ParseError::WrongFormat {
            line: line as u64,
            format: "ips",
            hint: "first line is not an .ips JSON header with a bug_type".into(),
        });
    }
    let start = text.find(first).unwrap_or(0);
    ips::parse_ips(&text[start..], line as u64)
}

/// Console's wrapper: a translated legacy report, then `Full Report` + the `.ips`.
fn translated(text: &str) -> Result<Report, ParseError> {
    let starts = line_starts(text);
    let nlines = starts.len().saturating_sub(1);
    let lines: Vec<&str> = (0..nlines)
        .map(|i| text[starts[i]..starts[i + 1]].trim_end_matches(['\n', '\r']))
        .collect();
    let full = lines.iter().position(|l| l.trim() == "Full Report");
    let header_end = lines
        .iter()
        .position(|l| l.trim() == TRANSLATED)
        .map_or(0, |i| i + 2);
    if let Some(f) = full {
        // Skip the dashes under `Full Report`, then the .ips starts.
        let body_start = (f + 1..nlines)
            .find(|&i| !lines[i].trim().is_empty() && !lines[i].trim().chars().all(|c| c == '-'));
        if let Some(s) = body_start
            && ips::is_ips_header(lines[s])
        {
            let mut r = ips::parse_ips(&text[starts[s]..], s as u64 + 1)?;
            r.format = SourceFormat::TranslatedReport;
            return Ok(r);
        }
    }
    // No (usable) full report: read the translated text.
    let end = full.map_or(nlines, |f| f.saturating_sub(1));
    let region = &text[starts[header_end.min(nlines)]..starts[end.max(header_end).min(nlines)]];
    let mut r = crash::parse_crash_text(region, header_end as u64 + 1)?;
    r.format = SourceFormat::TranslatedReport;
    Ok(r)
}

/// An `.ips` container, Console's wrapper, or an `.ips` body without its header line.
fn is_ips_like(text: &str) -> bool {
    first_line(text).is_some_and(|(_, first)| {
        ips::is_ips_header(first)
            || (first.trim_start().starts_with('{') && ips::is_headerless_body(text))
    }) || is_translated(text)
}

fn panic_text(text: &str) -> Result<Report, ParseError> {
    if let Some((_, _)) = first_line(text)
        && is_ips_like(text)
    {
        let r = ips_or_translated(text)?;
        return match r.kind {
            ReportKind::Panic => Ok(r),
            k => Err(ParseError::WrongFormat {
                line: 1,
                format: "panic",
                hint: format!("this .ips holds a {k} report"),
            }),
        };
    }
    let reports = mixed(text, Format::Panic).map_err(|e| match e {
        ParseError::Empty => ParseError::WrongFormat {
            line: 1,
            format: "panic",
            hint: "no `panic(cpu …)` line".into(),
        },
        e => e,
    })?;
    one(reports)
}

fn crash_text(text: &str) -> Result<Report, ParseError> {
    if let Some((_, _)) = first_line(text)
        && is_ips_like(text)
    {
        return ips_or_translated(text);
    }
    if text.lines().any(crash::is_crash_anchor) {
        return one(mixed(text, Format::Crash)?);
    }
    crash::parse_crash_text(text, 1)
}

fn stack_text(text: &str) -> Result<Report, ParseError> {
    // `Thread N:` sections without a report header are read by the crash parser.
    let has_threads = text
        .lines()
        .any(|l| l.starts_with("Thread ") && l.trim_end().ends_with(':'));
    if has_threads
        && let Ok(mut r) = crash::parse_crash_text(text, 1)
        && !r.threads.is_empty()
    {
        r.kind = ReportKind::Stack;
        r.format = SourceFormat::PastedStack;
        r.warnings
            .retain(|w| !w.message.starts_with("report has no thread"));
        return Ok(r);
    }
    stack::parse_stack_text(text, 1)
}

fn log_text(bytes: &[u8]) -> Result<Report, ParseError> {
    log_text_with(bytes, false)
}

fn log_text_with(bytes: &[u8], blank_ends_entry: bool) -> Result<Report, ParseError> {
    let mut r = Report::new(ReportKind::Log, SourceFormat::LogText);
    let mut first_err = None;
    for item in LogReader::new(bytes).pasted(blank_ends_entry) {
        match item {
            Ok(e) => r.log.push(e),
            Err(e) => {
                r.warn(e.line(), e.to_string());
                first_err.get_or_insert(e);
            }
        }
    }
    if r.log.is_empty() {
        return Err(first_err.unwrap_or(ParseError::WrongFormat {
            line: first_line(&decode(bytes)).map_or(1, |(l, _)| l as u64),
            format: "log",
            hint: "no log entries found".into(),
        }));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert!("nope".parse::<Format>().is_err());
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for junk in [
            &b""[..],
            b"\n\n",
            b"hello world",
            b"{",
            b"[",
            b"{\"bug_type\":",
            b"\xff\xfe\x00",
            b"panic(cpu",
            b"Thread 0:\n0 x",
        ] {
            let _ = parse_auto(junk);
            for f in Format::ALL {
                let _ = parse(junk, f);
            }
        }
        assert!(matches!(
            parse_auto(b"hello world"),
            Err(ParseError::Unrecognized { line: 1, .. })
        ));
    }

    #[test]
    fn translated_report_without_full_report_reads_the_text() {
        let text = "-------------------------------------\nTranslated Report (Full Report Below)\n-------------------------------------\n\nProcess:               ruby [48211]\nExceptionless: x\n\nThread 0 Crashed::  Dispatch queue: com.apple.main-thread\n0   libsystem_trace.dylib         \t       0x18c1a2f44 _os_log_preferences_refresh + 64\n";
        let r = parse_ips(text.as_bytes()).unwrap();
        assert_eq!(r.format, SourceFormat::TranslatedReport);
        assert_eq!(r.process.pid, Some(48211));
        assert_eq!(
            r.threads[0].frames[0].symbol.as_deref(),
            Some("_os_log_preferences_refresh")
        );
        // A broken full report is an error naming its line, not a silent fallback.
        let broken = format!(
            "{text}\n-----------\nFull Report\n-----------\n\n{{\"bug_type\":\"309\"}}\n{{\"procName\" :\n"
        );
        let e = parse_auto(broken.as_bytes()).unwrap_err();
        assert_eq!((e.name(), e.line()), ("invalid_json", Some(17)));
    }

    #[test]
    fn mixed_log_and_panic_yields_both() {
        let text = "2026-03-30 14:11:21.780015+0300 0x1894     Default     0x0                  0      0    kernel: (402262746): No more valid control units, disabling flow divert\n\
panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646\n\
Debugger message: panic\n\
OS version: 25D2128\n\
2026-03-30 14:11:21.934431+0300 0xed       Default     0x0                  0      0    kernel: Hit error condition\n";
        let v = parse_auto(text.as_bytes()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].kind, ReportKind::Panic);
        assert_eq!(v[0].os.build.as_deref(), Some("25D2128"));
        assert_eq!(v[1].kind, ReportKind::Log);
        assert_eq!(v[1].log.len(), 2);
        assert_eq!(v[1].log[1].line, 5);
    }
}

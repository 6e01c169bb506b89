//! Output: a readable text summary and the JSON document of the `parse` verb (contract in
//! [`crate::json_schema`]). Everything writes to an `impl Write`.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::LoadError;
use crate::model::{Frame, LogEntry, Report, ReportKind, Thread};

/// The `schema` value of the parse JSON document.
pub const SCHEMA: &str = "crashlog.parse.v1";

/// Frames printed per thread in the text summary before eliding.
const TEXT_FRAMES: usize = 40;

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn write_frame(out: &mut impl Write, f: &Frame) -> io::Result<()> {
    let image = f.image.as_deref().unwrap_or("???");
    write!(out, "  {:>3}  {:<32}", f.index, image)?;
    if let Some(s) = f.samples {
        write!(out, " {s:>6}")?;
    }
    match f.address {
        Some(a) => write!(out, " {a:#018x}")?,
        None => write!(out, " {:18}", "")?,
    }
    match (&f.symbol, f.image_offset) {
        (Some(sym), _) => {
            write!(out, " {sym}")?;
            if let Some(o) = f.symbol_offset {
                write!(out, " + {o}")?;
            }
        }
        (None, Some(off)) => write!(out, " {image} + {off:#x}")?,
        (None, None) => {}
    }
    if let (Some(file), Some(line)) = (&f.file, f.line) {
        write!(out, " ({file}:{line})")?;
    }
    if f.inline {
        write!(out, " [inlined]")?;
    }
    writeln!(out)
}

fn write_thread(out: &mut impl Write, t: &Thread, label: &str) -> io::Result<()> {
    write!(out, "{label} {}", t.index)?;
    if let Some(id) = t.id {
        write!(out, " (tid {id})")?;
    }
    if let Some(n) = &t.name {
        write!(out, " name: {n}")?;
    }
    if let Some(q) = &t.queue {
        write!(out, " queue: {q}")?;
    }
    writeln!(out, ":")?;
    for f in t.frames.iter().take(TEXT_FRAMES) {
        write_frame(out, f)?;
    }
    if t.frames.len() > TEXT_FRAMES {
        writeln!(out, "  … {} more frames", t.frames.len() - TEXT_FRAMES)?;
    }
    Ok(())
}

/// Write the readable summary of one report (log entries included).
pub fn write_text(out: &mut impl Write, source: &str, r: &Report) -> io::Result<()> {
    write_text_header(out, source, r)?;
    for e in &r.log {
        write_log_entry(out, e)?;
    }
    if r.kind == ReportKind::Log {
        writeln!(out, "{} log entries", r.log.len())?;
    }
    writeln!(out)
}

/// Write everything of the summary except the log entries (the CLI streams those).
pub fn write_text_header(out: &mut impl Write, source: &str, r: &Report) -> io::Result<()> {
    write!(out, "== {source}: {}", r.kind)?;
    let fmt = serde_json::to_value(r.format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    write!(out, " ({fmt}")?;
    if let Some(b) = &r.bug_type {
        write!(out, ", bug_type {b}")?;
    }
    writeln!(out, ")")?;
    let p = &r.process;
    if p.name.is_some() || p.pid.is_some() {
        write!(out, "Process:     {}", opt(&p.name))?;
        if let Some(pid) = p.pid {
            write!(out, " [{pid}]")?;
        }
        if let Some(path) = &p.path {
            write!(out, "  {path}")?;
        }
        writeln!(out)?;
    }
    if let Some(id) = &p.bundle_id {
        write!(out, "Identifier:  {id}")?;
        if let Some(v) = &p.version {
            write!(out, " {v}")?;
        }
        writeln!(out)?;
    }
    if let Some(parent) = &p.parent {
        write!(out, "Parent:      {parent}")?;
        if let Some(pid) = p.parent_pid {
            write!(out, " [{pid}]")?;
        }
        writeln!(out)?;
    }
    let os = &r.os;
    if os.name.is_some() || os.version.is_some() || os.build.is_some() {
        let mut parts: Vec<&str> = [&os.name, &os.version]
            .iter()
            .filter_map(|s| s.as_deref())
            .collect();
        let build = os.build.as_deref().map(|b| format!("({b})"));
        if let Some(b) = &build {
            parts.push(b);
        }
        write!(out, "OS:          {}", parts.join(" "))?;
        if let Some(rt) = &os.release_type {
            write!(out, " [{rt}]")?;
        }
        writeln!(out)?;
    }
    if let Some(d) = &r.device {
        writeln!(out, "Device:      {d}")?;
    }
    if let Some(i) = &r.incident_id {
        writeln!(out, "Incident:    {i}")?;
    }
    if let Some(t) = &r.timestamp {
        writeln!(out, "Time:        {t}")?;
    }
    if let Some(e) = &r.exception {
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(e.kind.as_deref());
        if e.signal.is_some()
            && !e
                .kind
                .as_deref()
                .unwrap_or("")
                .contains(e.signal.as_deref().unwrap_or("-"))
        {
            parts.extend(e.signal.as_deref());
        }
        parts.extend(e.subtype.as_deref());
        parts.extend(e.codes.as_deref());
        writeln!(out, "Exception:   {}", parts.join("  "))?;
        if let Some(m) = &e.message {
            writeln!(out, "Note:        {m}")?;
        }
    }
    if let Some(t) = &r.termination {
        let parts: Vec<&str> = [&t.namespace, &t.code, &t.indicator, &t.reason]
            .iter()
            .filter_map(|s| s.as_deref())
            .collect();
        writeln!(out, "Termination: {}", parts.join("  "))?;
    }
    if let Some(a) = &r.application_specific {
        writeln!(out, "Application Specific Information:")?;
        for l in a.lines().take(20) {
            writeln!(out, "  {l}")?;
        }
    }
    if let Some(pi) = &r.panic {
        writeln!(out, "Panic:       {}", opt(&pi.message))?;
        if let Some(cpu) = pi.cpu {
            write!(out, "             cpu {cpu}")?;
            if let Some(c) = pi.caller {
                write!(out, " caller {c:#x}")?;
            }
            writeln!(out)?;
        }
        if let Some(k) = &pi.kernel_version {
            writeln!(out, "Kernel:      {k}")?;
        }
        if let Some(t) = &pi.panicked_task {
            writeln!(
                out,
                "Task:        pid {} {} ({} threads)",
                t.pid.map(|p| p.to_string()).unwrap_or_default(),
                opt(&t.name),
                t.threads.map(|p| p.to_string()).unwrap_or_default()
            )?;
        }
        if let Some(t) = pi.panicked_thread.as_ref().and_then(|t| t.tid) {
            writeln!(out, "Thread:      tid {t}")?;
        }
        for k in pi.kexts.iter().filter(|k| !k.dependency) {
            writeln!(out, "Kext:        {}({})", k.name, opt(&k.version))?;
        }
    }
    if let Some(h) = &r.hang {
        let parts: Vec<String> = [
            h.event.as_ref().map(|e| format!("event {e}")),
            h.duration.as_ref().map(|d| format!("duration {d}")),
            h.samples.map(|s| format!("{s} samples")),
        ]
        .into_iter()
        .flatten()
        .collect();
        writeln!(out, "Hang:        {}", parts.join(", "))?;
    }
    if r.kind != ReportKind::Log {
        match r.crashed_thread() {
            Some(t) => {
                let label = match r.kind {
                    ReportKind::Panic => "Panicked thread",
                    ReportKind::Hang => "Blocked thread",
                    ReportKind::Stack => "Stack",
                    _ => "Crashed thread",
                };
                write_thread(out, t, label)?;
            }
            None => writeln!(out, "No crashed thread")?,
        }
        if let Some(t) = &r.last_exception_backtrace {
            write_thread(out, t, "Last exception backtrace")?;
        }
        writeln!(
            out,
            "Threads: {}, frames: {}, binary images: {}",
            r.threads.len(),
            r.frame_count(),
            r.binary_images.len()
        )?;
    }
    for w in &r.warnings {
        match w.line {
            Some(l) => writeln!(out, "warning: line {l}: {}", w.message)?,
            None => writeln!(out, "warning: {}", w.message)?,
        }
    }
    Ok(())
}

/// Write one log entry as a line (continuation lines indented).
pub fn write_log_entry(out: &mut impl Write, e: &LogEntry) -> io::Result<()> {
    match &e.timestamp {
        Some(t) => write!(out, "{t}")?,
        None => write!(out, "-")?,
    }
    if let Some(t) = &e.log_type {
        write!(out, " {}", t.as_str())?;
    }
    write!(out, " {}", e.process.as_deref().unwrap_or("?"))?;
    if let Some(pid) = e.pid {
        write!(out, "[{pid}]")?;
    }
    if let Some(s) = &e.sender {
        write!(out, " ({s})")?;
    }
    if let (Some(s), Some(c)) = (&e.subsystem, &e.category) {
        write!(out, " [{s}:{c}]")?;
    } else if let Some(s) = &e.subsystem {
        write!(out, " [{s}]")?;
    }
    let mut lines = e.message.split('\n');
    writeln!(out, " {}", lines.next().unwrap_or(""))?;
    for l in lines {
        writeln!(out, "    {l}")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Sourced<'a> {
    source: &'a str,
    #[serde(flatten)]
    report: &'a Report,
}

#[derive(Serialize)]
struct JsonError<'a> {
    source: String,
    line: Option<u64>,
    kind: &'a str,
    message: String,
}

/// Streams the parse JSON document: `{"schema": …, "reports": [...], "errors": [...]}`.
/// Reports are written as they come; errors are kept and written by [`JsonWriter::finish`].
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
    first: bool,
    first_entry: bool,
    errors: Vec<(String, Option<u64>, &'static str, String)>,
}

impl<W: Write> JsonWriter<W> {
    /// Start the document.
    pub fn new(mut out: W) -> io::Result<Self> {
        write!(out, "{{\"schema\":\"{SCHEMA}\",\"reports\":[")?;
        Ok(JsonWriter {
            out,
            first: true,
            first_entry: true,
            errors: Vec::new(),
        })
    }

    fn sep(&mut self) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        } else {
            self.out.write_all(b"\n")?;
        }
        self.first = false;
        Ok(())
    }

    /// Write one whole report.
    pub fn report(&mut self, source: &str, report: &Report) -> io::Result<()> {
        self.sep()?;
        serde_json::to_writer(&mut self.out, &Sourced { source, report }).map_err(io::Error::other)
    }

    /// Start a report whose `log` entries are streamed with [`JsonWriter::log_entry`];
    /// `header` is the report without entries.
    pub fn begin_log(&mut self, source: &str, header: &Report) -> io::Result<()> {
        self.sep()?;
        let v = serde_json::to_value(Sourced {
            source,
            report: header,
        })
        .map_err(io::Error::other)?;
        let serde_json::Value::Object(map) = v else {
            return Err(io::Error::other("report is not an object"));
        };
        self.out.write_all(b"{")?;
        for (k, v) in map.iter().filter(|(k, _)| *k != "log" && *k != "warnings") {
            serde_json::to_writer(&mut self.out, k).map_err(io::Error::other)?;
            self.out.write_all(b":")?;
            serde_json::to_writer(&mut self.out, v).map_err(io::Error::other)?;
            self.out.write_all(b",")?;
        }
        self.out.write_all(b"\"log\":[")?;
        self.first_entry = true;
        Ok(())
    }

    /// Write one streamed log entry.
    pub fn log_entry(&mut self, e: &LogEntry) -> io::Result<()> {
        if !self.first_entry {
            self.out.write_all(b",")?;
        }
        self.first_entry = false;
        self.out.write_all(b"\n")?;
        serde_json::to_writer(&mut self.out, e).map_err(io::Error::other)
    }

    /// Close a streamed log report, with the warnings gathered while streaming.
    pub fn end_log(&mut self, warnings: &[crate::model::Warning]) -> io::Result<()> {
        self.out.write_all(b"],\"warnings\":")?;
        serde_json::to_writer(&mut self.out, warnings).map_err(io::Error::other)?;
        self.out.write_all(b"}")
    }

    /// Record a file that failed.
    pub fn error(&mut self, e: &LoadError) {
        self.errors.push((
            e.path().display().to_string(),
            e.line(),
            e.name(),
            e.message(),
        ));
    }

    /// Close the document and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n],\"errors\":[")?;
        for (i, (source, line, kind, message)) in self.errors.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.out.write_all(b"\n")?;
            let je = JsonError {
                source: source.clone(),
                line: *line,
                kind,
                message: message.clone(),
            };
            serde_json::to_writer(&mut self.out, &je).map_err(io::Error::other)?;
        }
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

//! The CLI verbs as library functions (the binary only parses arguments and calls these).
//! Each takes its writers, so tests run them in-process.

use std::io::{self, Write};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{LoadError, ParseError};
use crate::load::{self, LoadOptions};
use crate::model::{Report, ReportKind, SourceFormat};
use crate::parse::Format;
use crate::render::{self, JsonWriter};

/// Options of `crashlog parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCommand {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Forced format or [`Format::Auto`].
    pub format: Format,
    /// JSON instead of the text summary.
    pub json: bool,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Reports printed.
    pub reports: usize,
    /// Files that failed.
    pub errors: usize,
}

enum Job {
    Log,
    Reports(Result<Vec<Report>, LoadError>),
}

/// Where output goes: the text summary or the streaming JSON document.
enum Sink<'a, W: Write> {
    Text(&'a mut W),
    Json(JsonWriter<&'a mut W>),
}

impl<W: Write> Sink<'_, W> {
    fn report(&mut self, source: &str, r: &Report) -> io::Result<()> {
        match self {
            Sink::Text(out) => render::write_text(out, source, r),
            Sink::Json(j) => j.report(source, r),
        }
    }

    fn begin_log(&mut self, source: &str, header: &Report) -> io::Result<()> {
        match self {
            Sink::Text(out) => render::write_text_header(out, source, header),
            Sink::Json(j) => j.begin_log(source, header),
        }
    }

    fn log_entry(&mut self, e: &crate::model::LogEntry) -> io::Result<()> {
        match self {
            Sink::Text(out) => render::write_log_entry(out, e),
            Sink::Json(j) => j.log_entry(e),
        }
    }

    fn end_log(&mut self, header: &Report, entries: u64) -> io::Result<()> {
        match self {
            Sink::Text(out) => {
                for w in &header.warnings {
                    writeln!(out, "warning: line {}: {}", w.line.unwrap_or(0), w.message)?;
                }
                writeln!(out, "{entries} log entries\n")
            }
            Sink::Json(j) => j.end_log(&header.warnings),
        }
    }

    fn error(&mut self, e: &LoadError) {
        if let Sink::Json(j) = self {
            j.error(e);
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Text(out) => out.flush(),
            Sink::Json(j) => j.finish().map(|_| ()),
        }
    }
}

/// Run `crashlog parse`: every file is parsed (in parallel; logs streamed in order) and
/// printed to `out`; each failure is printed to `err` as `crashlog: path:line: message`
/// and the batch goes on.
pub fn run_parse(
    cmd: &ParseCommand,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Outcome> {
    let opts = LoadOptions {
        format: cmd.format,
        ..LoadOptions::default()
    };
    let (files, walk_errors) = load::collect_files(&cmd.paths);
    let jobs: Vec<Job> = files
        .par_iter()
        .map(|p| match load::is_log_file(p, &opts) {
            Ok(true) => Job::Log,
            Ok(false) => Job::Reports(load::load_file(p, &opts)),
            Err(e) => Job::Reports(Err(e)),
        })
        .collect();

    let mut outcome = Outcome::default();
    let mut sink = if cmd.json {
        Sink::Json(JsonWriter::new(out)?)
    } else {
        Sink::Text(out)
    };
    let mut fail = |e: LoadError, sink: &mut Sink<'_, _>| -> io::Result<()> {
        writeln!(err, "crashlog: {e}")?;
        sink.error(&e);
        outcome.errors += 1;
        Ok(())
    };
    for e in walk_errors {
        fail(e, &mut sink)?;
    }
    let mut reports = 0usize;
    for (path, job) in files.iter().zip(jobs) {
        let source = path.display().to_string();
        match job {
            Job::Reports(Ok(rs)) => {
                for r in &rs {
                    reports += 1;
                    sink.report(&source, r)?;
                }
            }
            Job::Reports(Err(e)) => fail(e, &mut sink)?,
            Job::Log => match stream_log(path, &source, &opts, &mut sink)? {
                Ok(()) => reports += 1,
                Err(e) => fail(e, &mut sink)?,
            },
        }
    }
    sink.finish()?;
    outcome.reports = reports;
    Ok(outcome)
}

/// Stream one log file to the output in bounded memory.
fn stream_log<W: Write>(
    path: &std::path::Path,
    source: &str,
    opts: &LoadOptions,
    sink: &mut Sink<'_, W>,
) -> io::Result<Result<(), LoadError>> {
    let reader = match load::open_log(path, opts.log_limits) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let mut header = Report::new(ReportKind::Log, SourceFormat::LogText);
    let mut entries = 0u64;
    let mut first_err: Option<ParseError> = None;
    for item in reader {
        match item {
            Ok(e) => {
                if entries == 0 {
                    sink.begin_log(source, &header)?;
                }
                entries += 1;
                sink.log_entry(&e)?;
            }
            Err(ParseError::Io { line, source: s }) => {
                if entries > 0 {
                    sink.end_log(&header, entries)?;
                }
                return Ok(Err(LoadError::Parse {
                    path: path.to_path_buf(),
                    source: ParseError::Io { line, source: s },
                }));
            }
            Err(e) => {
                header.warn(e.line(), e.to_string());
                first_err.get_or_insert(e);
            }
        }
    }
    if entries == 0 {
        let source = first_err.unwrap_or(ParseError::WrongFormat {
            line: 1,
            format: "log",
            hint: "no log entries found".into(),
        });
        return Ok(Err(LoadError::Parse {
            path: path.to_path_buf(),
            source,
        }));
    }
    sink.end_log(&header, entries)?;
    Ok(Ok(()))
}

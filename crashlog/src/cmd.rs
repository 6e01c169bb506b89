//! The CLI verbs as library functions (the binary only parses arguments and calls these).
//! Each takes its writers, so tests run them in-process.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{LoadError, ParseError};
use crate::load::{self, LoadOptions};
use crate::model::{Report, ReportKind, SourceFormat};
use crate::parse::{self, Format, LogReader};
use crate::render::{self, JsonWriter};

/// `crashlog symbolicate` and `crashlog atos` (in [`crate::symbolicate::verbs`]).
pub use crate::symbolicate::verbs::{
    AtosCommand, SymbolicateCommand, SymbolicateOutcome, load_store, run_atos, run_symbolicate,
};

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
/// and the batch goes on. A path `-` reads standard input.
pub fn run_parse(
    cmd: &ParseCommand,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Outcome> {
    run_parse_with_stdin(cmd, io::stdin().lock(), out, err)
}

/// [`run_parse`] with an explicit reader standing for `-` (tests, embedding).
pub fn run_parse_with_stdin(
    cmd: &ParseCommand,
    stdin: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Outcome> {
    let opts = LoadOptions {
        format: cmd.format,
        ..LoadOptions::default()
    };
    let wants_stdin = cmd.paths.iter().any(|p| p.as_os_str() == "-");
    let paths: Vec<PathBuf> = cmd
        .paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .cloned()
        .collect();
    let (files, walk_errors) = load::collect_files(&paths);
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
    if wants_stdin {
        match read_stdin(stdin, &opts, &mut sink)? {
            Ok(n) => reports += n,
            Err(e) => fail(e, &mut sink)?,
        }
    }
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
            Job::Log => {
                let streamed = match load::open_log(path, opts.log_limits) {
                    Ok(reader) => stream_entries(reader, path, &source, &mut sink)?,
                    Err(e) => Err(e),
                };
                match streamed {
                    Ok(()) => reports += 1,
                    Err(e) => fail(e, &mut sink)?,
                }
            }
        }
    }
    sink.finish()?;
    outcome.reports = reports;
    Ok(outcome)
}

const STDIN: &str = "<stdin>";

/// Standard input: streamed when it looks like a log (first buffer), else read (capped)
/// and parsed. Returns the number of reports printed.
fn read_stdin<W: Write>(
    stdin: impl BufRead,
    opts: &LoadOptions,
    sink: &mut Sink<'_, W>,
) -> io::Result<Result<usize, LoadError>> {
    let path = std::path::Path::new(STDIN);
    let mut input = io::BufReader::with_capacity(opts.sniff_bytes.max(8192), stdin);
    let head = match input.fill_buf() {
        Ok(h) => h,
        Err(source) => {
            return Ok(Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            }));
        }
    };
    let is_log = match opts.format {
        Format::Log => true,
        Format::Auto => parse::detect(head) == Format::Log,
        _ => false,
    };
    if is_log {
        let reader = LogReader::with_limits(input, opts.log_limits);
        return Ok(stream_entries(reader, path, STDIN, sink)?.map(|()| 1));
    }
    let mut bytes = Vec::new();
    if let Err(source) = input
        .take(opts.max_report_bytes + 1)
        .read_to_end(&mut bytes)
    {
        return Ok(Err(LoadError::Io {
            path: path.to_path_buf(),
            source,
        }));
    }
    if bytes.len() as u64 > opts.max_report_bytes {
        return Ok(Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: opts.max_report_bytes,
        }));
    }
    match parse::parse(&bytes, opts.format) {
        Ok(rs) => {
            for r in &rs {
                sink.report(STDIN, r)?;
            }
            Ok(Ok(rs.len()))
        }
        Err(source) => Ok(Err(LoadError::Parse {
            path: path.to_path_buf(),
            source,
        })),
    }
}

/// Stream one log's entries to the output in bounded memory.
fn stream_entries<R: BufRead, W: Write>(
    reader: LogReader<R>,
    path: &std::path::Path,
    source: &str,
    sink: &mut Sink<'_, W>,
) -> io::Result<Result<(), LoadError>> {
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

/// Options of `crashlog triage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageCommand {
    /// Files, directories and archives.
    pub paths: Vec<PathBuf>,
    /// Output format.
    pub format: crate::triage::output::OutputFormat,
    /// Extra rules files (`--rules`).
    pub rules: Vec<PathBuf>,
    /// Hide clusters and findings with fewer entries.
    pub min_count: usize,
    /// Binaries and debug info to symbolicate with before signing (`--symbols`).
    pub symbols: Vec<PathBuf>,
}

/// What `crashlog triage` found, for the exit status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TriageOutcome {
    /// Clusters printed.
    pub clusters: usize,
    /// Findings printed.
    pub findings: usize,
    /// Inputs that failed.
    pub errors: usize,
}

impl TriageOutcome {
    /// The documented exit status: 0 something found (a cluster or a finding), 1 nothing
    /// found, 2 some inputs could not be read (what was read is still printed).
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 {
            2
        } else if self.clusters + self.findings > 0 {
            0
        } else {
            1
        }
    }
}

/// Load the shipped rules plus `--rules` files.
pub fn load_rules(extra: &[PathBuf]) -> Result<crate::triage::Rules, crate::triage::RulesError> {
    let mut rules = crate::triage::Rules::builtin();
    for p in extra {
        rules.add_file(p)?;
    }
    Ok(rules)
}

/// Run `crashlog triage`; errors of single inputs are also printed to `err` as
/// `crashlog: path:line: message`.
pub fn run_triage(
    cmd: &TriageCommand,
    rules: &crate::triage::Rules,
    progress: &dyn crate::triage::Progress,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<TriageOutcome> {
    let symbols = if cmd.symbols.is_empty() {
        None
    } else {
        match load_store(&cmd.symbols, err) {
            Ok(store) => Some(std::sync::Arc::new(store)),
            Err(e) => return Err(io::Error::other(format!("--symbols: {e}"))),
        }
    };
    let opts = crate::triage::TriageOptions {
        symbols,
        ..Default::default()
    };
    let mut t = crate::triage::triage_paths(rules, &cmd.paths, &opts, progress);
    for p in &t.symbol_problems {
        writeln!(
            err,
            "crashlog: warning: {p}; its frames are left as they were"
        )?;
    }
    crate::triage::output::apply_min_count(&mut t, cmd.min_count);
    for e in &t.errors {
        let sep = if e.message.starts_with(|c: char| c.is_ascii_digit()) {
            ""
        } else {
            " "
        };
        writeln!(err, "crashlog: {}:{sep}{}", e.source, e.message)?;
    }
    crate::triage::output::write(out, &t, rules, cmd.format)?;
    out.flush()?;
    Ok(TriageOutcome {
        clusters: t.clusters.len(),
        findings: t.findings.len(),
        errors: t.errors.len(),
    })
}

/// Run `crashlog signature FILE...`: each report's signature with the skipped frames and
/// why, and the known issue it matches. Returns the number of files that failed.
pub fn run_signature(
    paths: &[PathBuf],
    rules: &crate::triage::Rules,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<usize> {
    let opts = LoadOptions::default();
    let (files, walk_errors) = load::collect_files(paths);
    let mut failed = 0;
    for e in walk_errors {
        writeln!(err, "crashlog: {e}")?;
        failed += 1;
    }
    for path in &files {
        let source = path.display().to_string();
        let reports = match load::is_log_file(path, &opts) {
            Ok(true) => {
                writeln!(
                    out,
                    "== {source}: log (no signature; see `crashlog triage` for log findings)\n"
                )?;
                continue;
            }
            Ok(false) => load::load_file(path, &opts),
            Err(e) => Err(e),
        };
        match reports {
            Ok(rs) => {
                for r in rs.iter().filter(|r| r.kind != ReportKind::Log) {
                    let sig = crate::triage::signature(r, rules);
                    let m = crate::triage::kb::match_report(rules, r, &sig);
                    crate::triage::output::write_signature(out, &source, &sig, m.as_ref())?;
                }
            }
            Err(e) => {
                writeln!(err, "crashlog: {e}")?;
                failed += 1;
            }
        }
    }
    out.flush()?;
    Ok(failed)
}

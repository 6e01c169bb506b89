//! The `crashlog` command line: argument parsing and exit codes only; the work is done
//! by the library (`crashlog::cmd`).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Read Apple crash reports, kernel panics, hang reports, pasted stacks and unified-log
/// text, and print them in one normalized form.
#[derive(Debug, Parser)]
#[command(name = "crashlog", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse reports and logs and print them normalized.
    ///
    /// Reads kernel panics (text, .panic, .ips bug_type 210/110/151/409), app crashes
    /// (.ips 309/308/385/327, bug_type 109, legacy .crash, Console's translated reports),
    /// spindump/sample hang reports, pasted stacks and `log show` output in every style.
    /// Directories are walked recursively; files are parsed in parallel; logs are streamed.
    /// A file that fails is reported on stderr as `path:line: message` and the rest go on.
    ///
    /// Exit status: 0 when every file parsed, 1 when some failed, 2 on usage errors.
    #[command(after_help = "Examples:\n  \
        crashlog parse ~/Library/Logs/DiagnosticReports\n  \
        crashlog parse panic-full-2026-03-30.panic --json\n  \
        crashlog parse forum-post.txt --format stack\n  \
        pbpaste | crashlog parse -\n  \
        log show --last 1h > net.log && crashlog parse net.log --json | jq '.reports[0].log | length'")]
    Parse {
        /// Files or directories to read (`-` reads standard input).
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// Input format (default: detected per file).
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
        /// Print JSON (schema crashlog.parse.v1) instead of the readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Triage reports and logs: signatures, clusters, known issues and log findings.
    ///
    /// Walks files, directories and .tar.gz/.tgz/.tar/.zip archives (a sysdiagnose is a
    /// tarball; members are reported as `archive.tar.gz:inner/path`). Reports are grouped
    /// into clusters by signature (exact, then near duplicates by position-weighted frame
    /// similarity) and matched against the known-issue knowledge base shipped with the
    /// crate (extend it with --rules). Logs are streamed through rate and count
    /// detectors; unknown Error/Fault bursts are grouped by message template.
    ///
    /// Exit status: 0 something found (a cluster or a log finding), 1 nothing found,
    /// 2 some inputs could not be read (the rest is still printed) or a usage error.
    #[command(after_help = "Examples:\n  \
        crashlog triage ~/Library/Logs/DiagnosticReports\n  \
        crashlog triage sysdiagnose_2026.03.30_14-11-23+0300.tar.gz --format markdown\n  \
        crashlog triage reports/ logs/ --rules my-issues.toml --min-count 2\n  \
        crashlog triage crashlog/samples --format json | jq '.clusters[] | {id, count, known_issue}'")]
    Triage {
        /// Files, directories and archives to read.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TriageFormatArg::Table)]
        format: TriageFormatArg,
        /// Extra rules file (TOML: [[skip]] frame rules and/or [[issue]] known issues; an
        /// issue with an existing id replaces the shipped one). Repeatable.
        #[arg(long, value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// Hide clusters and findings with fewer than N entries.
        #[arg(long, value_name = "N", default_value_t = 1)]
        min_count: usize,
    },
    /// Print the signature of each report, with the frames skipped and why.
    ///
    /// Exit status: 0 when every file was read, 1 when some failed, 2 on usage errors.
    #[command(after_help = "Examples:\n  \
        crashlog signature crash.ips\n  \
        crashlog signature pasted-stack.txt --rules my-rules.toml")]
    Signature {
        /// Report files (or directories).
        #[arg(required = true, value_name = "FILE")]
        paths: Vec<PathBuf>,
        /// Extra rules file (see `crashlog triage --help`). Repeatable.
        #[arg(long, value_name = "FILE")]
        rules: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TriageFormatArg {
    Table,
    Json,
    Ndjson,
    Markdown,
}

impl From<TriageFormatArg> for crashlog::triage::output::OutputFormat {
    fn from(f: TriageFormatArg) -> Self {
        match f {
            TriageFormatArg::Table => Self::Table,
            TriageFormatArg::Json => Self::Json,
            TriageFormatArg::Ndjson => Self::Ndjson,
            TriageFormatArg::Markdown => Self::Markdown,
        }
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new() -> Bar {
        use std::io::IsTerminal;
        Bar(io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::hidden();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files {wide_msg}",
            ) {
                pb.set_style(style);
            }
            pb
        }))
    }
}

impl crashlog::triage::Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(total);
            // Only long runs get a bar.
            if total > 20 {
                pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
    }

    fn advance(&self, source: &str) {
        if let Some(pb) = &self.0 {
            pb.set_message(source.to_string());
            pb.inc(1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Auto,
    Ips,
    Panic,
    Crash,
    Stack,
    Spindump,
    Log,
}

impl From<FormatArg> for crashlog::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => Self::Auto,
            FormatArg::Ips => Self::Ips,
            FormatArg::Panic => Self::Panic,
            FormatArg::Crash => Self::Crash,
            FormatArg::Stack => Self::Stack,
            FormatArg::Spindump => Self::Spindump,
            FormatArg::Log => Self::Log,
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Triage {
            paths,
            format,
            rules,
            min_count,
        } => {
            let kb = crashlog::cmd::load_rules(&rules)?;
            let cmd = crashlog::cmd::TriageCommand {
                paths,
                format: format.into(),
                rules,
                min_count,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let bar = Bar::new();
            let outcome = crashlog::cmd::run_triage(&cmd, &kb, &bar, &mut out, &mut io::stderr());
            if let Some(pb) = &bar.0 {
                pb.finish_and_clear();
            }
            let outcome = outcome?;
            out.flush()?;
            Ok(ExitCode::from(outcome.exit_code()))
        }
        Command::Signature { paths, rules } => {
            let kb = crashlog::cmd::load_rules(&rules)?;
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let failed = crashlog::cmd::run_signature(&paths, &kb, &mut out, &mut io::stderr())?;
            out.flush()?;
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Parse {
            paths,
            format,
            json,
        } => {
            let cmd = crashlog::cmd::ParseCommand {
                paths,
                format: format.into(),
                json,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let mut err = io::stderr();
            let outcome = crashlog::cmd::run_parse(&cmd, &mut out, &mut err)?;
            out.flush()?;
            Ok(if outcome.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`crashlog parse … | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("crashlog: {e:#}");
            ExitCode::from(2)
        }
    }
}

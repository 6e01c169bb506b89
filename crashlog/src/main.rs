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

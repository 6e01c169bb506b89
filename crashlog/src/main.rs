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
        crashlog triage field-reports/ --symbols build/MyTunnel.dSYM --symbols build/\n  \
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
        /// Binaries, dSYMs and debug files (files or directories; repeatable): reports are
        /// symbolicated before their signatures are computed, so unsymbolicated and
        /// symbolicated copies of one crash cluster together.
        #[arg(long, value_name = "PATH")]
        symbols: Vec<PathBuf>,
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
    /// Fill in functions, inline chains, files and lines from your binaries and dSYMs.
    ///
    /// Each report is written back with its frames symbolicated and everything else as it
    /// was: text reports (.crash, panics, pasted stacks) have only their frame lines
    /// rewritten (`0x1045f2a3c 0x104580000 + 469564` becomes
    /// `0x1045f2a3c handle_packet + 60 (packet.c:42)`, inlined calls get their own
    /// `[inlined]` line above it); .ips files stay valid JSON with Apple's `symbol`,
    /// `symbolLocation`, `sourceFile`, `sourceLine` keys and `"inline" : true` frames.
    /// Images are matched by UUID / build-id first, by name + arch when the report has no
    /// UUID. Frames of images without symbols (system libraries) are left alone; a wrong
    /// UUID, missing slice, stripped binary or corrupt DWARF is reported on stderr once per
    /// image and its frames are left as they were.
    ///
    /// Exit status: 0 when every report was read, 1 when some failed, 2 on usage errors
    /// (including a --symbols path that cannot be read).
    #[command(after_help = "Examples:\n  \
        crashlog symbolicate MyTunnel-2026-11-21.ips --symbols build/MyTunnel.appex.dSYM > symbolicated.ips\n  \
        crashlog symbolicate crash.crash --symbols build/ --symbols /opt/vendor/symbols\n  \
        crashlog symbolicate reports/ --symbols build/ --output symbolicated/\n  \
        crashlog symbolicate panic-full.panic --symbols kernels/ --symbols kexts/\n  \
        crashlog symbolicate crash.ips --symbols build/ --json | jq '.reports[0].threads[0].frames'")]
    Symbolicate {
        /// Report files or directories.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Binaries, .dSYM bundles, ELF files with DWARF or debug directories (repeatable).
        #[arg(long = "symbols", short = 's', required = true, value_name = "PATH")]
        symbols: Vec<PathBuf>,
        /// Print the symbolicated reports as crashlog.parse JSON instead.
        #[arg(long)]
        json: bool,
        /// Write one file per report into DIR (same file name) instead of stdout.
        #[arg(long, short = 'o', value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// Symbolicate single addresses, like Apple's `atos -i`.
    ///
    /// Prints one line per frame, innermost inlined frame first:
    /// `function (in image) (file.c:42)`, or `function (in image) + 24` from a symbol table
    /// alone. With --load-address the addresses are runtime addresses; without it they are
    /// addresses in the binary's own address space. With a single binary (or one build of
    /// it) --image/--uuid are not needed.
    ///
    /// Exit status: 0 when every address resolved, 1 when some did not, 2 on usage errors.
    #[command(after_help = "Examples:\n  \
        crashlog atos --symbols build/MyTunnel --load-address 0x104580000 0x1045f2a3c 0x1045f1000\n  \
        crashlog atos --symbols MyApp.app.dSYM --arch arm64e --load-address 0x100f00000 0x100f1c2a8\n  \
        crashlog atos --symbols build/ --image libfilter.dylib --arch x86_64 0x3f20\n  \
        crashlog atos --symbols debug/ --uuid 5a11ce00c0ffee00d00dfeed12345678 --load-address 0x7f0000000000 0x7f0000001234")]
    Atos {
        /// Binaries, .dSYM bundles, ELF files with DWARF or debug directories (repeatable).
        #[arg(long = "symbols", short = 's', required = true, value_name = "PATH")]
        symbols: Vec<PathBuf>,
        /// Architecture slice (arm64, arm64e, x86_64, …).
        #[arg(long)]
        arch: Option<String>,
        /// Runtime load address of the image (like `atos -l`).
        #[arg(long, short = 'l', value_name = "0xADDR", value_parser = crashlog::symbolicate::verbs::parse_address)]
        load_address: Option<u64>,
        /// UUID / build-id of the image.
        #[arg(long, conflicts_with = "image")]
        uuid: Option<String>,
        /// Image (binary) name, e.g. MyTunnel.
        #[arg(long)]
        image: Option<String>,
        /// Addresses (hex).
        #[arg(required = true, value_name = "0xADDR", value_parser = crashlog::symbolicate::verbs::parse_address)]
        addresses: Vec<u64>,
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
            symbols,
        } => {
            let kb = crashlog::cmd::load_rules(&rules)?;
            let cmd = crashlog::cmd::TriageCommand {
                paths,
                format: format.into(),
                rules,
                min_count,
                symbols,
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
        Command::Symbolicate {
            reports,
            symbols,
            json,
            output,
        } => {
            let mut err = io::stderr();
            let store = crashlog::symbolicate::verbs::load_store(&symbols, &mut err)?;
            let cmd = crashlog::symbolicate::verbs::SymbolicateCommand {
                reports,
                json,
                output,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let outcome =
                crashlog::symbolicate::verbs::run_symbolicate(&cmd, &store, &mut out, &mut err)?;
            out.flush()?;
            Ok(if outcome.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Atos {
            symbols,
            arch,
            load_address,
            uuid,
            image,
            addresses,
        } => {
            let store = crashlog::symbolicate::verbs::load_store(&symbols, &mut io::stderr())?;
            let cmd = crashlog::symbolicate::verbs::AtosCommand {
                arch,
                load_address,
                uuid,
                image,
                addresses,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let failed = crashlog::symbolicate::verbs::run_atos(&cmd, &store, &mut out)?;
            out.flush()?;
            Ok(if failed > 0 {
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

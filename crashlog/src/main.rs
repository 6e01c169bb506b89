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

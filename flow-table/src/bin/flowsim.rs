//! `flowsim`: runs flow-table scenarios with field bugs switched on and writes what the
//! system would have written (unified log, panic report, hang sample).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use flow_table::fault::{Fault, FaultSet};
use flow_table::sim::{self, PanicFormat, SimConfig};

/// Flowswitch / flow divert simulator with switchable field bugs.
#[derive(Debug, Parser)]
#[command(name = "flowsim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List scenarios and faults.
    List,
    /// Run a scenario and write its log, panic report and hang sample into DIR.
    Run {
        /// Scenario name (see `flowsim list`).
        scenario: String,
        /// Fault to switch on (repeatable); the name is the known-issue id it reproduces.
        #[arg(long = "fault", value_name = "NAME")]
        faults: Vec<Fault>,
        /// Seed for the deterministic workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Panic report format.
        #[arg(long, value_enum, default_value_t = PanicFormatArg::Ips)]
        panic_format: PanicFormatArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PanicFormatArg {
    /// `panic-full-*.ips` (bug_type 210), as macOS writes it.
    Ips,
    /// Bare panic text (`Kernel-*.panic`).
    Text,
}

fn list() {
    println!("scenarios:");
    for s in sim::SCENARIOS {
        println!("  {:<16} {}", s.name, s.summary);
    }
    println!("\nfaults (--fault NAME; each name is the known issue it reproduces):");
    for f in Fault::ALL {
        println!("  {:<33} {}", f.name(), f.summary());
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            faults,
            seed,
            out,
            panic_format,
        } => {
            let cfg = SimConfig {
                faults: FaultSet::of(&faults),
                seed,
                panic_format: match panic_format {
                    PanicFormatArg::Ips => PanicFormat::Ips,
                    PanicFormatArg::Text => PanicFormat::Text,
                },
            };
            let output = sim::run(&scenario, &cfg)?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for f in &output.files {
                let path = out.join(&f.name);
                std::fs::write(&path, &f.contents)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            print!("{}", output.summary.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowsim: {e:#}");
            ExitCode::from(2)
        }
    }
}

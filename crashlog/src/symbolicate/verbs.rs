//! The `symbolicate` and `atos` verbs as library functions (the binary only parses
//! arguments). Each takes its writers, so tests run them in-process.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crashlog_symbols::{Arch, ImageRef, SymbolError, SymbolStore};
use rayon::prelude::*;

use super::{Rewritten, SymbolicationOutcome, atos, rewrite, symbolicate_report};
use crate::error::LoadError;
use crate::load::{self, LoadOptions};
use crate::model::ReportKind;
use crate::render::JsonWriter;

/// Options of `crashlog symbolicate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicateCommand {
    /// Report files and directories.
    pub reports: Vec<PathBuf>,
    /// Print the symbolicated model as crashlog.parse JSON instead of the rewritten reports.
    pub json: bool,
    /// Write one file per input into this directory instead of standard output.
    pub output: Option<PathBuf>,
}

/// What `crashlog symbolicate` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SymbolicateOutcome {
    /// Files written (or printed).
    pub files: usize,
    /// Files that failed (unreadable, not a report).
    pub errors: usize,
    /// Frames looked at / filled in, over all files.
    pub frames: usize,
    /// Frames filled in.
    pub symbolicated: usize,
}

/// Build the store from `--symbols` paths and print its warnings (files inside the
/// directories that look like objects but do not parse) to `err`.
pub fn load_store(paths: &[PathBuf], err: &mut impl Write) -> Result<SymbolStore, SymbolError> {
    let store = SymbolStore::from_paths(paths)?;
    for w in store.warnings() {
        // Warnings only: the rest of the store is usable.
        let _ = writeln!(err, "crashlog: warning: {w} [{}]", w.name());
    }
    Ok(store)
}

enum Done {
    Rewritten(Rewritten),
    Reports(Vec<crate::model::Report>, SymbolicationOutcome),
}

/// Run `crashlog symbolicate`: every report file is symbolicated (in parallel, sharing
/// `store`) and written to `out` (or to `--output DIR`, one file per input, same name);
/// problems with symbols go to `err` once per image, file errors as
/// `crashlog: path:line: message`.
pub fn run_symbolicate(
    cmd: &SymbolicateCommand,
    store: &SymbolStore,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<SymbolicateOutcome> {
    let opts = LoadOptions::default();
    let (files, walk_errors) = load::collect_files(&cmd.reports);
    let mut summary = SymbolicateOutcome::default();
    let (mut json, mut raw) = if cmd.json && cmd.output.is_none() {
        (Some(JsonWriter::new(&mut *out)?), None)
    } else {
        (None, Some(&mut *out))
    };
    for e in walk_errors {
        writeln!(err, "crashlog: {e}")?;
        if let Some(j) = json.as_mut() {
            j.error(&e);
        }
        summary.errors += 1;
    }
    if let Some(dir) = &cmd.output
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Err(io::Error::new(
            e.kind(),
            format!("{}: cannot create the output directory: {e}", dir.display()),
        ));
    }
    let mut written: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    // Chunks: parallel work, output in input order, bounded memory for big batches.
    for chunk in files.chunks(PARALLEL_CHUNK) {
        let results: Vec<Result<Done, LoadError>> = chunk
            .par_iter()
            .map(|path| process(path, cmd.json, store, opts.max_report_bytes))
            .collect();
        for (path, result) in chunk.iter().zip(results) {
            let source = path.display().to_string();
            let done = match result {
                Ok(d) => d,
                Err(e) => {
                    writeln!(err, "crashlog: {e}")?;
                    if let Some(j) = json.as_mut() {
                        j.error(&e);
                    }
                    summary.errors += 1;
                    continue;
                }
            };
            let outcome = match &done {
                Done::Rewritten(r) => &r.outcome,
                Done::Reports(_, o) => o,
            };
            outcome.write_problems(err, &source)?;
            writeln!(
                err,
                "crashlog: {source}: symbolicated {} of {} frames ({} inlined frames added, {} without symbols)",
                outcome.symbolicated,
                outcome.frames,
                outcome.inlined_added,
                outcome.without_symbols
            )?;
            summary.frames += outcome.frames;
            summary.symbolicated += outcome.symbolicated;
            let bytes = match done {
                Done::Rewritten(r) => r.bytes,
                Done::Reports(reports, _) => {
                    if let Some(j) = json.as_mut() {
                        for r in &reports {
                            j.report(&source, r)?;
                        }
                        summary.files += 1;
                        continue;
                    }
                    // --json --output: one crashlog.parse document per input.
                    let mut buf = Vec::new();
                    let mut j = JsonWriter::new(&mut buf)?;
                    for r in &reports {
                        j.report(&source, r)?;
                    }
                    j.finish()?;
                    buf
                }
            };
            match &cmd.output {
                Some(dir) => {
                    let mut name = path
                        .file_name()
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("report"));
                    if cmd.json {
                        let mut s = name.into_os_string();
                        s.push(".json");
                        name = PathBuf::from(s);
                    }
                    let target = dir.join(&name);
                    if !written.insert(target.clone()) {
                        writeln!(
                            err,
                            "crashlog: {source}: not written: {} was already written from another input with the same name",
                            target.display()
                        )?;
                        summary.errors += 1;
                        continue;
                    }
                    if let Err(e) = std::fs::write(&target, &bytes) {
                        writeln!(err, "crashlog: {}: {e}", target.display())?;
                        summary.errors += 1;
                        continue;
                    }
                }
                None => {
                    if let Some(o) = raw.as_mut() {
                        o.write_all(&bytes)?;
                        if !bytes.ends_with(b"\n") {
                            o.write_all(b"\n")?;
                        }
                    }
                }
            }
            summary.files += 1;
        }
    }
    if let Some(j) = json {
        j.finish()?;
    }
    if let Some(o) = raw {
        o.flush()?;
    }
    Ok(summary)
}

/// Files symbolicated at once (in parallel) before their output is written.
const PARALLEL_CHUNK: usize = 256;

fn process(
    path: &Path,
    json: bool,
    store: &SymbolStore,
    max_bytes: u64,
) -> Result<Done, LoadError> {
    let bytes = read_capped(path, max_bytes)?;
    let parse_err = |source| LoadError::Parse {
        path: path.to_path_buf(),
        source,
    };
    if json {
        let mut reports = crate::parse::parse_auto(&bytes).map_err(parse_err)?;
        let mut outcome = SymbolicationOutcome::default();
        for r in reports.iter_mut().filter(|r| r.kind != ReportKind::Log) {
            outcome.merge(symbolicate_report(r, store));
        }
        Ok(Done::Reports(reports, outcome))
    } else {
        rewrite(&bytes, store)
            .map(Done::Rewritten)
            .map_err(parse_err)
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Options of `crashlog atos`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtosCommand {
    /// Architecture (`arm64`, `arm64e`, `x86_64`): picks the slice of a fat file.
    pub arch: Option<String>,
    /// Runtime load address of the image (`-l`); without it addresses are file addresses.
    pub load_address: Option<u64>,
    /// UUID / build-id of the image.
    pub uuid: Option<String>,
    /// Image name (file name of the binary).
    pub image: Option<String>,
    /// Addresses to look up.
    pub addresses: Vec<u64>,
}

/// Run `crashlog atos`: one block of `atos -i` lines per address (innermost inlined frame
/// first), or `0x… (no symbols: reason [name])`. Returns how many addresses failed.
pub fn run_atos(cmd: &AtosCommand, store: &SymbolStore, out: &mut impl Write) -> io::Result<usize> {
    let uuid = match cmd.uuid.as_deref().map(str::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--uuid: {e}"),
            ));
        }
        None => None,
    };
    let image = ImageRef {
        uuid,
        name: cmd.image.clone(),
        arch: cmd.arch.as_deref().map(Arch::parse),
        load_address: cmd.load_address,
    };
    let mut failed = 0;
    for answer in atos(store, &image, cmd.image.as_deref(), &cmd.addresses) {
        match answer.result {
            Ok(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(
                    out,
                    "{:#x} (no symbols: {e} [{}])",
                    answer.address,
                    e.name()
                )?;
            }
        }
    }
    out.flush()?;
    Ok(failed)
}

/// Parse `0x1045f2a3c` (or bare hex, as `atos` accepts) into an address.
pub fn parse_address(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| format!("not a hex address: {s:?} ({e})"))
}

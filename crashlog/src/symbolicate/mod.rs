//! Symbolication of reports: frames filled in with functions, inline chains, files and
//! lines from the binaries and debug files of a [`SymbolStore`] (crate
//! `crashlog-symbols`).
//!
//! Three ways in:
//!
//! - [`symbolicate_report`] / [`symbolicate_reports`]: the [`Report`] model in place (for
//!   `--json`, and for `triage` before signatures, so that unsymbolicated and symbolicated
//!   copies of one crash produce the same frames).
//! - [`rewrite`]: the original bytes of a report, written back with frames filled in and
//!   everything else byte for byte as it was (`.crash`/panic/pasted text keeps its layout,
//!   `.ips` stays valid JSON with Apple's `symbol`, `symbolLocation`, `sourceFile`,
//!   `sourceLine` and `inline` keys).
//! - [`atos`]: single addresses, `atos -i` style.
//!
//! Matching (see the `crashlog-symbols` README): the image UUID first, then name + arch
//! when the report gives no UUID. `.ips` frames are looked up by image offset, text frames
//! by absolute address and the image's load address, kernel frames through the panic's
//! `Kernel slide:` (or `Kernel text base:`) and kext frames through the kext's `@0xstart`.
//! Frame 0 of the crashed thread is looked up as a PC, every other frame as a return
//! address (at `address - 1`). A frame that cannot be symbolicated is left exactly as it
//! was; problems are collected once per image in [`SymbolicationOutcome::problems`].

mod ips;
mod json_spans;
mod resolve;
mod text;
pub mod verbs;

use std::io::{self, Write};

use crashlog_symbols::{SymbolError, SymbolFrame, SymbolStore, Symbolication};
use rayon::prelude::*;

use crate::model::{Frame, Report, ReportKind, Thread};
pub use resolve::{FrameSite, Resolver};

/// One problem with one image's symbols (wrong UUID, missing slice, stripped binary,
/// corrupt DWARF, …), reported once per image and error kind.
#[derive(Debug, Clone)]
pub struct ImageProblem {
    /// The image as the report names it (`'tunnel' <UUID>`).
    pub image: String,
    /// What went wrong; its message names the symbol file.
    pub error: SymbolError,
}

impl std::fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image {}: {} [{}]; its frames are left as they were",
            self.image,
            self.error,
            self.error.name()
        )
    }
}

/// What a symbolication pass did.
#[derive(Debug, Clone, Default)]
pub struct SymbolicationOutcome {
    /// Frames looked at (inline frames already in the report are not counted).
    pub frames: usize,
    /// Frames filled in from symbols.
    pub symbolicated: usize,
    /// Inlined frames inserted.
    pub inlined_added: usize,
    /// Frames whose image has no symbols in the store (system libraries): left alone,
    /// never printed.
    pub without_symbols: usize,
    /// Problems, once per image and error kind (`image_not_found` excluded).
    pub problems: Vec<ImageProblem>,
}

impl SymbolicationOutcome {
    /// Add another pass's counts and problems (problems already present are not repeated).
    pub fn merge(&mut self, other: SymbolicationOutcome) {
        self.frames += other.frames;
        self.symbolicated += other.symbolicated;
        self.inlined_added += other.inlined_added;
        self.without_symbols += other.without_symbols;
        for p in other.problems {
            self.push_problem(p);
        }
    }

    pub(crate) fn push_problem(&mut self, p: ImageProblem) {
        let dup = self
            .problems
            .iter()
            .any(|q| q.image == p.image && q.error.name() == p.error.name());
        if !dup {
            self.problems.push(p);
        }
    }

    /// Print each problem as `crashlog: warning: SOURCE: image …: message [name]`.
    pub fn write_problems(&self, err: &mut impl Write, source: &str) -> io::Result<()> {
        for p in &self.problems {
            writeln!(err, "crashlog: warning: {source}: {p}")?;
        }
        Ok(())
    }
}

/// Symbolicate every frame of `report` in place (threads, the last exception backtrace).
///
/// A frame that symbolicates gets `symbol`, `symbol_offset`, `file` (base name, as Apple
/// writes it) and `line`; inlined calls become extra frames marked `inline`, innermost
/// first, placed before the frame that owns the code (the order of `.ips` files). Inline
/// frames already in the report (a symbolicated `.ips`) are replaced by the new chain, so
/// symbolicating twice gives the same report. A frame that fails keeps its content.
pub fn symbolicate_report(report: &mut Report, store: &SymbolStore) -> SymbolicationOutcome {
    let mut resolver = Resolver::new(store, report);
    let mut outcome = SymbolicationOutcome::default();
    let crashed = report.crashed_thread().map(|t| t.index);
    let is_panic = report.kind == ReportKind::Panic || report.panic.is_some();
    for thread in &mut report.threads {
        // Panic backtraces are `lr:` values: return addresses, even the first.
        let top_is_pc = !is_panic && (thread.crashed || Some(thread.index) == crashed);
        symbolicate_thread(thread, top_is_pc, &mut resolver, &mut outcome);
    }
    if let Some(leb) = report.last_exception_backtrace.as_mut() {
        symbolicate_thread(leb, false, &mut resolver, &mut outcome);
    }
    outcome.merge(resolver.into_outcome());
    outcome
}

/// The triage hook: symbolicate many reports in parallel (rayon), sharing one store (each
/// symbol file is parsed once for the whole batch). Problems are merged and deduplicated.
///
/// ```no_run
/// # let mut reports: Vec<crashlog::Report> = Vec::new();
/// let store = crashlog_symbols::SymbolStore::from_paths(["build/symbols"]).unwrap();
/// let outcome = crashlog::symbolicate::symbolicate_reports(&mut reports, &store);
/// outcome.write_problems(&mut std::io::stderr(), "triage").unwrap();
/// ```
pub fn symbolicate_reports(reports: &mut [Report], store: &SymbolStore) -> SymbolicationOutcome {
    reports
        .par_iter_mut()
        .map(|r| symbolicate_report(r, store))
        .reduce(SymbolicationOutcome::default, |mut a, b| {
            a.merge(b);
            a
        })
}

/// The triage hook for [`crate::load::load_paths`] output: symbolicate every report of
/// every file that loaded (in parallel, one shared store), and return each file's outcome
/// (in the same order) so that problems can be printed per file with
/// [`SymbolicationOutcome::write_problems`]. Files that failed to load are skipped.
///
/// ```no_run
/// use crashlog::load::{LoadOptions, load_paths};
/// use crashlog::symbolicate::symbolicate_loaded;
///
/// let store = crashlog_symbols::SymbolStore::from_paths(["build/"]).unwrap();
/// let mut loaded = load_paths(&["reports/".into()], &LoadOptions::default());
/// for (path, outcome) in symbolicate_loaded(&mut loaded, &store) {
///     outcome.write_problems(&mut std::io::stderr(), &path.display().to_string()).unwrap();
/// }
/// // … then signatures and clusters from `loaded`.
/// ```
pub fn symbolicate_loaded(
    loaded: &mut [crate::load::Loaded],
    store: &SymbolStore,
) -> Vec<(std::path::PathBuf, SymbolicationOutcome)> {
    loaded
        .par_iter_mut()
        .map(|l| {
            let mut outcome = SymbolicationOutcome::default();
            if let Ok(reports) = l.result.as_mut() {
                for r in reports.iter_mut().filter(|r| r.kind != ReportKind::Log) {
                    outcome.merge(symbolicate_report(r, store));
                }
            }
            (l.path.clone(), outcome)
        })
        .collect()
}

fn symbolicate_thread(
    thread: &mut Thread,
    top_is_pc: bool,
    resolver: &mut Resolver<'_>,
    outcome: &mut SymbolicationOutcome,
) {
    let sequential = thread
        .frames
        .iter()
        .enumerate()
        .all(|(i, f)| f.index as usize == i);
    let old = std::mem::take(&mut thread.frames);
    let mut out: Vec<Frame> = Vec::with_capacity(old.len());
    let mut pending_inline: Vec<Frame> = Vec::new();
    let mut real_position = 0usize;
    for frame in old {
        if frame.inline {
            // Already-expanded inline frames: kept only if their real frame fails.
            pending_inline.push(frame);
            continue;
        }
        outcome.frames += 1;
        let kind = if top_is_pc && real_position == 0 {
            crashlog_symbols::FrameKind::Pc
        } else {
            crashlog_symbols::FrameKind::ReturnAddress
        };
        real_position += 1;
        let site = FrameSite::from_frame(&frame);
        match resolver.symbolicate(&site, kind) {
            Some(sym) => {
                outcome.symbolicated += 1;
                outcome.inlined_added += sym.frames.len().saturating_sub(1);
                pending_inline.clear();
                let mut expanded = expand(&frame, &sym);
                if frame.depth.is_some() {
                    // Call graphs (hang reports) list frames outermost first.
                    expanded.reverse();
                }
                out.extend(expanded);
            }
            None => {
                if resolver.last_was_not_found() {
                    outcome.without_symbols += 1;
                }
                out.append(&mut pending_inline);
                out.push(frame);
            }
        }
    }
    out.append(&mut pending_inline);
    if sequential {
        for (i, f) in out.iter_mut().enumerate() {
            f.index = u32::try_from(i).unwrap_or(u32::MAX);
        }
    }
    thread.frames = out;
}

/// The frames one symbolicated frame becomes, innermost first.
fn expand(original: &Frame, sym: &Symbolication) -> Vec<Frame> {
    sym.frames
        .iter()
        .map(|sf| {
            let mut f = original.clone();
            apply(&mut f, sf);
            f
        })
        .collect()
}

fn apply(f: &mut Frame, sf: &SymbolFrame) {
    if let Some(name) = symbol_name(sf) {
        f.symbol = Some(name.to_owned());
    }
    f.symbol_offset = sf.symbol_offset;
    f.file = sf.file.as_deref().map(|p| base_name(p).to_owned());
    f.line = sf.line;
    f.inline = sf.inlined;
}

/// The name to print for a symbol frame: demangled, else as stored.
pub(crate) fn symbol_name(sf: &SymbolFrame) -> Option<&str> {
    sf.function.as_deref().or(sf.raw_function.as_deref())
}

/// `/src/tunnel/packet.c` → `packet.c` (crash reports print base names).
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The report rewritten with frames filled in, and what happened.
#[derive(Debug)]
pub struct Rewritten {
    /// The new bytes: same layout as the input, frames filled in.
    pub bytes: Vec<u8>,
    /// Counts and problems.
    pub outcome: SymbolicationOutcome,
}

pub(crate) fn unsupported(what: impl Into<String>) -> crate::error::ParseError {
    crate::error::ParseError::Unsupported {
        line: 1,
        what: what.into(),
    }
}

/// Rewrite a report's original bytes with its frames symbolicated, keeping its layout:
/// text reports (`.crash`, bug_type 109, panics, pasted stacks) have only their frame
/// lines rewritten; Console's translated reports have their text and their full `.ips`
/// rewritten; `.ips` crash reports keep their JSON text except
/// for the frames, which get `symbol`, `symbolLocation`, `sourceFile`, `sourceLine`, and
/// inlined frames inserted with `"inline" : true`; `.ips` panics get their panic string's
/// backtrace lines rewritten.
pub fn rewrite(bytes: &[u8], store: &SymbolStore) -> Result<Rewritten, crate::error::ParseError> {
    let reports = crate::parse::parse_auto(bytes)?;
    let Some(first) = reports.iter().find(|r| r.kind != ReportKind::Log) else {
        return Err(unsupported(
            "a log excerpt has no stack frames to symbolicate",
        ));
    };
    use crate::model::SourceFormat as F;
    match first.format {
        F::IpsCrash | F::IpsPanic => ips::rewrite(bytes, first, store),
        F::TranslatedReport => Ok(translated(bytes, &reports, store)),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            Ok(text::rewrite(&text, &reports, store))
        }
    }
}

/// Console's "Translated Report (Full Report Below)": the translated text's frame lines
/// and the full `.ips` after `Full Report` are both rewritten (counts from the text part;
/// problems from both, once).
fn translated(bytes: &[u8], reports: &[Report], store: &SymbolStore) -> Rewritten {
    let text = String::from_utf8_lossy(bytes);
    let json_start = text.find("\nFull Report").and_then(|at| {
        let mut pos = at + 1;
        for line in text.get(at + 1..)?.split_inclusive('\n') {
            if line.trim_start().starts_with('{') {
                return Some(pos);
            }
            pos += line.len();
        }
        None
    });
    let Some(split) = json_start else {
        return text::rewrite(&text, reports, store);
    };
    let (head, full) = text.split_at(split);
    let mut done = text::rewrite(head, reports, store);
    let Some(first) = reports.iter().find(|r| r.kind != ReportKind::Log) else {
        done.bytes.extend_from_slice(full.as_bytes());
        return done;
    };
    match ips::rewrite(full.as_bytes(), first, store) {
        Ok(json) => {
            done.bytes.extend_from_slice(&json.bytes);
            for p in json.outcome.problems {
                done.outcome.push_problem(p);
            }
        }
        Err(_) => done.bytes.extend_from_slice(full.as_bytes()),
    }
    done
}

/// One `atos` answer: the address and its lines (innermost first), or why not.
#[derive(Debug)]
pub struct AtosAnswer {
    /// The address as given.
    pub address: u64,
    /// `function (in image) (file:line)` lines, innermost first, or the error.
    pub result: Result<Vec<String>, SymbolError>,
}

/// `atos`: look up addresses in one image (see [`SymbolStore::atos`]) and format them as
/// `atos -i` does. `image_name` is the name printed in `(in …)`; when `None`, the file name
/// of the object that answered is used.
pub fn atos(
    store: &SymbolStore,
    image: &crashlog_symbols::ImageRef,
    image_name: Option<&str>,
    addresses: &[u64],
) -> Vec<AtosAnswer> {
    store
        .atos(image, addresses)
        .into_iter()
        .zip(addresses)
        .map(|(r, &address)| AtosAnswer {
            address,
            result: r.map(|sym| {
                let name = image_name.map(str::to_owned).unwrap_or_else(|| {
                    sym.object_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                sym.atos_lines(&name)
            }),
        })
        .collect()
}

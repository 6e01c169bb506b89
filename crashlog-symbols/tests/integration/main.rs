//! Integration tests for crashlog-symbols: one test binary.
//!
//! * `macho`: Mach-O thin, fat and `.dSYM` files written with `object` + `gimli`.
//! * `elf`: real binaries compiled with gcc/g++/rustc at test time, checked against the
//!   source and binutils `addr2line`.
//! * `errors`: wrong UUID, missing slice, stripped binary, corrupt DWARF.
//! * `report`: a generated report's frames, absolute vs image-offset, cache behaviour.

mod elf;
mod errors;
mod macho;
mod report;
mod synth;

use std::path::{Path, PathBuf};

use crashlog_symbols::Symbolication;

/// `(function, line)` pairs of a symbolication, innermost first.
pub(crate) fn chain(sym: &Symbolication) -> Vec<(String, u64)> {
    sym.frames
        .iter()
        .map(|f| {
            (
                f.function.clone().unwrap_or_default(),
                u64::from(f.line.unwrap_or(0)),
            )
        })
        .collect()
}

/// Owned version of `synth::expected`.
pub(crate) fn expect(text_offset: u64, line_shift: u64) -> Vec<(String, u64)> {
    synth::expected(text_offset, line_shift)
        .into_iter()
        .map(|(f, l)| (f.to_owned(), l))
        .collect()
}

/// Write `bytes` to `dir/rel`, creating parent directories.
pub(crate) fn put(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dirs");
    }
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// A frame as a report holds it, to show that a failed lookup leaves it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportFrame {
    pub(crate) image_index: usize,
    pub(crate) address: u64,
    pub(crate) symbol: Option<String>,
    pub(crate) source: Option<String>,
}

impl ReportFrame {
    /// What a caller does with a per-frame outcome: fill on success, keep on error.
    pub(crate) fn apply(&mut self, outcome: &Result<Symbolication, crashlog_symbols::SymbolError>) {
        if let Ok(sym) = outcome
            && let Some(inner) = sym.innermost()
        {
            self.symbol = inner.function.clone();
            self.source = inner
                .file
                .as_ref()
                .map(|f| format!("{f}:{}", inner.line.unwrap_or(0)));
        }
    }
}

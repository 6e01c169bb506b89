//! Results of symbolicating one address.

use std::path::PathBuf;

use crate::demangle::Mangling;

/// One source-level frame. A machine address yields one of these per inlined call level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFrame {
    /// Demangled function name (Rust without hash, C++ with parameters; Swift stays
    /// mangled, see [`Mangling::Swift`]). `None` when only line info covers the address.
    pub function: Option<String>,
    /// The name as stored in the file (mangled; Mach-O's leading `_` removed).
    pub raw_function: Option<String>,
    /// Which mangling `raw_function` used.
    pub mangling: Mangling,
    /// Source file (as the compiler recorded it, usually absolute).
    pub file: Option<String>,
    /// 1-based source line.
    pub line: Option<u32>,
    /// 1-based column, when the compiler recorded one.
    pub column: Option<u32>,
    /// True for every frame that was inlined into its caller (all but the last).
    pub inlined: bool,
    /// Bytes from the start of the function symbol to the address as given (the
    /// `+ 24` of `foo + 24`, `.ips` `symbolLocation`). Set only on the outermost
    /// (non-inlined) frame, and only when a symbol-table entry covers the address.
    pub symbol_offset: Option<u64>,
}

/// Where the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolSource {
    /// DWARF (functions, inline chain, file and line).
    Dwarf,
    /// Only the symbol table (function name and offset; no file, line or inlines).
    SymbolTable,
}

/// The frames for one address.
///
/// **Order: innermost first.** `frames[0]` is the function whose code is at the address
/// (possibly inlined), each following frame is its caller at the inlined call site, and the
/// last frame is the real (non-inlined) function that owns the machine code. This is the
/// order of `addr2line -i`, `atos -i`, and of crash reports (top of stack first), so a
/// caller can splice the frames in place of the original one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbolication {
    /// Innermost first; never empty.
    pub frames: Vec<SymbolFrame>,
    /// DWARF or symbol table.
    pub source: SymbolSource,
    /// The file the answer came from (a `.dSYM` DWARF file, a `.debug` file, a binary).
    pub object_path: PathBuf,
    /// The address in the file's own address space (slide removed).
    pub svma: u64,
    /// The address relative to the image start (`.ips` `imageOffset`).
    pub image_offset: u64,
}

impl Symbolication {
    /// The real function (last frame): what owns the machine code.
    pub fn outermost(&self) -> Option<&SymbolFrame> {
        self.frames.last()
    }

    /// The innermost inlined frame: where the address is in the source.
    pub fn innermost(&self) -> Option<&SymbolFrame> {
        self.frames.first()
    }

    /// `atos -i` style lines, innermost first:
    /// `function (in image) (file.c:12)` with a file and line, or
    /// `function (in image) + 24` from a symbol table alone.
    pub fn atos_lines(&self, image_name: &str) -> Vec<String> {
        self.frames
            .iter()
            .map(|f| {
                let func = f.function.as_deref().unwrap_or("???");
                match (&f.file, f.line) {
                    (Some(file), Some(line)) => {
                        let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
                        format!("{func} (in {image_name}) ({base}:{line})")
                    }
                    _ => match f.symbol_offset {
                        Some(off) => format!("{func} (in {image_name}) + {off}"),
                        None => format!("{func} (in {image_name})"),
                    },
                }
            })
            .collect()
    }
}

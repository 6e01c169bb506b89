//! One object file parsed for lookups: DWARF context, symbol table, image vm address.
//!
//! Section data is copied out of the file once into reference-counted buffers
//! (`gimli::EndianArcSlice`), so the loaded object owns everything it needs, holds no
//! borrowed file data, and needs no `unsafe` memory mapping.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSegment, ReadCache};

use crate::demangle::{Mangling, demangle};
use crate::error::SymbolError;
use crate::frame::{SymbolFrame, SymbolSource};
use crate::index::{ObjectFormat, ObjectInfo};
use crate::symtab::SymbolTable;

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// A parsed object file.
pub(crate) struct LoadedObject {
    pub(crate) path: PathBuf,
    /// `__TEXT` vmaddr (Mach-O) or lowest `PT_LOAD` vaddr rounded down to 4 KiB (ELF).
    pub(crate) image_vmaddr: u64,
    /// `addr2line` caches parsed units and functions internally and is not `Sync`; the
    /// mutex serialises lookups into one image (different images proceed in parallel).
    dwarf: Option<Mutex<addr2line::Context<Reader>>>,
    symbols: SymbolTable,
}

impl std::fmt::Debug for LoadedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedObject")
            .field("path", &self.path)
            .field("image_vmaddr", &format_args!("0x{:x}", self.image_vmaddr))
            .field("has_dwarf", &self.dwarf.is_some())
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

/// Frames found for one address, before they are wrapped into a `Symbolication`.
pub(crate) struct Found {
    pub(crate) frames: Vec<SymbolFrame>,
    pub(crate) source: SymbolSource,
}

impl LoadedObject {
    /// Open and parse `info` (one slice of a fat file, or a thin file).
    pub(crate) fn load(info: &ObjectInfo) -> Result<LoadedObject, SymbolError> {
        let path = info.path.as_path();
        let file = File::open(path).map_err(|e| SymbolError::io(path, e))?;
        let len = file.metadata().map_err(|e| SymbolError::io(path, e))?.len();
        let cache = ReadCache::new(file);
        let (offset, size) = info.slice.unwrap_or((0, len));
        let data = cache.range(offset, size);
        let obj = object::File::parse(data).map_err(|e| SymbolError::malformed(path, e))?;

        let image_vmaddr = image_vmaddr(&obj, info.format);
        let symbols = SymbolTable::from_object(&obj);
        let dwarf = if info.has_dwarf {
            Some(Mutex::new(load_dwarf(path, &obj)?))
        } else {
            None
        };
        if dwarf.is_none() && symbols.is_empty() {
            return Err(SymbolError::Stripped {
                path: path.to_owned(),
            });
        }
        Ok(LoadedObject {
            path: path.to_owned(),
            image_vmaddr,
            dwarf,
            symbols,
        })
    }

    /// Frames for `svma`; line/inline data is looked up at `probe` (`svma`, or `svma - 1`
    /// for return addresses). Innermost inlined frame first, the real function last.
    pub(crate) fn lookup(&self, svma: u64, probe: u64) -> Result<Found, SymbolError> {
        let sym = self.symbols.lookup(probe);
        if let Some(ctx) = &self.dwarf {
            let ctx = ctx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let frames = self.dwarf_frames(&ctx, probe)?;
            if !frames.is_empty() {
                let mut frames = frames;
                if let Some(outer) = frames.last_mut() {
                    if let Some(sym) = sym {
                        outer.symbol_offset = svma.checked_sub(sym.address);
                        if outer.function.is_none() {
                            let d = demangle(&sym.name);
                            outer.function = Some(d.name);
                            outer.raw_function = Some(sym.name.clone());
                            outer.mangling = d.mangling;
                        }
                    }
                }
                return Ok(Found {
                    frames,
                    source: SymbolSource::Dwarf,
                });
            }
        }
        match sym {
            Some(sym) => {
                let d = demangle(&sym.name);
                Ok(Found {
                    frames: vec![SymbolFrame {
                        function: Some(d.name),
                        raw_function: Some(sym.name.clone()),
                        mangling: d.mangling,
                        file: None,
                        line: None,
                        column: None,
                        inlined: false,
                        symbol_offset: svma.checked_sub(sym.address),
                    }],
                    source: SymbolSource::SymbolTable,
                })
            }
            None => Err(SymbolError::AddressNotFound {
                path: self.path.clone(),
                address: svma,
            }),
        }
    }

    fn dwarf_frames(
        &self,
        ctx: &addr2line::Context<Reader>,
        probe: u64,
    ) -> Result<Vec<SymbolFrame>, SymbolError> {
        let corrupt = |e: gimli::Error| SymbolError::CorruptDwarf {
            path: self.path.clone(),
            section: ".debug_info",
            offset: None,
            message: format!("{e} (while looking up 0x{probe:x})"),
        };
        let mut iter = ctx.find_frames(probe).skip_all_loads().map_err(corrupt)?;
        let mut out = Vec::new();
        while let Some(frame) = iter.next().map_err(corrupt)? {
            let (function, raw_function, mangling) = match &frame.function {
                Some(name) => {
                    let raw = name.raw_name().map_err(corrupt)?.into_owned();
                    let d = demangle(&raw);
                    (Some(d.name), Some(raw), d.mangling)
                }
                None => (None, None, Mangling::None),
            };
            let (file, line, column) = match &frame.location {
                Some(loc) => (loc.file.map(str::to_owned), loc.line, loc.column),
                None => (None, None, None),
            };
            out.push(SymbolFrame {
                function,
                raw_function,
                mangling,
                file,
                line,
                column: column.filter(|&c| c != 0),
                inlined: true,
                symbol_offset: None,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        Ok(out)
    }
}

fn image_vmaddr<'data, R: object::ReadRef<'data>>(
    obj: &object::File<'data, R>,
    format: ObjectFormat,
) -> u64 {
    match format {
        ObjectFormat::MachO => {
            let mut lowest = None::<u64>;
            for seg in obj.segments() {
                if let Ok(Some("__TEXT")) = seg.name() {
                    return seg.address();
                }
                let (_, filesize) = seg.file_range();
                if filesize > 0 {
                    lowest = Some(lowest.map_or(seg.address(), |l| l.min(seg.address())));
                }
            }
            lowest.unwrap_or(0)
        }
        ObjectFormat::Elf => obj
            .segments()
            .map(|s| s.address())
            .min()
            .map_or(0, |a| a & !0xfff),
    }
}

fn load_dwarf<'data, R: object::ReadRef<'data>>(
    path: &Path,
    obj: &object::File<'data, R>,
) -> Result<addr2line::Context<Reader>, SymbolError> {
    let endian = if obj.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let corrupt = |section: &'static str, offset: Option<u64>, e: &dyn std::fmt::Display| {
        SymbolError::CorruptDwarf {
            path: path.to_owned(),
            section,
            offset,
            message: e.to_string(),
        }
    };
    let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<Reader, SymbolError> {
        let data = match obj.section_by_name(id.name()) {
            Some(section) => section
                .uncompressed_data()
                .map_err(|e| corrupt(id.name(), None, &e))?,
            None => Cow::Borrowed(&[][..]),
        };
        Ok(Reader::new(Arc::from(&*data), endian))
    })?;

    // Walk the unit headers once so a corrupt file is reported with the offset of the
    // unit that failed, instead of as a vague error on some later lookup.
    let mut units = dwarf.units();
    let mut next_offset = 0u64;
    loop {
        match units.next() {
            Ok(Some(header)) => {
                let at = header
                    .debug_info_offset()
                    .map(|o| o.0 as u64)
                    .unwrap_or(next_offset);
                next_offset = at.saturating_add(header.length_including_self() as u64);
                if let Err(e) = dwarf.unit(header) {
                    return Err(corrupt(".debug_info", Some(at), &e));
                }
            }
            Ok(None) => break,
            Err(e) => return Err(corrupt(".debug_info", Some(next_offset), &e)),
        }
    }
    addr2line::Context::from_dwarf(dwarf).map_err(|e| corrupt(".debug_info", None, &e))
}

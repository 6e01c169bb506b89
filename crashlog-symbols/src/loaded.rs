//! One object file parsed for lookups: DWARF context, symbol table, image vm address.
//!
//! The object (one fat slice, or the whole thin file) is read once into a single
//! reference-counted buffer; uncompressed DWARF sections are views into it
//! (`gimli::EndianArcSlice` ranges, no copy), compressed ones are inflated once. The
//! loaded object owns everything it needs, holds no borrowed file data, and needs no
//! `unsafe` memory mapping.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSegment};

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
        let whole = read_object(path, info.slice)?;
        let obj = object::File::parse(&*whole).map_err(|e| SymbolError::malformed(path, e))?;

        let image_vmaddr = image_vmaddr(&obj, info.format);
        let symbols = SymbolTable::from_object(&obj);
        let dwarf = if info.has_dwarf {
            Some(Mutex::new(load_dwarf(path, &obj, &whole)?))
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
                if let Some(outer) = frames.last_mut()
                    && let Some(sym) = sym
                {
                    outer.symbol_offset = svma.checked_sub(sym.address);
                    if outer.function.is_none() {
                        let d = demangle(&sym.name);
                        outer.function = Some(d.name);
                        outer.raw_function = Some(sym.name.clone());
                        outer.mangling = d.mangling;
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
        let mut swift_dies = Vec::new();
        while let Some(frame) = iter.next().map_err(corrupt)? {
            let (function, raw_function, mangling) = match &frame.function {
                Some(name) => {
                    let raw = name.raw_name().map_err(corrupt)?.into_owned();
                    let d = demangle(&raw);
                    (Some(d.name), Some(raw), d.mangling)
                }
                None => (None, None, Mangling::None),
            };
            if mangling == Mangling::Swift
                && let Some(die) = frame.dw_die_offset
            {
                swift_dies.push((out.len(), die));
            }
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
        // Swift: no demangler here, but the compiler's DW_AT_name is readable
        // (`startTunnel(options:completionHandler:)`); use it, keep the mangled name raw.
        if !swift_dies.is_empty()
            && let Some(unit) = ctx.find_dwarf_and_unit(probe).skip_all_loads()
        {
            for (i, die) in swift_dies {
                if let (Some(frame), Some(name)) = (out.get_mut(i), dwarf_name(unit, die)) {
                    frame.function = Some(name);
                }
            }
        }
        Ok(out)
    }
}

/// `DW_AT_name` of a DIE, following `DW_AT_abstract_origin` / `DW_AT_specification`
/// (an inlined call site or an out-of-line definition points at the declaration).
fn dwarf_name(unit: gimli::UnitRef<'_, Reader>, mut offset: gimli::UnitOffset) -> Option<String> {
    for _ in 0..4 {
        let die = unit.entry(offset).ok()?;
        if let Some(name) = die.attr_value(gimli::DW_AT_name) {
            let name = unit.attr_string(name).ok()?;
            return gimli::Reader::to_string_lossy(&name)
                .ok()
                .map(|n| n.into_owned());
        }
        let next = die
            .attr_value(gimli::DW_AT_abstract_origin)
            .or_else(|| die.attr_value(gimli::DW_AT_specification))?;
        match next {
            gimli::AttributeValue::UnitRef(o) => offset = o,
            _ => return None,
        }
    }
    None
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

/// Read a thin file, or the `(offset, size)` slice of a fat file, into one buffer.
fn read_object(path: &Path, slice: Option<(u64, u64)>) -> Result<Arc<[u8]>, SymbolError> {
    let mut file = File::open(path).map_err(|e| SymbolError::io(path, e))?;
    let len = file.metadata().map_err(|e| SymbolError::io(path, e))?.len();
    let (offset, size) = slice.unwrap_or((0, len));
    if offset.checked_add(size).is_none_or(|end| end > len) {
        return Err(SymbolError::malformed(
            path,
            format!("slice at offset 0x{offset:x} (size 0x{size:x}) runs past the end of the file"),
        ));
    }
    let size = usize::try_from(size)
        .map_err(|_| SymbolError::malformed(path, "object larger than the address space"))?;
    // One allocation of the final size (repeat_n is TrustedLen), then read into it.
    let mut buf: Arc<[u8]> = std::iter::repeat_n(0u8, size).collect();
    let Some(dst) = Arc::get_mut(&mut buf) else {
        return Err(SymbolError::malformed(path, "internal: buffer is shared"));
    };
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(dst))
        .map_err(|e| SymbolError::io(path, e))?;
    Ok(buf)
}

fn load_dwarf<'data>(
    path: &Path,
    obj: &object::File<'data, &'data [u8]>,
    whole: &Arc<[u8]>,
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
    let base = Reader::new(whole.clone(), endian);
    let empty = || Reader::new(Arc::from(&[][..]), endian);
    let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<Reader, SymbolError> {
        let Some(section) = obj.section_by_name(id.name()) else {
            return Ok(empty());
        };
        let range = section
            .compressed_file_range()
            .map_err(|e| corrupt(id.name(), None, &e))?;
        if range.format != object::CompressionFormat::None {
            let data = section
                .uncompressed_data()
                .map_err(|e| corrupt(id.name(), None, &e))?;
            return Ok(Reader::new(Arc::from(&*data), endian));
        }
        let Some((offset, size)) = section.file_range() else {
            return Ok(empty());
        };
        let start = usize::try_from(offset).ok();
        let end = start
            .zip(usize::try_from(size).ok())
            .and_then(|(s, n)| s.checked_add(n));
        match (start, end) {
            (Some(start), Some(end)) if end <= whole.len() => Ok(base.range(start..end)),
            _ => Err(corrupt(
                id.name(),
                None,
                &format!(
                    "section at file offset 0x{offset:x} (size 0x{size:x}) runs past the end of the file"
                ),
            )),
        }
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

//! Finding object files under `--symbols` paths and reading their identity cheaply.
//!
//! Indexing reads only headers and load commands (through `object::ReadCache`, which
//! reads the byte ranges the parser asks for), never the debug sections.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use object::{Object, ObjectSection, ReadCache};

use crate::error::SymbolError;
use crate::id::{Arch, ImageId};

/// Binary format of an indexed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectFormat {
    /// Mach-O (a thin file or one slice of a fat file; `.dSYM` DWARF files too).
    MachO,
    /// ELF (executables, shared objects, split `.debug` files).
    Elf,
}

/// One indexed object: a thin file, or one slice of a fat file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The file.
    pub path: PathBuf,
    /// `(offset, size)` of the slice inside a fat file; `None` for a thin file.
    pub slice: Option<(u64, u64)>,
    /// Mach-O or ELF.
    pub format: ObjectFormat,
    /// CPU architecture.
    pub arch: Arch,
    /// `LC_UUID` or build-id; `None` when the file has none.
    pub id: Option<ImageId>,
    /// File name used for the name fallback (a `.debug` suffix is also matched without it).
    pub name: String,
    /// True when the object has a non-empty `.debug_info` / `__debug_info`.
    pub has_dwarf: bool,
    /// ELF `.gnu_debuglink` file name, when present.
    pub debuglink: Option<String>,
}

const MAX_DEPTH: usize = 32;

/// Result of scanning a path: objects found and problems with individual files.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) objects: Vec<ObjectInfo>,
    pub(crate) warnings: Vec<SymbolError>,
}

/// Scan a file or a directory tree. Files given explicitly must be objects (an error
/// otherwise); files met while walking a directory are skipped silently when they are
/// not objects, and reported as warnings when they look like objects but do not parse.
pub(crate) fn scan(path: &Path) -> Result<Scan, SymbolError> {
    let meta = std::fs::metadata(path).map_err(|e| SymbolError::io(path, e))?;
    let mut scan = Scan::default();
    if meta.is_dir() {
        walk(path, 0, &mut scan);
    } else {
        match scan_file(path)? {
            Some(objects) => scan.objects.extend(objects),
            None => {
                return Err(SymbolError::malformed(
                    path,
                    "no Mach-O, fat or ELF magic at offset 0",
                ));
            }
        }
    }
    add_debuglink_targets(&mut scan);
    Ok(scan)
}

fn walk(dir: &Path, depth: usize, scan: &mut Scan) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            scan.warnings.push(SymbolError::io(dir, e));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        // Directories are walked only when they are real directories (no symlink
        // cycles); files are followed through symlinks (`.build-id/ab/cdef.debug`).
        let is_real_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_real_dir {
            walk(&path, depth + 1, scan);
        } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            match scan_file(&path) {
                Ok(Some(objects)) => scan.objects.extend(objects),
                Ok(None) => {}
                Err(e) => scan.warnings.push(e),
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Magic {
    Elf,
    MachO,
    Fat32,
    Fat64,
}

fn sniff(path: &Path) -> Result<Option<Magic>, SymbolError> {
    let mut file = File::open(path).map_err(|e| SymbolError::io(path, e))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() {
        return Ok(None);
    }
    Ok(match magic {
        [0x7f, b'E', b'L', b'F'] => Some(Magic::Elf),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => Some(Magic::MachO),
        [0xca, 0xfe, 0xba, 0xbe] => Some(Magic::Fat32),
        [0xca, 0xfe, 0xba, 0xbf] => Some(Magic::Fat64),
        _ => None,
    })
}

/// `Ok(None)`: not an object file at all.
fn scan_file(path: &Path) -> Result<Option<Vec<ObjectInfo>>, SymbolError> {
    let Some(magic) = sniff(path)? else {
        return Ok(None);
    };
    let file = File::open(path).map_err(|e| SymbolError::io(path, e))?;
    let len = file.metadata().map_err(|e| SymbolError::io(path, e))?.len();
    let cache = ReadCache::new(file);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    match magic {
        Magic::Fat32 | Magic::Fat64 => {
            let slices: Vec<(u64, u64, object::macho::CpuType, object::macho::CpuSubtype)> =
                if magic == Magic::Fat32 {
                    let fat = MachOFatFile32::parse(&cache);
                    // A Java class file shares the 0xcafebabe magic; it is not a fat file.
                    let Ok(fat) = fat else { return Ok(None) };
                    fat.arches()
                        .iter()
                        .map(|a| {
                            let (o, s) = a.file_range();
                            (o, s, a.cputype(), a.cpusubtype())
                        })
                        .collect()
                } else {
                    let fat = MachOFatFile64::parse(&cache)
                        .map_err(|e| SymbolError::malformed(path, e))?;
                    fat.arches()
                        .iter()
                        .map(|a| {
                            let (o, s) = a.file_range();
                            (o, s, a.cputype(), a.cpusubtype())
                        })
                        .collect()
                };
            for (offset, size, cputype, cpusubtype) in slices {
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    return Err(SymbolError::malformed(
                        path,
                        format!(
                            "fat slice at offset 0x{offset:x} (size 0x{size:x}) runs past the end of the file"
                        ),
                    ));
                }
                let data = cache.range(offset, size);
                let obj = object::File::parse(data).map_err(|e| {
                    SymbolError::malformed(path, format!("fat slice at offset 0x{offset:x}: {e}"))
                })?;
                let mut info = describe(path, &name, &obj, ObjectFormat::MachO).map_err(|e| {
                    SymbolError::malformed(path, format!("fat slice at offset 0x{offset:x}: {e}"))
                })?;
                info.slice = Some((offset, size));
                info.arch = Arch::from_macho(cputype, cpusubtype);
                out.push(info);
            }
        }
        Magic::MachO | Magic::Elf => {
            let data = cache.range(0, len);
            let obj = object::File::parse(data).map_err(|e| SymbolError::malformed(path, e))?;
            let format = if magic == Magic::Elf {
                ObjectFormat::Elf
            } else {
                ObjectFormat::MachO
            };
            out.push(
                describe(path, &name, &obj, format).map_err(|e| SymbolError::malformed(path, e))?,
            );
        }
    }
    Ok(Some(out))
}

fn describe<'data, R: object::ReadRef<'data>>(
    path: &Path,
    name: &str,
    obj: &object::File<'data, R>,
    format: ObjectFormat,
) -> Result<ObjectInfo, object::Error> {
    // Reading the UUID walks all load commands (Mach-O) or the notes (ELF), so a file
    // truncated inside them fails here, at index time, with the parser's message.
    let id = match format {
        ObjectFormat::MachO => obj.mach_uuid()?.map(|u| ImageId::from_bytes(&u)),
        ObjectFormat::Elf => obj.build_id()?.map(ImageId::from_bytes),
    }
    .filter(|id| !id.is_nil());
    let mut arch = Arch::from_object(obj.architecture());
    if arch == Arch::Arm64 && obj.sub_architecture() == Some(object::SubArchitecture::Arm64E) {
        arch = Arch::Arm64e;
    }
    let has_dwarf = obj
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    let debuglink = obj
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(n, _crc)| String::from_utf8_lossy(n).into_owned());
    Ok(ObjectInfo {
        path: path.to_owned(),
        slice: None,
        format,
        arch,
        id,
        name: name.to_owned(),
        has_dwarf,
        debuglink,
    })
}

/// For ELF files that name a `.gnu_debuglink` and have no DWARF, index the link target
/// from the places GDB looks next to the binary: `DIR/NAME` and `DIR/.debug/NAME`.
fn add_debuglink_targets(scan: &mut Scan) {
    let mut extra = Vec::new();
    for info in &scan.objects {
        let (Some(link), false) = (&info.debuglink, info.has_dwarf) else {
            continue;
        };
        let Some(dir) = info.path.parent() else {
            continue;
        };
        for candidate in [dir.join(link), dir.join(".debug").join(link)] {
            let known = scan
                .objects
                .iter()
                .chain(extra.iter())
                .any(|o: &ObjectInfo| o.path == candidate);
            if known || candidate == info.path || !candidate.is_file() {
                continue;
            }
            match scan_file(&candidate) {
                Ok(Some(objects)) => extra.extend(objects),
                Ok(None) => {}
                Err(e) => scan.warnings.push(e),
            }
        }
    }
    scan.objects.extend(extra);
}

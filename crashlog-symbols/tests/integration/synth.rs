//! Synthetic Mach-O files with DWARF, written with `object`'s Mach-O encoder and `gimli`'s
//! DWARF writer (there is no Apple linker on this machine).
//!
//! The "program" is one C compile unit `/src/tunnel.c` in `__TEXT,__text`:
//!
//! | offset in __text | function (symbol)                         | lines      |
//! |------------------|-------------------------------------------|------------|
//! | 0x00..0x40       | `handle_packet`                           | 10, 11, 12 |
//! |   0x18..0x30     |  inlined `checksum` (called at line 11)   | 30, 31     |
//! |   0x20..0x28     |   inlined `fold16` (called at line 30)    | 40         |
//! | 0x40..0x80       | `net::Parser::parse(char const*, unsigned long)` (C++) | 50, 52 |
//! | 0x80..0xc0       | `mytunnel::flow::process` (Rust legacy)   | 60, 61     |
//! | 0xc0..0x100      | `no_dwarf_fn` (symbol table only)         | –          |
//! |   0xe0..0x100    | Swift `startTunnel(options:completionHandler:)` in DWARF only | 70 |
//!
//! Every line number is shifted by `Layout::line_shift`, so the two slices of a fat file
//! can be told apart by the lines they report.

use gimli::write::{
    Address, AttributeValue, DwarfUnit, EndianVec, LineProgram, LineString, Sections,
};
use object::Endianness;
use object::macho;
use object::write::macho::{
    Encoder, MachHeader, Nlist, SectionHeader, SegmentCommand, SymtabCommand,
};

pub(crate) const TEXT_VMADDR: u64 = 0x1_0000_0000;
pub(crate) const TEXT_SECT_OFF: u64 = 0x1000;
pub(crate) const TEXT_SIZE: u64 = 0x100;

pub(crate) const CPP_MANGLED: &str = "_ZN3net6Parser5parseEPKcm";
pub(crate) const CPP_DEMANGLED: &str = "net::Parser::parse(char const*, unsigned long)";
pub(crate) const RUST_MANGLED: &str = "_ZN8mytunnel4flow7process17h0123456789abcdefE";
pub(crate) const RUST_DEMANGLED: &str = "mytunnel::flow::process";
pub(crate) const SWIFT_MANGLED: &str = "$s8MyTunnel0B8ProviderC05startB07options17completionHandlerySDySSSo8NSObjectCGSg_ys5Error_pSgctF";
pub(crate) const SWIFT_DWARF_NAME: &str = "startTunnel(options:completionHandler:)";

/// What to put in one Mach-O.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) cputype: macho::CpuType,
    pub(crate) cpusubtype: macho::CpuSubtype,
    pub(crate) uuid: [u8; 16],
    pub(crate) line_shift: u64,
    pub(crate) filetype: macho::FileType,
    pub(crate) dwarf: bool,
    pub(crate) symbols: bool,
}

impl Layout {
    pub(crate) fn arm64(uuid: [u8; 16]) -> Self {
        Layout {
            cputype: macho::CPU_TYPE_ARM64,
            cpusubtype: macho::CPU_SUBTYPE_ARM64_ALL.into(),
            uuid,
            line_shift: 0,
            filetype: macho::MH_DSYM,
            dwarf: true,
            symbols: true,
        }
    }

    pub(crate) fn x86_64(uuid: [u8; 16]) -> Self {
        Layout {
            cputype: macho::CPU_TYPE_X86_64,
            cpusubtype: macho::CPU_SUBTYPE_X86_64_ALL.into(),
            line_shift: 1000,
            ..Layout::arm64(uuid)
        }
    }

    /// The same build as a plain executable (symbols, no DWARF).
    pub(crate) fn binary(self) -> Self {
        Layout {
            filetype: macho::MH_EXECUTE,
            dwarf: false,
            ..self
        }
    }
}

/// A written Mach-O and where its `__debug_info` section is.
pub(crate) struct MachO {
    pub(crate) bytes: Vec<u8>,
    pub(crate) debug_info_offset: Option<usize>,
    pub(crate) debug_abbrev_offset: Option<usize>,
}

/// The expected answer for an offset in `__text`: frames innermost first, as
/// `(function, line)`.
pub(crate) fn expected(text_offset: u64, line_shift: u64) -> Vec<(&'static str, u64)> {
    let s = line_shift;
    match text_offset {
        0x00..0x10 => vec![("handle_packet", 10 + s)],
        0x10..0x18 => vec![("handle_packet", 11 + s)],
        0x18..0x20 => vec![("checksum", 30 + s), ("handle_packet", 11 + s)],
        0x20..0x28 => vec![
            ("fold16", 40 + s),
            ("checksum", 30 + s),
            ("handle_packet", 11 + s),
        ],
        0x28..0x30 => vec![("checksum", 31 + s), ("handle_packet", 11 + s)],
        0x30..0x40 => vec![("handle_packet", 12 + s)],
        0x40..0x60 => vec![(CPP_DEMANGLED, 50 + s)],
        0x60..0x80 => vec![(CPP_DEMANGLED, 52 + s)],
        0x80..0xa0 => vec![(RUST_DEMANGLED, 60 + s)],
        0xa0..0xc0 => vec![(RUST_DEMANGLED, 61 + s)],
        0xe0..0x100 => vec![(SWIFT_DWARF_NAME, 70 + s)],
        _ => vec![],
    }
}

fn dwarf_sections(text_addr: u64, shift: u64) -> Vec<(&'static str, Vec<u8>)> {
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut dwarf = DwarfUnit::new(encoding);
    dwarf.unit.line_program = LineProgram::new(
        encoding,
        gimli::LineEncoding::default(),
        LineString::String(b"/src".to_vec()),
        None,
        LineString::String(b"tunnel.c".to_vec()),
        None,
    );
    let dir = dwarf.unit.line_program.default_directory();
    let file =
        dwarf
            .unit
            .line_program
            .add_file(LineString::String(b"tunnel.c".to_vec()), dir, None);

    // Line table.
    let rows: &[(u64, u64)] = &[
        (0x00, 10),
        (0x10, 11),
        (0x18, 30),
        (0x20, 40),
        (0x28, 31),
        (0x30, 12),
        (0x40, 50),
        (0x60, 52),
        (0x80, 60),
        (0xa0, 61),
    ];
    let lp = &mut dwarf.unit.line_program;
    lp.begin_sequence(Some(Address::Constant(text_addr)));
    for &(off, line) in rows {
        let row = lp.row();
        row.address_offset = off;
        row.line = line + shift;
        row.file = file;
        lp.generate_row();
    }
    lp.end_sequence(0xc0);
    // A second sequence, leaving 0xc0..0xe0 without line info.
    lp.begin_sequence(Some(Address::Constant(text_addr + 0xe0)));
    let row = lp.row();
    row.address_offset = 0;
    row.line = 70 + shift;
    row.file = file;
    lp.generate_row();
    lp.end_sequence(0x20);

    let root = dwarf.unit.root();
    {
        let cu = dwarf.unit.get_mut(root);
        cu.set(
            gimli::DW_AT_name,
            AttributeValue::String(b"tunnel.c".to_vec()),
        );
        cu.set(
            gimli::DW_AT_comp_dir,
            AttributeValue::String(b"/src".to_vec()),
        );
        cu.set(
            gimli::DW_AT_language,
            AttributeValue::Language(gimli::DW_LANG_C99),
        );
        cu.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant(text_addr)),
        );
        cu.set(gimli::DW_AT_high_pc, AttributeValue::Udata(0x100));
    }
    let abstract_fn = |dwarf: &mut DwarfUnit, name: &str, line: u64| {
        let id = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
        let e = dwarf.unit.get_mut(id);
        e.set(
            gimli::DW_AT_name,
            AttributeValue::String(name.as_bytes().to_vec()),
        );
        e.set(
            gimli::DW_AT_decl_file,
            AttributeValue::FileIndex(Some(file)),
        );
        e.set(gimli::DW_AT_decl_line, AttributeValue::Udata(line));
        e.set(
            gimli::DW_AT_inline,
            AttributeValue::Inline(gimli::DW_INL_declared_inlined),
        );
        id
    };
    let checksum = abstract_fn(&mut dwarf, "checksum", 29 + shift);
    let fold16 = abstract_fn(&mut dwarf, "fold16", 39 + shift);

    let concrete = |dwarf: &mut DwarfUnit, name: &str, linkage: Option<&str>, lo: u64, len: u64| {
        let id = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
        let e = dwarf.unit.get_mut(id);
        e.set(
            gimli::DW_AT_name,
            AttributeValue::String(name.as_bytes().to_vec()),
        );
        if let Some(l) = linkage {
            e.set(
                gimli::DW_AT_linkage_name,
                AttributeValue::String(l.as_bytes().to_vec()),
            );
        }
        e.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant(text_addr + lo)),
        );
        e.set(gimli::DW_AT_high_pc, AttributeValue::Udata(len));
        id
    };
    let handle = concrete(&mut dwarf, "handle_packet", None, 0x00, 0x40);
    concrete(&mut dwarf, "parse", Some(CPP_MANGLED), 0x40, 0x40);
    concrete(&mut dwarf, "process", Some(RUST_MANGLED), 0x80, 0x40);
    // Swift: the definition points at a declaration inside the class (as swiftc emits
    // members), which carries the readable name.
    let class = dwarf.unit.add(root, gimli::DW_TAG_class_type);
    dwarf.unit.get_mut(class).set(
        gimli::DW_AT_name,
        AttributeValue::String(b"PacketTunnelProvider".to_vec()),
    );
    let decl = dwarf.unit.add(class, gimli::DW_TAG_subprogram);
    {
        let e = dwarf.unit.get_mut(decl);
        e.set(
            gimli::DW_AT_name,
            AttributeValue::String(SWIFT_DWARF_NAME.as_bytes().to_vec()),
        );
        e.set(
            gimli::DW_AT_linkage_name,
            AttributeValue::String(SWIFT_MANGLED.as_bytes().to_vec()),
        );
        e.set(gimli::DW_AT_declaration, AttributeValue::Flag(true));
    }
    let def = dwarf.unit.add(root, gimli::DW_TAG_subprogram);
    {
        let e = dwarf.unit.get_mut(def);
        e.set(gimli::DW_AT_specification, AttributeValue::UnitRef(decl));
        e.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant(text_addr + 0xe0)),
        );
        e.set(gimli::DW_AT_high_pc, AttributeValue::Udata(0x20));
    }

    let inlined = |dwarf: &mut DwarfUnit, parent, origin, lo: u64, len: u64, call_line: u64| {
        let id = dwarf.unit.add(parent, gimli::DW_TAG_inlined_subroutine);
        let e = dwarf.unit.get_mut(id);
        e.set(
            gimli::DW_AT_abstract_origin,
            AttributeValue::UnitRef(origin),
        );
        e.set(
            gimli::DW_AT_low_pc,
            AttributeValue::Address(Address::Constant(text_addr + lo)),
        );
        e.set(gimli::DW_AT_high_pc, AttributeValue::Udata(len));
        e.set(
            gimli::DW_AT_call_file,
            AttributeValue::FileIndex(Some(file)),
        );
        e.set(gimli::DW_AT_call_line, AttributeValue::Udata(call_line));
        id
    };
    let inl_checksum = inlined(&mut dwarf, handle, checksum, 0x18, 0x18, 11 + shift);
    inlined(&mut dwarf, inl_checksum, fold16, 0x20, 0x08, 30 + shift);

    let mut sections = Sections::new(EndianVec::new(gimli::LittleEndian));
    dwarf
        .write(&mut sections)
        .expect("gimli writes the synthetic DWARF");
    let mut out = Vec::new();
    sections
        .for_each(|id, data| -> Result<(), ()> {
            if !data.slice().is_empty() {
                out.push((id.name(), data.slice().to_vec()));
            }
            Ok(())
        })
        .expect("collect sections");
    out
}

fn name16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let bytes = s.as_bytes();
    let n = bytes.len().min(16);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn macho_section_name(dwarf_name: &str) -> String {
    // ".debug_info" -> "__debug_info"
    format!("__{}", dwarf_name.trim_start_matches('.'))
}

/// Write one thin 64-bit little-endian Mach-O.
pub(crate) fn write_macho(layout: &Layout) -> MachO {
    let enc = Encoder::new(Endianness::Little, true);
    let text_addr = TEXT_VMADDR + TEXT_SECT_OFF;
    let debug = if layout.dwarf {
        dwarf_sections(text_addr, layout.line_shift)
    } else {
        Vec::new()
    };

    // File layout: [header + load commands][pad to 0x1000][__text 0x100][pad to 0x2000]
    // [debug sections, 8-aligned][symtab][strtab]
    let mut dwarf_off = Vec::new();
    let mut cursor: u64 = 0x2000;
    for (_, data) in &debug {
        dwarf_off.push(cursor);
        cursor += (data.len() as u64 + 7) & !7;
    }
    let dwarf_end = cursor;
    let syms: Vec<(String, u64)> = if layout.symbols {
        vec![
            ("_handle_packet".to_owned(), text_addr),
            (format!("_{CPP_MANGLED}"), text_addr + 0x40),
            (format!("_{RUST_MANGLED}"), text_addr + 0x80),
            ("_no_dwarf_fn".to_owned(), text_addr + 0xc0),
        ]
    } else {
        Vec::new()
    };
    let mut strtab = vec![0u8];
    let mut strx = Vec::new();
    for (name, _) in &syms {
        strx.push(strtab.len() as u32);
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
    }
    while strtab.len() % 8 != 0 {
        strtab.push(0);
    }
    let symoff = dwarf_end;
    let stroff = symoff + syms.len() as u64 * enc.nlist_size();

    let mut ncmds = 2u32; // __TEXT + LC_UUID
    let mut sizeofcmds = enc.segment_command_size(1) + enc.load_command_size(16);
    if !debug.is_empty() {
        ncmds += 1;
        sizeofcmds += enc.segment_command_size(debug.len() as u32);
    }
    if layout.symbols {
        ncmds += 1;
        sizeofcmds += enc.symtab_command_size();
    }

    let mut buf: Vec<u8> = Vec::new();
    enc.mach_header(
        &mut buf,
        &MachHeader {
            cputype: layout.cputype,
            cpusubtype: layout.cpusubtype,
            filetype: layout.filetype,
            ncmds,
            sizeofcmds: sizeofcmds as u32,
            flags: macho::FileFlags(0),
        },
    );
    enc.segment_command(
        &mut buf,
        &SegmentCommand {
            segname: name16("__TEXT"),
            vmaddr: TEXT_VMADDR,
            vmsize: 0x2000,
            fileoff: 0,
            filesize: 0x2000,
            maxprot: macho::VmProt(5),
            initprot: macho::VmProt(5),
            nsects: 1,
            flags: macho::SegmentFlags(0),
        },
    );
    enc.section_header(
        &mut buf,
        &SectionHeader {
            sectname: name16("__text"),
            segname: name16("__TEXT"),
            addr: text_addr,
            size: TEXT_SIZE,
            offset: TEXT_SECT_OFF as u32,
            align: 2,
            reloff: 0,
            nreloc: 0,
            flags: macho::SectionFlags(0x8000_0400), // S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS
            reserved1: 0,
            reserved2: 0,
            reserved3: 0,
        },
    );
    if !debug.is_empty() {
        let dwarf_vm = TEXT_VMADDR + 0x2000;
        enc.segment_command(
            &mut buf,
            &SegmentCommand {
                segname: name16("__DWARF"),
                vmaddr: dwarf_vm,
                vmsize: dwarf_end - 0x2000,
                fileoff: 0x2000,
                filesize: dwarf_end - 0x2000,
                maxprot: macho::VmProt(7),
                initprot: macho::VmProt(3),
                nsects: debug.len() as u32,
                flags: macho::SegmentFlags(0),
            },
        );
        for ((name, data), &off) in debug.iter().zip(&dwarf_off) {
            enc.section_header(
                &mut buf,
                &SectionHeader {
                    sectname: name16(&macho_section_name(name)),
                    segname: name16("__DWARF"),
                    addr: dwarf_vm + (off - 0x2000),
                    size: data.len() as u64,
                    offset: off as u32,
                    align: 0,
                    reloff: 0,
                    nreloc: 0,
                    flags: macho::SectionFlags(0x0200_0000), // S_ATTR_DEBUG
                    reserved1: 0,
                    reserved2: 0,
                    reserved3: 0,
                },
            );
        }
    }
    enc.load_command(&mut buf, macho::LC_UUID, &layout.uuid);
    if layout.symbols {
        enc.symtab_command(
            &mut buf,
            &SymtabCommand {
                symoff: symoff as u32,
                nsyms: syms.len() as u32,
                stroff: stroff as u32,
                strsize: strtab.len() as u32,
            },
        );
    }
    assert!(
        buf.len() as u64 <= TEXT_SECT_OFF,
        "load commands fit before __text"
    );
    buf.resize(TEXT_SECT_OFF as usize, 0);
    // __text: arm64 `nop`s (the bytes do not matter for symbolication).
    for _ in 0..TEXT_SIZE / 4 {
        buf.extend_from_slice(&[0x1f, 0x20, 0x03, 0xd5]);
    }
    buf.resize(0x2000, 0);
    let mut debug_info_offset = None;
    let mut debug_abbrev_offset = None;
    for ((name, data), &off) in debug.iter().zip(&dwarf_off) {
        buf.resize(off as usize, 0);
        if *name == ".debug_info" {
            debug_info_offset = Some(off as usize);
        }
        if *name == ".debug_abbrev" {
            debug_abbrev_offset = Some(off as usize);
        }
        buf.extend_from_slice(data);
    }
    buf.resize(dwarf_end as usize, 0);
    for ((_, value), &n_strx) in syms.iter().zip(&strx) {
        enc.nlist(
            &mut buf,
            &Nlist {
                n_strx,
                n_type: macho::SymbolFlags(0x0f), // N_SECT | N_EXT
                n_sect: 1,
                n_desc: macho::SymbolDesc(0),
                n_value: *value,
            },
        );
    }
    buf.extend_from_slice(&strtab);
    MachO {
        bytes: buf,
        debug_info_offset,
        debug_abbrev_offset,
    }
}

/// A fat (universal) file holding the given thin files, slices aligned to 0x4000.
pub(crate) fn write_fat(slices: &[(&Layout, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&macho::FAT_MAGIC.to_be_bytes());
    out.extend_from_slice(&(slices.len() as u32).to_be_bytes());
    let mut offset = 0x4000u32;
    let mut placed = Vec::new();
    for (layout, data) in slices {
        out.extend_from_slice(&layout.cputype.0.to_be_bytes());
        out.extend_from_slice(&layout.cpusubtype.0.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&14u32.to_be_bytes()); // 2^14 alignment
        placed.push((offset, *data));
        offset = (offset + data.len() as u32 + 0x3fff) & !0x3fff;
    }
    for (off, data) in placed {
        out.resize(off as usize, 0);
        out.extend_from_slice(data);
    }
    out
}

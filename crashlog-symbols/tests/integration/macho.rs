//! Mach-O: thin, fat (x86_64 + arm64) and `.dSYM` layouts with LC_UUID.

use crashlog_symbols::{
    Address, Arch, FrameKind, ImageId, ImageRef, Mangling, ObjectFormat, SymbolSource, SymbolStore,
};

use crate::synth::{self, Layout, TEXT_SECT_OFF, TEXT_VMADDR};
use crate::{chain, expect, put};

pub(crate) const UUID_ARM: [u8; 16] = [
    0xd8, 0xfb, 0xe4, 0xad, 0x1c, 0x2e, 0x3b, 0x4f, 0x9a, 0x0b, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
];
pub(crate) const UUID_X86: [u8; 16] = [
    0x5a, 0x11, 0xce, 0x00, 0x86, 0x64, 0x4d, 0x2a, 0xb0, 0x0c, 0xaf, 0xe0, 0x12, 0x34, 0x56, 0x78,
];

pub(crate) fn id(bytes: [u8; 16]) -> ImageId {
    ImageId::from_bytes(&bytes)
}

/// Every offset of interest in `__text`, including inline-chain boundaries.
pub(crate) const OFFSETS: &[u64] = &[
    0x00, 0x0c, 0x10, 0x18, 0x1c, 0x20, 0x24, 0x27, 0x28, 0x2c, 0x30, 0x3c, 0x40, 0x5c, 0x60, 0x80,
    0xa4, 0xe4, 0xfc,
];

#[test]
fn thin_dsym_resolves_functions_lines_and_inline_chains() {
    let dir = tempfile::tempdir().unwrap();
    let dsym = synth::write_macho(&Layout::arm64(UUID_ARM));
    put(
        dir.path(),
        "MyTunnel.appex.dSYM/Contents/Resources/DWARF/MyTunnel",
        &dsym.bytes,
    );
    put(
        dir.path(),
        "MyTunnel.appex.dSYM/Contents/Info.plist",
        b"<?xml version=\"1.0\"?><plist/>",
    );
    let store = SymbolStore::from_paths([dir.path()]).unwrap();
    assert_eq!(store.objects().len(), 1, "Info.plist is not an object");
    let obj = &store.objects()[0];
    assert_eq!(obj.format, ObjectFormat::MachO);
    assert_eq!(obj.arch, Arch::Arm64);
    assert_eq!(obj.id, Some(id(UUID_ARM)));
    assert_eq!(obj.name, "MyTunnel");
    assert!(obj.has_dwarf);

    let image = ImageRef::with_uuid(id(UUID_ARM));
    let handle = store.image(&image).unwrap();
    assert_eq!(handle.image_vmaddr(), TEXT_VMADDR);
    for &off in OFFSETS {
        let image_offset = TEXT_SECT_OFF + off;
        let sym = handle
            .symbolicate(Address::ImageOffset(image_offset), FrameKind::Pc)
            .unwrap();
        assert_eq!(chain(&sym), expect(off, 0), "offset 0x{off:x}");
        assert_eq!(sym.source, SymbolSource::Dwarf);
        assert_eq!(sym.svma, TEXT_VMADDR + image_offset);
        let outer = sym.outermost().unwrap();
        assert!(!outer.inlined);
        assert!(sym.frames[..sym.frames.len() - 1].iter().all(|f| f.inlined));
        assert!(outer.file.as_deref().unwrap().ends_with("tunnel.c"));
    }
    // Symbol offsets come from the symbol table; names are demangled with the right scheme.
    let sym = handle
        .symbolicate(Address::ImageOffset(TEXT_SECT_OFF + 0x24), FrameKind::Pc)
        .unwrap();
    assert_eq!(sym.outermost().unwrap().symbol_offset, Some(0x24));
    let cpp = handle
        .symbolicate(Address::ImageOffset(TEXT_SECT_OFF + 0x44), FrameKind::Pc)
        .unwrap();
    let f = cpp.outermost().unwrap();
    assert_eq!(f.mangling, Mangling::Cpp);
    assert_eq!(f.raw_function.as_deref(), Some(synth::CPP_MANGLED));
    assert_eq!(f.symbol_offset, Some(4));
    let rust = handle
        .symbolicate(Address::ImageOffset(TEXT_SECT_OFF + 0x84), FrameKind::Pc)
        .unwrap();
    assert_eq!(rust.outermost().unwrap().mangling, Mangling::Rust);
    assert_eq!(
        rust.outermost().unwrap().function.as_deref(),
        Some(synth::RUST_DEMANGLED)
    );
    // Swift: readable DW_AT_name (through DW_AT_specification), mangled name kept raw.
    let swift = handle
        .symbolicate(Address::ImageOffset(TEXT_SECT_OFF + 0xe8), FrameKind::Pc)
        .unwrap();
    let f = swift.outermost().unwrap();
    assert_eq!(f.function.as_deref(), Some(synth::SWIFT_DWARF_NAME));
    assert_eq!(f.raw_function.as_deref(), Some(synth::SWIFT_MANGLED));
    assert_eq!(f.mangling, Mangling::Swift);
    assert_eq!(f.symbol_offset, Some(0x28), "from no_dwarf_fn's symbol");
    // Past DWARF coverage, the symbol table still answers (no file/line).
    let nodw = handle
        .symbolicate(Address::ImageOffset(TEXT_SECT_OFF + 0xc8), FrameKind::Pc)
        .unwrap();
    assert_eq!(nodw.source, SymbolSource::SymbolTable);
    assert_eq!(nodw.frames.len(), 1);
    assert_eq!(nodw.frames[0].function.as_deref(), Some("no_dwarf_fn"));
    assert_eq!(nodw.frames[0].symbol_offset, Some(8));
    assert_eq!(nodw.frames[0].line, None);
    // atos lines.
    let lines = sym.atos_lines("MyTunnel");
    assert_eq!(
        lines,
        vec![
            "fold16 (in MyTunnel) (tunnel.c:40)",
            "checksum (in MyTunnel) (tunnel.c:30)",
            "handle_packet (in MyTunnel) (tunnel.c:11)",
        ]
    );
    assert_eq!(
        nodw.atos_lines("MyTunnel"),
        vec!["no_dwarf_fn (in MyTunnel) + 8"]
    );
}

#[test]
fn return_addresses_are_looked_up_one_byte_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let dsym = synth::write_macho(&Layout::arm64(UUID_ARM));
    let path = put(dir.path(), "MyTunnel", &dsym.bytes);
    let store = SymbolStore::from_paths([&path]).unwrap();
    let handle = store.image(&ImageRef::with_uuid(id(UUID_ARM))).unwrap();
    // 0x28 starts line 31; a return address there belongs to the call at line 40 (fold16).
    let at = Address::ImageOffset(TEXT_SECT_OFF + 0x28);
    let pc = handle.symbolicate(at, FrameKind::Pc).unwrap();
    let ra = handle.symbolicate(at, FrameKind::ReturnAddress).unwrap();
    assert_eq!(chain(&pc), expect(0x28, 0));
    assert_eq!(chain(&ra), expect(0x27, 0));
    // The symbol offset still refers to the address as given.
    assert_eq!(ra.outermost().unwrap().symbol_offset, Some(0x28));
}

#[test]
fn fat_file_slices_are_selected_by_uuid_and_by_arch() {
    let dir = tempfile::tempdir().unwrap();
    let arm = Layout::arm64(UUID_ARM);
    let x86 = Layout::x86_64(UUID_X86);
    let arm_bytes = synth::write_macho(&arm).bytes;
    let x86_bytes = synth::write_macho(&x86).bytes;
    let fat = synth::write_fat(&[(&x86, &x86_bytes), (&arm, &arm_bytes)]);
    let path = put(dir.path(), "libfilter.dylib", &fat);
    let store = SymbolStore::from_paths([&path]).unwrap();
    assert_eq!(store.objects().len(), 2);
    let arches: Vec<_> = store.objects().iter().map(|o| o.arch.clone()).collect();
    assert_eq!(arches, vec![Arch::X86_64, Arch::Arm64]);
    assert!(store.objects().iter().all(|o| o.slice.is_some()));

    for (uuid, shift) in [(UUID_ARM, 0), (UUID_X86, 1000)] {
        let sym = store
            .symbolicate(
                &ImageRef::with_uuid(id(uuid)),
                Address::ImageOffset(TEXT_SECT_OFF + 0x24),
                FrameKind::Pc,
            )
            .unwrap();
        assert_eq!(chain(&sym), expect(0x24, shift));
        assert_eq!(sym.object_path, path);
    }
    // No UUID in the report: name + arch pick the slice.
    for (arch, shift) in [(Arch::Arm64, 0), (Arch::X86_64, 1000)] {
        let image = ImageRef::default()
            .name("/usr/lib/libfilter.dylib")
            .arch(arch);
        let sym = store
            .symbolicate(
                &image,
                Address::ImageOffset(TEXT_SECT_OFF + 0x60),
                FrameKind::Pc,
            )
            .unwrap();
        assert_eq!(chain(&sym), expect(0x60, shift));
    }
    // Name without arch cannot choose between two builds.
    let err = store
        .symbolicate(
            &ImageRef::default().name("libfilter.dylib"),
            Address::ImageOffset(TEXT_SECT_OFF),
            FrameKind::Pc,
        )
        .unwrap_err();
    assert_eq!(err.name(), "ambiguous_image");
}

#[test]
fn dsym_is_preferred_over_the_binary_with_the_same_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::arm64(UUID_ARM);
    let binary = put(
        dir.path(),
        "Build/MyTunnel",
        &synth::write_macho(&layout.binary()).bytes,
    );
    let dsym = put(
        dir.path(),
        "Build/MyTunnel.dSYM/Contents/Resources/DWARF/MyTunnel",
        &synth::write_macho(&layout).bytes,
    );
    let image = ImageRef::with_uuid(id(UUID_ARM)).load_address(0x1_0458_0000);
    let pc = 0x1_0458_0000 + TEXT_SECT_OFF + 0x24;

    // Binary only: symbol table answers.
    let only_bin = SymbolStore::from_paths([&binary]).unwrap();
    let sym = only_bin
        .symbolicate(&image, Address::Absolute(pc), FrameKind::Pc)
        .unwrap();
    assert_eq!(sym.source, SymbolSource::SymbolTable);
    assert_eq!(sym.frames[0].function.as_deref(), Some("handle_packet"));
    assert_eq!(sym.frames[0].symbol_offset, Some(0x24));

    // Both: the dSYM wins, with the full inline chain.
    let both = SymbolStore::from_paths([dir.path()]).unwrap();
    assert_eq!(both.objects().len(), 2);
    let sym = both
        .symbolicate(&image, Address::Absolute(pc), FrameKind::Pc)
        .unwrap();
    assert_eq!(sym.source, SymbolSource::Dwarf);
    assert_eq!(sym.object_path, dsym);
    assert_eq!(chain(&sym), expect(0x24, 0));
}

#[test]
fn atos_with_and_without_load_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(
        dir.path(),
        "MyTunnel",
        &synth::write_macho(&Layout::arm64(UUID_ARM)).bytes,
    );
    let store = SymbolStore::from_paths([&path]).unwrap();
    let load = 0x1_0200_0000u64;
    let slid = store.atos(
        &ImageRef::default().load_address(load),
        &[load + TEXT_SECT_OFF + 0x44, load + TEXT_SECT_OFF + 0x20],
    );
    let unslid = store.atos(
        &ImageRef::default(),
        &[
            TEXT_VMADDR + TEXT_SECT_OFF + 0x44,
            TEXT_VMADDR + TEXT_SECT_OFF + 0x20,
        ],
    );
    assert_eq!(slid.len(), 2);
    for (a, b) in slid.iter().zip(&unslid) {
        assert_eq!(a.as_ref().unwrap().frames, b.as_ref().unwrap().frames);
    }
    assert_eq!(
        slid[0].as_ref().unwrap().atos_lines("MyTunnel"),
        vec![format!(
            "{} (in MyTunnel) (tunnel.c:50)",
            synth::CPP_DEMANGLED
        )]
    );
    // Below the load address: an error for that address only.
    let bad = store.atos(&ImageRef::default().load_address(load), &[load - 4]);
    assert_eq!(bad[0].as_ref().unwrap_err().name(), "bad_address");
}

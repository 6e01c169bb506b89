//! Wrong UUID, missing slice, stripped binary and corrupt DWARF: a clear message naming the
//! file, and the caller's frame left as it was.

use crashlog_symbols::{Address, Arch, FrameKind, ImageRef, SymbolError, SymbolStore};

use crate::macho::{UUID_ARM, UUID_X86, id};
use crate::synth::{self, Layout, TEXT_SECT_OFF};
use crate::{ReportFrame, put};

fn original_frame() -> ReportFrame {
    ReportFrame {
        image_index: 3,
        address: 0x1_0458_1024,
        symbol: None,
        source: None,
    }
}

/// Look the frame up and apply the outcome the way a caller does; return the error.
fn run(store: &SymbolStore, image: &ImageRef) -> SymbolError {
    let mut frame = original_frame();
    let outcome = store.symbolicate(
        image,
        Address::ImageOffset(TEXT_SECT_OFF + 0x24),
        FrameKind::Pc,
    );
    frame.apply(&outcome);
    assert_eq!(
        frame,
        original_frame(),
        "a failed lookup must not touch the frame"
    );
    outcome.expect_err("this lookup must fail")
}

#[test]
fn wrong_uuid_names_the_file_and_both_uuids() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(
        dir.path(),
        "MyTunnel.dSYM/Contents/Resources/DWARF/MyTunnel",
        &synth::write_macho(&Layout::arm64(UUID_ARM)).bytes,
    );
    let store = SymbolStore::from_paths([dir.path()]).unwrap();
    let image = ImageRef::with_uuid(id(UUID_X86))
        .name("MyTunnel")
        .arch(Arch::Arm64);
    let err = run(&store, &image);
    assert_eq!(err.name(), "uuid_mismatch");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("5A11CE00-8664-4D2A-B00C-AFE012345678"),
        "{msg}"
    );
    assert!(
        msg.contains("D8FBE4AD-1C2E-3B4F-9A0B-112233445566"),
        "{msg}"
    );
    // Without a name there is nothing to compare with: plain "not found", which callers
    // treat as a system image without symbols.
    let err = run(&store, &ImageRef::with_uuid(id(UUID_X86)));
    assert!(err.is_image_not_found());
}

#[test]
fn missing_slice_lists_the_slices_that_are_there() {
    let dir = tempfile::tempdir().unwrap();
    let arm = Layout::arm64(UUID_ARM);
    let x86 = Layout::x86_64(UUID_X86);
    let (a, x) = (
        synth::write_macho(&arm).bytes,
        synth::write_macho(&x86).bytes,
    );
    let path = put(
        dir.path(),
        "libfilter.dylib",
        &synth::write_fat(&[(&x86, &x), (&arm, &a)]),
    );
    let store = SymbolStore::from_paths([&path]).unwrap();

    // No UUID, arch the file does not have.
    let image = ImageRef::default()
        .name("libfilter.dylib")
        .arch(Arch::Arm64e);
    let err = run(&store, &image);
    assert_eq!(err.name(), "missing_slice");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("no arm64e slice"), "{msg}");
    assert!(msg.contains("arm64, x86_64"), "{msg}");

    // An arm64e UUID the file does not have: still "missing slice", not "wrong UUID".
    let other = [0x77; 16];
    let image = ImageRef::with_uuid(id(other))
        .name("libfilter.dylib")
        .arch(Arch::Arm64e);
    assert_eq!(run(&store, &image).name(), "missing_slice");
}

#[test]
fn stripped_binary_says_so_and_points_at_dsyms() {
    let dir = tempfile::tempdir().unwrap();
    let stripped = Layout {
        dwarf: false,
        symbols: false,
        ..Layout::arm64(UUID_ARM).binary()
    };
    let path = put(dir.path(), "MyTunnel", &synth::write_macho(&stripped).bytes);
    let store = SymbolStore::from_paths([&path]).unwrap();
    let err = run(&store, &ImageRef::with_uuid(id(UUID_ARM)));
    assert_eq!(err.name(), "stripped_binary");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("no DWARF"), "{msg}");
}

#[test]
fn corrupt_dwarf_names_file_section_and_offset_and_is_parsed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut good = synth::write_macho(&Layout::arm64(UUID_ARM));
    let info = good.debug_info_offset.expect("synth wrote __debug_info");
    // DWARF 32-bit unit header: unit_length (4), version (2). Version 0x7fff is invalid.
    good.bytes[info + 4] = 0xff;
    good.bytes[info + 5] = 0x7f;
    let path = put(
        dir.path(),
        "MyTunnel.dSYM/Contents/Resources/DWARF/MyTunnel",
        &good.bytes,
    );
    let store = SymbolStore::from_paths([dir.path()]).unwrap();
    let image = ImageRef::with_uuid(id(UUID_ARM));
    let err = run(&store, &image);
    assert_eq!(err.name(), "corrupt_dwarf");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(".debug_info at offset 0x0"), "{msg}");
    // The failure is cached: more frames of this image do not re-read the file.
    for _ in 0..10 {
        assert_eq!(run(&store, &image).name(), "corrupt_dwarf");
    }
    assert_eq!(store.objects_parsed(), 1);
}

#[test]
fn corrupt_abbreviations_are_reported_with_the_unit_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = synth::write_macho(&Layout::arm64(UUID_ARM));
    let abbrev = bad.debug_abbrev_offset.expect("synth wrote __debug_abbrev");
    // First abbreviation: code (ULEB 1), tag (ULEB). Make the tag a 0 (invalid).
    bad.bytes[abbrev + 1] = 0;
    let path = put(dir.path(), "MyTunnel", &bad.bytes);
    let store = SymbolStore::from_paths([&path]).unwrap();
    let err = run(&store, &ImageRef::with_uuid(id(UUID_ARM)));
    assert_eq!(err.name(), "corrupt_dwarf", "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn truncated_and_non_object_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = synth::write_macho(&Layout::arm64(UUID_ARM)).bytes;
    // Truncated inside the load commands: a warning from the directory walk, named.
    put(dir.path(), "sub/Truncated", &good[..200]);
    put(dir.path(), "sub/readme.txt", b"not an object");
    let store = SymbolStore::from_paths([dir.path()]).unwrap();
    assert!(store.objects().is_empty());
    assert_eq!(store.warnings().len(), 1, "{:?}", store.warnings());
    assert!(store.warnings()[0].to_string().contains("Truncated"));
    // Given explicitly, a non-object is an error naming the file.
    let err = SymbolStore::from_paths([dir.path().join("sub/readme.txt")]).unwrap_err();
    assert_eq!(err.name(), "malformed_object");
    assert!(err.to_string().contains("readme.txt"));
    let err = SymbolStore::from_paths([dir.path().join("missing")]).unwrap_err();
    assert_eq!(err.name(), "io");
    // A fat header whose slice runs past the end of the file.
    let arm = Layout::arm64(UUID_ARM);
    let mut fat = synth::write_fat(&[(&arm, &good)]);
    fat.truncate(fat.len() - 16);
    let path = put(dir.path(), "fat/Broken", &fat);
    let err = SymbolStore::from_paths([&path]).unwrap_err();
    assert_eq!(err.name(), "malformed_object");
    assert!(err.to_string().contains("runs past the end"), "{err}");
}

/// Malformed input never panics: deterministic byte mutations of a dSYM (header, load
/// commands, DWARF, symbol table) are indexed and looked up; every outcome is a value.
#[test]
fn mutated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = synth::write_macho(&Layout::arm64(UUID_ARM)).bytes;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path = dir.path().join("MyTunnel");
    let mut outcomes = [0usize; 2];
    for round in 0..300 {
        let mut bytes = good.clone();
        let flips = 1 + (next() % 8) as usize;
        for _ in 0..flips {
            // Bias towards the header/load commands and the DWARF, where parsing happens.
            let region = match next() % 3 {
                0 => 0..0x400,
                1 => 0x2000..bytes.len(),
                _ => 0..bytes.len(),
            };
            let at = region.start + (next() as usize) % (region.end - region.start);
            bytes[at] = next() as u8;
        }
        if round % 10 == 0 {
            bytes.truncate((next() as usize) % good.len());
        }
        std::fs::write(&path, &bytes).unwrap();
        let Ok(store) = SymbolStore::from_paths([&path]) else {
            outcomes[1] += 1;
            continue;
        };
        let image = ImageRef::default().name("MyTunnel");
        for off in [0x00, 0x24, 0x44, 0x84, 0xc8, 0xe4] {
            match store.symbolicate(
                &image,
                Address::ImageOffset(TEXT_SECT_OFF + off),
                FrameKind::ReturnAddress,
            ) {
                Ok(sym) => {
                    assert!(!sym.frames.is_empty());
                    outcomes[0] += 1;
                }
                Err(e) => {
                    assert!(!e.name().is_empty());
                    outcomes[1] += 1;
                }
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

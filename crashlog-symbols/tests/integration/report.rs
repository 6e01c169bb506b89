//! A generated report: images with UUIDs and load addresses, frames with absolute
//! addresses, symbolicated through the store; image offsets agree; the cache parses each
//! image once, also when threads share the store; kernel and kext slides.

use crashlog_symbols::slide::{self, PanicSlides};
use crashlog_symbols::{Address, Arch, FrameKind, ImageId, ImageRef, SymbolStore};

use crate::macho::{OFFSETS, UUID_ARM, UUID_X86, id};
use crate::synth::{self, Layout, TEXT_SECT_OFF, TEXT_VMADDR};
use crate::{ReportFrame, chain, expect, put};

struct Fixture {
    _dir: tempfile::TempDir,
    store: SymbolStore,
    images: Vec<ImageRef>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let arm = Layout::arm64(UUID_ARM);
    let x86 = Layout::x86_64(UUID_X86);
    put(
        dir.path(),
        "symbols/MyTunnel.appex.dSYM/Contents/Resources/DWARF/MyTunnel",
        &synth::write_macho(&arm).bytes,
    );
    put(
        dir.path(),
        "symbols/MyTunnel",
        &synth::write_macho(&arm.binary()).bytes,
    );
    let (a, x) = (
        synth::write_macho(&Layout::arm64([0x42; 16])).bytes,
        synth::write_macho(&x86).bytes,
    );
    let arm_other = Layout::arm64([0x42; 16]);
    put(
        dir.path(),
        "frameworks/libfilter.dylib",
        &synth::write_fat(&[(&x86, &x), (&arm_other, &a)]),
    );
    let store =
        SymbolStore::from_paths([dir.path().join("symbols"), dir.path().join("frameworks")])
            .unwrap();
    let images = vec![
        ImageRef::with_uuid(id(UUID_ARM))
            .name("/private/var/containers/Bundle/Application/X/MyTunnel.appex/MyTunnel")
            .arch(Arch::Arm64)
            .load_address(0x1_0458_0000),
        ImageRef::with_uuid(id(UUID_X86))
            .name("libfilter.dylib")
            .arch(Arch::X86_64)
            .load_address(0x7ff8_1234_0000),
        ImageRef::with_uuid("8c1e37f4-2d6b-3a09-a51c-0d2b9c55e1aa".parse().unwrap())
            .name("libsystem_kernel.dylib")
            .arch(Arch::Arm64)
            .load_address(0x1_9000_0000),
        // The sentinel "A" image: nil UUID, no name.
        ImageRef::with_uuid(ImageId::from_bytes(&[0; 16])).load_address(0),
    ];
    Fixture {
        _dir: dir,
        store,
        images,
    }
}

/// Frames as a report lists them: image index + absolute address.
fn frames(images: &[ImageRef]) -> Vec<ReportFrame> {
    let mut out = Vec::new();
    for (i, image) in images.iter().enumerate().take(3) {
        let load = image.load_address.unwrap();
        for &off in OFFSETS {
            out.push(ReportFrame {
                image_index: i,
                address: load + TEXT_SECT_OFF + off,
                symbol: None,
                source: None,
            });
        }
    }
    out.push(ReportFrame {
        image_index: 3,
        address: 0x1234,
        symbol: None,
        source: None,
    });
    out
}

#[test]
fn generated_report_symbolicates_and_offsets_agree() {
    let fx = fixture();
    let mut report = frames(&fx.images);
    let original = report.clone();
    for frame in &mut report {
        let image = &fx.images[frame.image_index];
        let abs = fx
            .store
            .symbolicate(image, Address::Absolute(frame.address), FrameKind::Pc);
        let offset = frame.address - image.load_address.unwrap();
        let rel = fx
            .store
            .symbolicate(image, Address::ImageOffset(offset), FrameKind::Pc);
        match frame.image_index {
            0 | 1 => {
                let shift = if frame.image_index == 0 { 0 } else { 1000 };
                let text_off = offset - TEXT_SECT_OFF;
                let (abs, rel) = (abs.as_ref().unwrap(), rel.as_ref().unwrap());
                assert_eq!(chain(abs), expect(text_off, shift), "frame {frame:?}");
                assert_eq!(abs, rel, "absolute and image-offset forms agree");
                assert_eq!(abs.image_offset, offset);
            }
            _ => {
                let err = abs.as_ref().unwrap_err();
                assert!(err.is_image_not_found(), "{err}");
            }
        }
        frame.apply(&abs);
    }
    // Symbolicated frames changed, the others did not.
    for (before, after) in original.iter().zip(&report) {
        if before.image_index < 2 {
            assert!(after.symbol.is_some(), "{after:?}");
            assert!(after.source.as_deref().unwrap().contains("tunnel.c:"));
        } else {
            assert_eq!(before, after);
        }
    }
    // Two images used, two parses, however many frames.
    assert_eq!(fx.store.objects_parsed(), 2);
}

#[test]
fn threads_share_one_store_and_one_parse_per_image() {
    let fx = fixture();
    let report = frames(&fx.images);
    let results: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    report
                        .iter()
                        .map(|f| {
                            match fx.store.symbolicate(
                                &fx.images[f.image_index],
                                Address::Absolute(f.address),
                                FrameKind::ReturnAddress,
                            ) {
                                Ok(sym) => format!("{:?}", chain(&sym)),
                                Err(e) => e.name().to_owned(),
                            }
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fx.store.objects_parsed(), 2);
}

#[test]
fn kernel_and_kext_frames_from_panic_slides() {
    let dir = tempfile::tempdir().unwrap();
    let kernel_uuid = [0x4b; 16];
    let kext_uuid: [u8; 16] = [
        0x8c, 0x1e, 0x37, 0xf4, 0x2d, 0x6b, 0x3a, 0x09, 0xa5, 0x1c, 0x0d, 0x2b, 0x9c, 0x55, 0xe1,
        0xaa,
    ];
    put(
        dir.path(),
        "kernel.release.t8103",
        &synth::write_macho(&Layout::arm64(kernel_uuid)).bytes,
    );
    put(
        dir.path(),
        "FilterNKE.kext/Contents/MacOS/FilterNKE",
        &synth::write_macho(&Layout::arm64(kext_uuid)).bytes,
    );
    let store = SymbolStore::from_paths([dir.path()]).unwrap();

    let kernel_slide = 0xe9c_8000u64;
    let text_base = TEXT_VMADDR + kernel_slide;
    let panic = format!(
        "panic(cpu 0 caller 0x...): boom\nKernel slide:      0x{kernel_slide:016x}\n\
         Kernel text base:  0x{text_base:016x}\n"
    );
    let slides = PanicSlides::parse(&panic);
    let lr = TEXT_VMADDR + TEXT_SECT_OFF + 0x24 + kernel_slide;
    let kernel = ImageRef::with_uuid(id(kernel_uuid))
        .load_address(slides.kernel_load_address(TEXT_VMADDR).unwrap());
    let by_base = store
        .symbolicate(&kernel, Address::Absolute(lr), FrameKind::Pc)
        .unwrap();
    let unslid = slide::unslide(lr, slides.kernel_slide.unwrap()).unwrap();
    let by_slide = store
        .symbolicate(
            &ImageRef::with_uuid(id(kernel_uuid)),
            Address::Unslid(unslid),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(chain(&by_base), expect(0x24, 0));
    assert_eq!(by_base, by_slide);

    // A kext from "Kernel Extensions in backtrace:".
    let kext_start = 0xffff_fe00_2a1b_4000u64;
    let line = format!(
        "  com.example.filter(1.4.2)[8C1E37F4-2D6B-3A09-A51C-0D2B9C55E1AA]@0x{kext_start:x}->0x{:x}",
        kext_start + 0x3fff
    );
    let kext = slide::kext_image_from_line(&line).unwrap();
    let sym = store
        .symbolicate(
            &kext,
            Address::Absolute(kext_start + TEXT_SECT_OFF + 0x44),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(chain(&sym), expect(0x44, 0));
}

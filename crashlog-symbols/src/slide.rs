//! Slide arithmetic: runtime addresses to the addresses a binary's debug info uses.
//!
//! Terms (as in `atos` and lldb):
//! * **load address**: where the image's first segment (`__TEXT`, or ELF's lowest
//!   `PT_LOAD`) sits at run time (the report's image base);
//! * **image vm address**: where that segment is in the file (`__TEXT` vmaddr, usually
//!   `0x100000000` for executables, `0` for dylibs; ELF: lowest `PT_LOAD` `p_vaddr`);
//! * **slide** = load address − image vm address;
//! * **svma** (stated virtual memory address) = runtime address − slide: what DWARF and
//!   the symbol table use.
//!
//! Kernel panics print `Kernel slide:` and `Kernel text base:` (and on Apple silicon the
//! `KernelCache slide:`/`base:` lines); the kernel's own frames are unslid with the kernel
//! slide ([`unslide`]), and a kext's frames with its `@0xstart` from the
//! "Kernel Extensions in backtrace" list used as its load address.

use crate::id::ImageId;
use crate::image::ImageRef;

/// `load_address - image_vmaddr`, or `None` when the image is loaded below its vm address
/// (which a real loader never does).
pub fn slide(load_address: u64, image_vmaddr: u64) -> Option<u64> {
    load_address.checked_sub(image_vmaddr)
}

/// Runtime address → svma given a known slide (`address - slide`).
pub fn unslide(address: u64, slide: u64) -> Option<u64> {
    address.checked_sub(slide)
}

/// Runtime address → svma from the image's load address and vm address.
pub fn svma_from_absolute(address: u64, load_address: u64, image_vmaddr: u64) -> Option<u64> {
    address.checked_sub(load_address)?.checked_add(image_vmaddr)
}

/// Image offset (`.ips` `imageOffset`) → svma.
pub fn svma_from_offset(offset: u64, image_vmaddr: u64) -> Option<u64> {
    image_vmaddr.checked_add(offset)
}

/// The runtime load address of a kernel whose `__TEXT` is at `unslid_text_vmaddr` in the
/// file, given the panic's `Kernel slide:`.
pub fn kernel_load_address(unslid_text_vmaddr: u64, kernel_slide: u64) -> Option<u64> {
    unslid_text_vmaddr.checked_add(kernel_slide)
}

/// The slide values a panic prints. Any of them may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicSlides {
    /// `Kernel slide:` value.
    pub kernel_slide: Option<u64>,
    /// `Kernel text base:` value (slid address of the kernel's `__TEXT`).
    pub kernel_text_base: Option<u64>,
    /// `Kernel text exec slide:` (arm64 fileset kernels).
    pub kernel_text_exec_slide: Option<u64>,
    /// `Kernel text exec base:`.
    pub kernel_text_exec_base: Option<u64>,
    /// `KernelCache slide:` (arm64).
    pub kernelcache_slide: Option<u64>,
    /// `KernelCache base:` (arm64).
    pub kernelcache_base: Option<u64>,
}

impl PanicSlides {
    /// Read the slide lines out of a panic string (any line order, any whitespace;
    /// literal `\n` escapes of a JSON-embedded panic string are handled too).
    pub fn parse(panic_text: &str) -> PanicSlides {
        let mut out = PanicSlides::default();
        for line in panic_text.split(['\n', '\r']).flat_map(|l| l.split("\\n")) {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let Some(value) = parse_hex(value) else {
                continue;
            };
            let slot = match key.trim() {
                "Kernel slide" => &mut out.kernel_slide,
                "Kernel text base" => &mut out.kernel_text_base,
                "Kernel text exec slide" => &mut out.kernel_text_exec_slide,
                "Kernel text exec base" => &mut out.kernel_text_exec_base,
                "KernelCache slide" => &mut out.kernelcache_slide,
                "KernelCache base" => &mut out.kernelcache_base,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        out
    }

    /// The kernel's runtime load address for [`ImageRef::load_address`]: `Kernel text
    /// base:` when printed, else `unslid_text_vmaddr + Kernel slide:`.
    pub fn kernel_load_address(&self, unslid_text_vmaddr: u64) -> Option<u64> {
        self.kernel_text_base.or_else(|| {
            self.kernel_slide
                .and_then(|s| kernel_load_address(unslid_text_vmaddr, s))
        })
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.split_whitespace().next()?;
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

/// Parse one entry of a panic's "Kernel Extensions in backtrace:" list,
/// `com.vendor.nke(1.2.3)[UUID]@0xstart->0xend`, into an image whose load address is
/// `start`. Returns `None` when the line is not such an entry.
pub fn kext_image_from_line(line: &str) -> Option<ImageRef> {
    let line = line.trim();
    let (name, rest) = line.split_once('(')?;
    let (_version, rest) = rest.split_once(")[")?;
    let (uuid, rest) = rest.split_once("]@")?;
    let start = rest.split("->").next()?;
    let uuid: ImageId = uuid.parse().ok()?;
    let load = parse_hex(start)?;
    Some(ImageRef {
        uuid: Some(uuid),
        name: Some(name.trim().to_owned()),
        arch: None,
        load_address: Some(load),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_space_slide_round_trip() {
        // __TEXT at 0x100000000 in the file, loaded at 0x104580000.
        let (load, vm) = (0x1_0458_0000, 0x1_0000_0000);
        assert_eq!(slide(load, vm), Some(0x458_0000));
        // `0x1045f2a3c 0x104580000 + 469564` from a .crash frame.
        let pc = 0x1_045f_2a3c;
        assert_eq!(pc - load, 469_564);
        assert_eq!(svma_from_absolute(pc, load, vm), Some(0x1_0007_2a3c));
        assert_eq!(svma_from_offset(469_564, vm), Some(0x1_0007_2a3c));
        assert_eq!(unslide(pc, 0x458_0000), Some(0x1_0007_2a3c));
        assert_eq!(svma_from_absolute(load - 1, load, vm), None);
        assert_eq!(slide(0, 1), None);
    }

    #[test]
    fn kernel_slide_from_panic_lines() {
        let text = "panic(cpu 0 caller 0xfffffe0017a3b2c4): boom\n\
                    Kernel slide:      0x000000000e9c8000\n\
                    Kernel text base:  0xfffffe00159cc000\n\
                    Kernel text exec slide: 0x000000000eab4000\n";
        let s = PanicSlides::parse(text);
        assert_eq!(s.kernel_slide, Some(0xe9c_8000));
        assert_eq!(s.kernel_text_base, Some(0xffff_fe00_159c_c000));
        assert_eq!(s.kernel_text_exec_slide, Some(0xeab_4000));
        // The unslid kernel __TEXT is text base - slide, and unsliding an lr agrees with
        // the load-address formula.
        let unslid_text = 0xffff_fe00_0700_4000;
        assert_eq!(s.kernel_load_address(unslid_text), s.kernel_text_base);
        let lr = 0xffff_fe00_17a3_b2c4_u64;
        let via_slide = unslide(lr, 0xe9c_8000);
        let via_base = svma_from_absolute(lr, 0xffff_fe00_159c_c000, unslid_text);
        assert_eq!(via_slide, via_base);
        assert_eq!(via_slide, Some(0xffff_fe00_0907_32c4));
        // Slide only (Intel panics print both, but be robust): base derived from the slide.
        let only = PanicSlides::parse("Kernel slide:     0x0000000010800000\\nfoo");
        assert_eq!(
            only.kernel_load_address(0xffff_ff80_0020_0000),
            Some(0xffff_ff80_10a0_0000)
        );
        assert_eq!(PanicSlides::parse("no slides here"), PanicSlides::default());
    }

    #[test]
    fn kext_line_becomes_an_image() {
        let line = "         com.example.nke.filter(1.4.2)[8C1E37F4-2D6B-3A09-A51C-0D2B9C55E1AA]@0xffffff7f8a1b2000->0xffffff7f8a1c3fff";
        let img = kext_image_from_line(line).unwrap();
        assert_eq!(img.name.as_deref(), Some("com.example.nke.filter"));
        assert_eq!(img.load_address, Some(0xffff_ff7f_8a1b_2000));
        assert_eq!(
            img.uuid.unwrap().to_string(),
            "8C1E37F4-2D6B-3A09-A51C-0D2B9C55E1AA"
        );
        assert!(kext_image_from_line("dependency: com.apple.iokit(1)").is_none());
    }
}

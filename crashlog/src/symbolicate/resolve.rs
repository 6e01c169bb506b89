//! Frames to symbol-store lookups: which image, which address form, which slide; with a
//! per-report cache of resolved images and once-per-image problem collection.

use std::collections::HashMap;

use crashlog_symbols::{
    Address, Arch, FrameKind, ImageHandle, ImageId, ImageRef, SymbolError, SymbolStore,
    Symbolication,
};

use super::{ImageProblem, SymbolicationOutcome};
use crate::model::{BinaryImage, Frame, Kext, Report, SourceFormat};

/// What a frame says about where it points (a subset of [`Frame`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameSite {
    /// Image name (`tunnel`, a kext bundle id, `mach_kernel`), if known.
    pub image: Option<String>,
    /// Image UUID / build-id as written.
    pub uuid: Option<String>,
    /// Architecture as written (`arm64e`).
    pub arch: Option<String>,
    /// Absolute (runtime) address.
    pub address: Option<u64>,
    /// The image's load address.
    pub image_base: Option<u64>,
    /// Offset of the address from the image's load address.
    pub image_offset: Option<u64>,
}

impl FrameSite {
    /// The site of a model frame.
    pub fn from_frame(f: &Frame) -> FrameSite {
        FrameSite {
            image: f.image.clone(),
            uuid: f.image_uuid.clone(),
            arch: f.arch.clone(),
            address: f.address,
            image_base: f.image_base,
            image_offset: f.image_offset,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Kernel {
    slide: Option<u64>,
    text_base: Option<u64>,
}

type Key = (Option<ImageId>, Option<String>, Option<Arch>, Option<u64>);

/// Resolves frames of one report against a store: each image is matched and loaded once
/// (the result, error included, is cached), problems are kept once per image.
#[derive(Debug)]
pub struct Resolver<'s> {
    store: &'s SymbolStore,
    images: Vec<BinaryImage>,
    kexts: Vec<Kext>,
    kernel: Option<Kernel>,
    kernel_uuid: Option<ImageId>,
    default_arch: Option<String>,
    prefer_offset: bool,
    handles: HashMap<Key, Result<ImageHandle<'s>, SymbolError>>,
    outcome: SymbolicationOutcome,
    last_not_found: bool,
}

impl<'s> Resolver<'s> {
    /// A resolver for `report`'s frames (it copies the image list, kexts and slides).
    pub fn new(store: &'s SymbolStore, report: &Report) -> Self {
        let (kexts, kernel, kernel_uuid) = match &report.panic {
            Some(p) => (
                p.kexts.clone(),
                Some(Kernel {
                    slide: p.kernel_slide,
                    text_base: p.kernel_text_base,
                }),
                p.kernel_uuid.as_deref().and_then(|u| u.parse().ok()),
            ),
            None => (Vec::new(), None, None),
        };
        Resolver {
            store,
            images: report.binary_images.clone(),
            kexts,
            kernel,
            kernel_uuid,
            default_arch: report.default_arch(),
            prefer_offset: matches!(
                report.format,
                SourceFormat::IpsCrash | SourceFormat::IpsPanic
            ),
            handles: HashMap::new(),
            outcome: SymbolicationOutcome::default(),
            last_not_found: false,
        }
    }

    /// Fill a site from the report's image list (by name, then by address range) and
    /// kext list, the way [`Report::resolve_frames`] does for parsed frames.
    pub fn complete(&self, site: &mut FrameSite) {
        let by_name = site
            .image
            .as_deref()
            .and_then(|n| self.images.iter().find(|i| i.name.as_deref() == Some(n)));
        let by_range = || {
            let a = site.address?;
            self.images.iter().find(|i| match (i.base, i.size) {
                (Some(b), Some(s)) => a >= b && a - b < s,
                _ => false,
            })
        };
        let named = by_name.is_some();
        if let Some(img) = by_name.or_else(by_range) {
            if site.image.is_none() || !named {
                // Frame columns truncate long names; the image list has the full one.
                site.image.clone_from(&img.name);
            }
            if site.uuid.is_none() {
                site.uuid.clone_from(&img.uuid);
            }
            if site.arch.is_none() {
                site.arch.clone_from(&img.arch);
            }
            if site.image_base.is_none() {
                site.image_base = img.base;
            }
        } else if site.image_base.is_none()
            && let Some(a) = site.address
            && let Some(k) = self
                .kexts
                .iter()
                .find(|k| matches!((k.start, k.end), (Some(s), Some(e)) if a >= s && a <= e))
        {
            site.image = Some(k.name.clone());
            site.uuid.clone_from(&k.uuid);
            site.image_base = k.start;
        }
        if site.arch.is_none() {
            site.arch.clone_from(&self.default_arch);
        }
        if site.image_offset.is_none()
            && let (Some(a), Some(b)) = (site.address, site.image_base)
        {
            site.image_offset = a.checked_sub(b);
        }
    }

    /// True when the last [`Resolver::symbolicate`] failed only because the store has no
    /// symbols for the image.
    pub fn last_was_not_found(&self) -> bool {
        self.last_not_found
    }

    /// Symbolicate one frame; `None` leaves the frame as it was (the reason, unless it is
    /// "no symbols for this image", is recorded once per image).
    pub fn symbolicate(&mut self, site: &FrameSite, kind: FrameKind) -> Option<Symbolication> {
        self.last_not_found = false;
        let is_kernel = self.kernel.is_some()
            && site.image_base.is_none()
            && site.image_offset.is_none()
            && site
                .image
                .as_deref()
                .is_none_or(|n| matches!(n, "mach_kernel" | "kernel" | "kernel_task"));
        if is_kernel {
            return self.kernel_frame(site, kind);
        }
        let image = ImageRef {
            uuid: site.uuid.as_deref().and_then(|u| u.parse().ok()),
            name: site.image.clone(),
            arch: site.arch.as_deref().map(Arch::parse),
            load_address: site.image_base,
        };
        let address = match (site.address, site.image_base, site.image_offset) {
            (_, _, Some(off)) if self.prefer_offset => Address::ImageOffset(off),
            (Some(a), Some(_), _) => Address::Absolute(a),
            (_, _, Some(off)) => Address::ImageOffset(off),
            _ => {
                self.last_not_found = true;
                return None;
            }
        };
        let handle = self.handle(&image)?;
        match handle.symbolicate(address, kind) {
            Ok(sym) => Some(sym),
            Err(e) => {
                self.problem(&image, e);
                None
            }
        }
    }

    fn kernel_frame(&mut self, site: &FrameSite, kind: FrameKind) -> Option<Symbolication> {
        let kernel = self.kernel.unwrap_or_default();
        let image = ImageRef {
            uuid: self.kernel_uuid.clone(),
            name: Some(site.image.clone().unwrap_or_else(|| "kernel".to_owned())),
            arch: site
                .arch
                .as_deref()
                .or(self.default_arch.as_deref())
                .map(Arch::parse),
            load_address: None,
        };
        let Some(address) = site.address else {
            self.last_not_found = true;
            return None;
        };
        let handle = self.handle(&image)?;
        let unslid = match (kernel.slide, kernel.text_base) {
            (Some(slide), _) => crashlog_symbols::slide::unslide(address, slide),
            (None, Some(base)) => {
                crashlog_symbols::slide::svma_from_absolute(address, base, handle.image_vmaddr())
            }
            (None, None) => {
                self.problem(
                    &image,
                    SymbolError::BadAddress {
                        address,
                        reason: "the panic has no `Kernel slide:` or `Kernel text base:` line",
                    },
                );
                return None;
            }
        };
        let Some(unslid) = unslid else {
            self.problem(
                &image,
                SymbolError::BadAddress {
                    address,
                    reason: "it is below the kernel slide",
                },
            );
            return None;
        };
        match handle.symbolicate(Address::Unslid(unslid), kind) {
            Ok(sym) => Some(sym),
            Err(e) => {
                self.problem(&image, e);
                None
            }
        }
    }

    fn handle(&mut self, image: &ImageRef) -> Option<ImageHandle<'s>> {
        let key: Key = (
            image.usable_uuid().cloned(),
            image.file_name().map(str::to_owned),
            image.arch.clone(),
            image.load_address,
        );
        let store = self.store;
        let entry = self
            .handles
            .entry(key)
            .or_insert_with(|| store.image(image));
        match entry {
            Ok(h) => Some(h.clone()),
            Err(e) => {
                let e = e.clone();
                self.problem(image, e);
                None
            }
        }
    }

    fn problem(&mut self, image: &ImageRef, error: SymbolError) {
        if error.is_image_not_found() {
            self.last_not_found = true;
            return;
        }
        self.outcome.push_problem(ImageProblem {
            image: image.describe(),
            error,
        });
    }

    /// The problems collected so far (counts are kept by the caller).
    pub fn into_outcome(self) -> SymbolicationOutcome {
        self.outcome
    }
}

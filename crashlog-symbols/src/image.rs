//! What a report says about an image, and how a frame's address is given.

use crate::id::{Arch, ImageId};

/// One image (binary) of a crash report, as the report describes it.
///
/// Fill in what the report has: `.ips` `usedImages[]` gives `uuid`, `name`, `arch` and
/// `base`; a `.crash` `Binary Images:` line gives the start address, name, arch and
/// `<uuid>`; a panic's kext line gives `name(version)[UUID]@0xstart`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRef {
    /// `LC_UUID` / build-id from the report; `None` (or a nil id) when the report has none.
    pub uuid: Option<ImageId>,
    /// The image's file name (`MyTunnel`, `libfoo.so`); a full path is accepted and only its
    /// last component is used.
    pub name: Option<String>,
    /// The architecture, where the report says it (needed to pick a fat slice when there is
    /// no UUID).
    pub arch: Option<Arch>,
    /// Runtime address of the image's start: the Mach-O header / `__TEXT` segment, or for
    /// ELF the start of the lowest `PT_LOAD` segment. Needed only for absolute addresses.
    pub load_address: Option<u64>,
}

impl ImageRef {
    /// An image known by UUID/build-id only.
    pub fn with_uuid(uuid: ImageId) -> Self {
        ImageRef {
            uuid: Some(uuid),
            ..ImageRef::default()
        }
    }

    /// Set the name (builder style).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Set the architecture (builder style).
    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = Some(arch);
        self
    }

    /// Set the runtime load address (builder style).
    pub fn load_address(mut self, load_address: u64) -> Self {
        self.load_address = Some(load_address);
        self
    }

    /// The UUID if it identifies something (a nil UUID does not).
    pub fn usable_uuid(&self) -> Option<&ImageId> {
        self.uuid.as_ref().filter(|id| !id.is_nil())
    }

    /// The last path component of `name`.
    pub fn file_name(&self) -> Option<&str> {
        let name = self.name.as_deref()?;
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        (!base.is_empty()).then_some(base)
    }

    /// A short human description (`MyTunnel <UUID>`), for messages.
    pub fn describe(&self) -> String {
        match (self.file_name(), self.usable_uuid()) {
            (Some(n), Some(u)) => format!("'{n}' <{u}>"),
            (Some(n), None) => format!("'{n}'"),
            (None, Some(u)) => format!("<{u}>"),
            (None, None) => "(unnamed, no UUID)".to_owned(),
        }
    }
}

/// Where a frame points, the way reports give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    /// A runtime (slid) address, e.g. `0x1045f2a3c` in a `.crash` frame or a panic's `lr:`;
    /// needs [`ImageRef::load_address`].
    Absolute(u64),
    /// An offset from the image's load address, e.g. `.ips` `imageOffset` or the
    /// `+ 469564` of `0x1045f2a3c 0x104580000 + 469564`.
    ImageOffset(u64),
    /// An address in the binary's own address space, slide already removed: `atos`
    /// without `-l`, or a kernel `lr:` after [`crate::slide::unslide`].
    Unslid(u64),
}

/// How the address of a frame was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FrameKind {
    /// The exact PC of the crashing (top) frame: looked up as is.
    #[default]
    Pc,
    /// A return address (every frame below the top one, and panic `lr:` values): the call
    /// instruction is *before* it, so line and inline information is looked up at
    /// `address - 1` (the symbol offset still refers to the address as given). Without
    /// this, a call that is the last instruction of an inlined block or function reports
    /// the next line or even the next function.
    ReturnAddress,
}

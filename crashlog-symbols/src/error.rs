//! The one error type of this crate.

use std::path::PathBuf;
use std::sync::Arc;

use crate::id::{Arch, ImageId};

/// Everything that can go wrong while indexing symbol files or symbolicating a frame.
///
/// Every variant that concerns a file names it (and the byte offset where one is known),
/// so a caller can print the error as-is next to the frame it left unchanged.
/// Errors are `Clone` because a failed image load is cached and returned for every later
/// frame of that image (the file is not re-read per frame).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// A path could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is not a Mach-O (thin or fat) or ELF object, or its headers are malformed.
    #[error("{}: not a usable Mach-O or ELF file: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the object parser said.
        message: String,
    },
    /// The report names an image by UUID/build-id, and the only file with that image's name
    /// has a different UUID: it was built from other sources and would give wrong answers.
    #[error(
        "{}: UUID mismatch for image '{name}': the report wants {expected}, the file has {found}",
        path.display()
    )]
    UuidMismatch {
        /// The file whose name matched.
        path: PathBuf,
        /// The image name from the report.
        name: String,
        /// The UUID the report asked for.
        expected: ImageId,
        /// The UUID the file carries (`(none)` if it carries none).
        found: String,
    },
    /// A fat (universal) file or a set of files of the right name has no slice for the
    /// report's architecture.
    #[error(
        "{}: no {wanted} slice for image '{name}' (the file has: {})",
        path.display(),
        list_arches(available)
    )]
    MissingSlice {
        /// The file (for a fat file) or the first file that matched by name.
        path: PathBuf,
        /// The image name from the report.
        name: String,
        /// The architecture the report asked for.
        wanted: Arch,
        /// The architectures that are there.
        available: Vec<Arch>,
    },
    /// Several indexed objects match and nothing (UUID, arch) tells them apart.
    #[error("image '{name}' is ambiguous: {count} indexed objects match ({}); give its UUID or arch", path.display())]
    Ambiguous {
        /// The first matching file.
        path: PathBuf,
        /// The image name (or `(any)` for an anonymous `atos` lookup).
        name: String,
        /// How many objects matched.
        count: usize,
    },
    /// The matched file has neither DWARF nor a symbol table.
    #[error(
        "{}: stripped binary: no DWARF debug info and no symbol table; point --symbols at its .dSYM or .debug file",
        path.display()
    )]
    Stripped {
        /// The file.
        path: PathBuf,
    },
    /// The DWARF in the file could not be parsed.
    #[error("{}: corrupt DWARF in {section}{}: {message}", path.display(), fmt_offset(*offset))]
    CorruptDwarf {
        /// The file.
        path: PathBuf,
        /// The DWARF section (e.g. `.debug_info`).
        section: &'static str,
        /// Byte offset into that section where parsing failed, where known.
        offset: Option<u64>,
        /// What gimli said.
        message: String,
    },
    /// No indexed file matches the image (neither by UUID nor by the name fallback).
    /// This is the normal outcome for system libraries; callers usually stay silent.
    #[error("no symbols for image {image}")]
    ImageNotFound {
        /// A description of the image (UUID and/or name).
        image: String,
    },
    /// The image was found but nothing in it covers the address.
    #[error("{}: no function covers address 0x{address:x} (image vm address)", path.display())]
    AddressNotFound {
        /// The file.
        path: PathBuf,
        /// The address in the file's own address space (after removing the slide).
        address: u64,
    },
    /// An absolute address was given for an image without a load address, or it lies below
    /// the load address.
    #[error("address 0x{address:x} cannot be made image-relative: {reason}")]
    BadAddress {
        /// The address from the report.
        address: u64,
        /// Why.
        reason: &'static str,
    },
}

fn fmt_offset(offset: Option<u64>) -> String {
    offset
        .map(|o| format!(" at offset 0x{o:x}"))
        .unwrap_or_default()
}

fn list_arches(arches: &[Arch]) -> String {
    if arches.is_empty() {
        return "no slices".to_owned();
    }
    arches
        .iter()
        .map(Arch::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SymbolError {
    /// A stable identifier for logs, JSON and tests; never changes once released.
    pub fn name(&self) -> &'static str {
        match self {
            SymbolError::Io { .. } => "io",
            SymbolError::Malformed { .. } => "malformed_object",
            SymbolError::UuidMismatch { .. } => "uuid_mismatch",
            SymbolError::MissingSlice { .. } => "missing_slice",
            SymbolError::Ambiguous { .. } => "ambiguous_image",
            SymbolError::Stripped { .. } => "stripped_binary",
            SymbolError::CorruptDwarf { .. } => "corrupt_dwarf",
            SymbolError::ImageNotFound { .. } => "image_not_found",
            SymbolError::AddressNotFound { .. } => "address_not_found",
            SymbolError::BadAddress { .. } => "bad_address",
        }
    }

    /// True when the store simply has no symbols for the image (a system library, say):
    /// callers usually leave such frames alone without printing anything.
    pub fn is_image_not_found(&self) -> bool {
        matches!(self, SymbolError::ImageNotFound { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SymbolError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        SymbolError::Malformed {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

//! crashlog-symbols: symbolication of crash-report frames with `object`, `gimli` and
//! `addr2line`.
//!
//! This crate turns "image + address" pairs from a crash report into functions, source
//! files, lines and inline chains. It knows nothing about report formats: the caller
//! (the `crashlog` CLI) describes each image with an [`ImageRef`] and each frame with an
//! [`Address`], and gets a per-frame `Result` back. An error never disturbs anything else:
//! the caller keeps that frame as it was.
//!
//! # Main types
//! * [`SymbolStore`]: files and directories given with `--symbols` (Mach-O thin and fat,
//!   `.dSYM` bundles, ELF with DWARF, split `.debug` files found by build-id or
//!   `.gnu_debuglink`), indexed by UUID/build-id and name. Objects are parsed once, on
//!   first use, and cached for the run.
//! * [`ImageRef`]: what the report says about an image (UUID, name, arch, load address).
//! * [`ImageHandle`]: an image resolved and loaded once; symbolicate all its frames
//!   through it.
//! * [`Symbolication`] / [`SymbolFrame`]: the answer, **innermost inlined frame first**.
//! * [`SymbolError`]: what went wrong, naming the file (and offset), with a stable
//!   [`SymbolError::name`].
//! * [`slide`]: the slide arithmetic (user space and kernel/kext), and panic slide lines.
//!
//! # Example
//! ```no_run
//! use crashlog_symbols::{Address, Arch, FrameKind, ImageRef, SymbolStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SymbolStore::from_paths(["build/MyTunnel.appex.dSYM"])?;
//! let image = ImageRef::with_uuid("d8fbe4ad-1c2e-3b4f-9a0b-112233445566".parse()?)
//!     .name("MyTunnel")
//!     .arch(Arch::Arm64)
//!     .load_address(0x1_0458_0000);
//! let handle = store.image(&image)?; // resolve + parse once per image
//! for (i, pc) in [0x1_045f_2a3c_u64, 0x1_045f_1000].into_iter().enumerate() {
//!     let kind = if i == 0 { FrameKind::Pc } else { FrameKind::ReturnAddress };
//!     match handle.symbolicate(Address::Absolute(pc), kind) {
//!         Ok(sym) => println!("{}", sym.atos_lines("MyTunnel").join("\n")),
//!         Err(e) => eprintln!("frame left as is: {e} [{}]", e.name()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Limits
//! Swift names are not demangled (no Swift demangler in the dependency set): with DWARF the
//! frame shows the compiler's unqualified `DW_AT_name`, from a symbol table the mangled name.
//! Split DWARF (`.dwo`/`.dwp`) and DWARF supplementary files are not loaded; the skeleton
//! units' line tables are still used. Thin archives and dyld shared caches are not indexed.

mod demangle;
mod error;
mod frame;
mod id;
mod image;
mod index;
mod loaded;
pub mod slide;
mod store;
mod symtab;

pub use demangle::{Demangled, Mangling, demangle};
pub use error::SymbolError;
pub use frame::{SymbolFrame, SymbolSource, Symbolication};
pub use id::{Arch, ImageId, ParseIdError};
pub use image::{Address, FrameKind, ImageRef};
pub use index::{ObjectFormat, ObjectInfo};
pub use store::{ImageHandle, SymbolStore};

//! crashlog: read every crash, panic, hang and log format the field sends into one model.
//!
//! Layers (each usable on its own):
//!
//! - [`model`]: the [`Report`] model shared by every format — kind, OS, device, process,
//!   exception/termination, panic details, threads with frames, binary images, kexts and
//!   log entries.
//! - [`parse`]: bytes → reports, no file I/O. One entry point per format family
//!   ([`parse::parse_ips`], [`parse::parse_panic`], [`parse::parse_crash`],
//!   [`parse::parse_stack`], [`parse::parse_spindump`], [`parse::parse_log`]) plus
//!   [`parse::parse_auto`]; [`parse::LogReader`] streams logs from any `BufRead` in
//!   bounded memory.
//! - [`load`]: files and directories → reports (recursive walk, parallel parsing, size
//!   caps, streamed logs).
//! - [`render`]: the readable summary and the JSON document (see [`json_schema`]).
//! - [`triage`]: signatures, clusters, known issues and log findings (`crashlog triage`).
//! - [`cmd`]: the CLI verbs as library functions.
//! - [`symbolicate`]: frames filled in from binaries and debug files (`crashlog-symbols`),
//!   on the model or on the original bytes.
//!
//! Errors are [`ParseError`] (with the input line) and [`LoadError`] (with the path),
//! displayed as `path:line: message`.
//!
//! ```
//! let text = b"panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646\nDebugger message: panic\nOS version: 25D2128\n";
//! let reports = crashlog::parse::parse_auto(text).unwrap();
//! let panic = reports[0].panic.as_ref().unwrap();
//! assert!(panic.message.as_deref().unwrap().starts_with("skmem_slab_free_locked"));
//! assert_eq!(reports[0].os.build.as_deref(), Some("25D2128"));
//! ```
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod cmd;
pub mod error;
pub mod load;
pub mod model;
pub mod parse;
pub mod render;
pub mod symbolicate;
pub mod triage;

#[doc = include_str!("../json-schema.md")]
pub mod json_schema {}

pub use error::{LoadError, ParseError};
pub use model::{
    BinaryImage, Exception, Frame, HangInfo, Kext, LoadedKext, LogEntry, LogStyle, LogTime,
    LogType, Os, PanicInfo, PanickedTask, PanickedThread, Process, Report, ReportKind,
    SourceFormat, Termination, Thread, Warning,
};
pub use parse::Format;

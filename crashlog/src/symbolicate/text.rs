//! Text reports rewritten in place: only frame lines change, everything else (and every
//! frame that cannot be symbolicated) stays byte for byte.
//!
//! * `.crash`/pasted frame lines keep the index, image and address columns; what follows
//!   the address becomes `function + offset (file:line)`. Inlined calls get a line of their
//!   own above it, with the same index, image and address columns, ending in `[inlined]`
//!   (`fold16 (tunnel.c:5) [inlined]`).
//! * arm64 panic `lr: 0x…  fp: 0x…` lines get `  function + offset (file:line)` appended,
//!   and x86_64 `0xframe : 0xreturn` lines get ` image : function + 0xoffset (file:line)`
//!   (the layout of symbolicated Intel panics);
//!   an inline chain follows as ` [inlined: inner (file:line) <- caller (file:line)]`.

use crashlog_symbols::{FrameKind, SymbolStore, Symbolication};

use super::resolve::{FrameSite, Resolver};
use super::{Rewritten, SymbolicationOutcome, base_name, symbol_name};
use crate::model::{Report, ReportKind};
use crate::parse::text::{crash_frame, hex0x};

/// Rewrite the frame lines of `text`. `reports` are what the parser read from it.
pub(super) fn rewrite(text: &str, reports: &[Report], store: &SymbolStore) -> Rewritten {
    let main = merged(reports);
    let mut resolver = Resolver::new(store, &main);
    let mut outcome = SymbolicationOutcome::default();
    let is_panic = main.kind == ReportKind::Panic || main.panic.is_some();

    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut section = Section {
        // A pasted stack without `Thread N` headers: its first thread is the crashed one.
        crashed: !is_panic && main.threads.first().is_some_and(|t| t.crashed),
        frames: 0,
        in_images: false,
    };
    let mut pending_inline: Vec<&str> = Vec::new();

    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches(['\n', '\r']);
        let eol = &raw[body.len()..];
        let trimmed = body.trim_start();
        if section.header(trimmed, &main) {
            flush(&mut out, &mut pending_inline);
            out.push_str(raw);
            continue;
        }
        let Some(line) = (!section.in_images).then(|| frame_line(body)).flatten() else {
            flush(&mut out, &mut pending_inline);
            out.push_str(raw);
            continue;
        };
        if line.inline {
            pending_inline.push(raw);
            continue;
        }
        outcome.frames += 1;
        let kind = if !is_panic && section.crashed && section.frames == 0 {
            FrameKind::Pc
        } else {
            FrameKind::ReturnAddress
        };
        section.frames += 1;
        let mut site = line.site.clone();
        resolver.complete(&mut site);
        let Some(sym) = resolver.symbolicate(&site, kind) else {
            if resolver.last_was_not_found() {
                outcome.without_symbols += 1;
            }
            flush(&mut out, &mut pending_inline);
            out.push_str(raw);
            continue;
        };
        pending_inline.clear();
        outcome.symbolicated += 1;
        outcome.inlined_added += sym.frames.len().saturating_sub(1);
        let prefix = &body[..line.prefix_end];
        match line.shape {
            Shape::Crash => {
                for (i, f) in sym.frames.iter().enumerate() {
                    out.push_str(prefix);
                    out.push(' ');
                    out.push_str(&describe(f, false));
                    if i + 1 < sym.frames.len() {
                        out.push_str(" [inlined]");
                    }
                    out.push_str(if eol.is_empty() { "\n" } else { eol });
                }
                if eol.is_empty() {
                    out.pop();
                }
            }
            Shape::Lr => {
                out.push_str(prefix.trim_end());
                out.push_str("  ");
                out.push_str(&one_line(&sym, false));
                out.push_str(eol);
            }
            Shape::X86 => {
                out.push_str(prefix.trim_end());
                let image = site.image.as_deref().unwrap_or("mach_kernel");
                out.push_str(&format!(" {image} : {}", one_line(&sym, true)));
                out.push_str(eol);
            }
        }
    }
    flush(&mut out, &mut pending_inline);
    outcome.merge(resolver.into_outcome());
    Rewritten {
        bytes: out.into_bytes(),
        outcome,
    }
}

fn flush(out: &mut String, pending: &mut Vec<&str>) {
    for l in pending.drain(..) {
        out.push_str(l);
    }
}

/// The first non-log report, with the images and kexts of the others (a forum post may
/// hold a panic and a crash report).
fn merged(reports: &[Report]) -> Report {
    let mut non_log = reports.iter().filter(|r| r.kind != ReportKind::Log);
    let mut main = non_log
        .next()
        .cloned()
        .unwrap_or_else(|| Report::new(ReportKind::Stack, crate::SourceFormat::PastedStack));
    for r in non_log {
        main.binary_images.extend(r.binary_images.iter().cloned());
        if let (Some(p), Some(q)) = (main.panic.as_mut(), r.panic.as_ref()) {
            p.kexts.extend(q.kexts.iter().cloned());
        }
    }
    main
}

struct Section {
    crashed: bool,
    frames: usize,
    in_images: bool,
}

impl Section {
    /// Track `Thread N [Crashed]:`, `Last Exception Backtrace:`, `Binary Images:` and panic
    /// backtrace headers. Returns true when the line is such a header.
    fn header(&mut self, t: &str, report: &Report) -> bool {
        if t.starts_with("Binary Images:") {
            self.in_images = true;
            return true;
        }
        if t.starts_with("Last Exception Backtrace:") {
            *self = Section {
                crashed: false,
                frames: 0,
                in_images: false,
            };
            return true;
        }
        if t.starts_with("Backtrace (CPU") || t.starts_with("Panicked thread:") {
            *self = Section {
                crashed: false,
                frames: 0,
                in_images: false,
            };
            return true;
        }
        let Some(rest) = t.strip_prefix("Thread ") else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Some(n) = rest.get(..digits).and_then(|d| d.parse::<u32>().ok()) else {
            return false;
        };
        let tail = rest.get(digits..).unwrap_or("");
        let crashed_mark = tail.starts_with(" Crashed");
        let after = tail.strip_prefix(" Crashed").unwrap_or(tail);
        if !after.starts_with(':') {
            // `Thread 0 name: …`, `Thread 5 crashed with ARM Thread State` are not stacks.
            return false;
        }
        *self = Section {
            crashed: crashed_mark || report.crashed_thread == Some(n),
            frames: 0,
            in_images: false,
        };
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `N  image  0xaddr …`
    Crash,
    /// `lr: 0x…  fp: 0x…`
    Lr,
    /// `0xframe : 0xreturn …`
    X86,
}

struct FrameLine {
    shape: Shape,
    /// Bytes of the line kept as they are (up to the end of the address column).
    prefix_end: usize,
    site: FrameSite,
    inline: bool,
}

fn frame_line(body: &str) -> Option<FrameLine> {
    let lead = body.len() - body.trim_start().len();
    let t = &body[lead..];
    if let Some(rest) = t.strip_prefix("lr: ") {
        let (addr, mut end) = hex_token(rest)?;
        end += lead + 4;
        // Keep `  fp: 0x…` when present.
        let after = &body[end..];
        let after_t = after.trim_start();
        if let Some(fp) = after_t.strip_prefix("fp: ")
            && let Some((_, fp_end)) = hex_token(fp)
        {
            end += after.len() - after_t.len() + 4 + fp_end;
        }
        return Some(FrameLine {
            shape: Shape::Lr,
            prefix_end: end,
            site: FrameSite {
                address: Some(addr),
                ..FrameSite::default()
            },
            inline: false,
        });
    }
    if t.starts_with("0x") {
        let (_, fp_end) = hex_token(t)?;
        let rest = t.get(fp_end..)?.strip_prefix(" : ")?;
        let (ret, ret_end) = hex_token(rest)?;
        // `… 0xreturn mach_kernel : _sym + 0x41d` (or a kext's bundle id).
        let image = rest
            .get(ret_end..)
            .and_then(|r| r.trim().split_once(" : "))
            .map(|(img, _)| img.trim().to_owned())
            .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace));
        return Some(FrameLine {
            shape: Shape::X86,
            prefix_end: lead + fp_end + 3 + ret_end,
            site: FrameSite {
                image,
                address: Some(ret),
                ..FrameSite::default()
            },
            inline: false,
        });
    }
    let f = crash_frame(body)?;
    let addr_end = address_end(body)?;
    let inline = body[addr_end..].trim_end().ends_with("[inlined]");
    Some(FrameLine {
        shape: Shape::Crash,
        prefix_end: addr_end,
        site: FrameSite::from_frame(&f),
        inline,
    })
}

/// A `0x…` token at the start of `s`: (value, end).
fn hex_token(s: &str) -> Option<(u64, usize)> {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((hex0x(&s[..end])?, end))
}

/// End of the address column of a `.crash` frame line: the first whitespace-delimited
/// `0x…` token after the frame index.
fn address_end(line: &str) -> Option<usize> {
    let mut pos = 0;
    let mut first = true;
    for tok in line.split_inclusive(char::is_whitespace) {
        let word = tok.trim_end();
        let start = pos;
        pos += tok.len();
        if word.is_empty() {
            continue;
        }
        if first {
            first = false;
            continue; // the frame index
        }
        if hex0x(word).is_some() {
            return Some(start + word.len());
        }
    }
    None
}

/// `function + 60 (file.c:42)` (offset in hex with `hex`), `function (file.c:42)` for an
/// inlined frame.
fn describe(f: &crashlog_symbols::SymbolFrame, hex: bool) -> String {
    let mut s = symbol_name(f).unwrap_or("???").to_owned();
    if let Some(off) = f.symbol_offset {
        if hex {
            s.push_str(&format!(" + {off:#x}"));
        } else {
            s.push_str(&format!(" + {off}"));
        }
    }
    if let (Some(file), Some(line)) = (&f.file, f.line) {
        s.push_str(&format!(" ({}:{line})", base_name(file)));
    }
    s
}

/// The owning function first, then the inline chain innermost first.
fn one_line(sym: &Symbolication, hex: bool) -> String {
    let Some((outer, inlined)) = sym.frames.split_last() else {
        return String::new();
    };
    let mut s = describe(outer, hex);
    if !inlined.is_empty() {
        let chain: Vec<String> = inlined.iter().map(|f| describe(f, hex)).collect();
        s.push_str(&format!(" [inlined: {}]", chain.join(" <- ")));
    }
    s
}

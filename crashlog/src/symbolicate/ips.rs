//! `.ips` documents rewritten in place: the JSON text is kept byte for byte except for the
//! frames that symbolicate. Those get Apple's keys — `symbol`, `symbolLocation`,
//! `sourceFile`, `sourceLine` — in the frame object's own layout (indentation, `" : "`),
//! and each inlined call becomes a frame object of its own with `"inline" : true`, placed
//! before the frame that owns the code, as Apple writes them. Panics (`bug_type` 210 …)
//! get the backtrace lines of their panic string rewritten like panic text.

use crashlog_symbols::{FrameKind, SymbolStore, Symbolication};
use serde_json::Value;

use super::json_spans::{self, Node};
use super::resolve::{FrameSite, Resolver};
use super::{Rewritten, SymbolicationOutcome, base_name, symbol_name, unsupported};
use crate::error::ParseError;
use crate::model::{Report, SourceFormat};

/// Keys Apple uses for panic text in a panic `.ips` body.
const PANIC_KEYS: [&str; 3] = ["panicString", "macOSPanicString", "string"];

pub(super) fn rewrite(
    bytes: &[u8],
    report: &Report,
    store: &SymbolStore,
) -> Result<Rewritten, ParseError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| unsupported(format!(".ips file is not UTF-8: {e}")))?;
    let bad = |e: String| unsupported(format!(".ips JSON: {e}"));
    // Header line + body, a body alone, or a lone header (some .panic files).
    let (first, after_first) = json_spans::parse_at(text, 0).map_err(bad)?;
    let rest = json_spans::skip_ws(text, after_first);
    let body = if text.as_bytes().get(rest) == Some(&b'{') {
        json_spans::parse_at(text, rest).map_err(bad)?.0
    } else {
        first
    };
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut outcome = SymbolicationOutcome::default();
    if report.format == SourceFormat::IpsPanic {
        panic_string(text, &body, report, store, &mut edits, &mut outcome);
    } else {
        crash_frames(text, &body, report, store, &mut edits, &mut outcome);
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len() + edits.len() * 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.push_str(text.get(at..start).unwrap_or(""));
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Ok(Rewritten {
        bytes: out.into_bytes(),
        outcome,
    })
}

fn panic_string(
    text: &str,
    body: &Node,
    report: &Report,
    store: &SymbolStore,
    edits: &mut Vec<(usize, usize, String)>,
    outcome: &mut SymbolicationOutcome,
) {
    let Some(node) = PANIC_KEYS.iter().find_map(|k| body.get(k)) else {
        return;
    };
    let Some(raw) = text.get(node.start()..node.end()) else {
        return;
    };
    let Ok(panic_text) = serde_json::from_str::<String>(raw) else {
        return;
    };
    let rewritten = super::text::rewrite(&panic_text, std::slice::from_ref(report), store);
    outcome.merge(rewritten.outcome);
    let new_text = String::from_utf8_lossy(&rewritten.bytes);
    if new_text != panic_text
        && let Ok(encoded) = serde_json::to_string(&new_text)
    {
        edits.push((node.start(), node.end(), encoded));
    }
}

/// What the body's `usedImages[i]` says.
fn used_image(v: &Value) -> FrameSite {
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = str_of("name")
        .or_else(|| str_of("path").and_then(|p| p.rsplit('/').next().map(str::to_owned)));
    FrameSite {
        image: name.filter(|n| !n.is_empty()),
        uuid: str_of("uuid"),
        arch: str_of("arch"),
        image_base: v.get("base").and_then(Value::as_u64),
        ..FrameSite::default()
    }
}

fn crash_frames(
    text: &str,
    body: &Node,
    report: &Report,
    store: &SymbolStore,
    edits: &mut Vec<(usize, usize, String)>,
    outcome: &mut SymbolicationOutcome,
) {
    let value_of =
        |n: &Node| -> Option<Value> { serde_json::from_str(text.get(n.start()..n.end())?).ok() };
    let images: Vec<FrameSite> = body
        .get("usedImages")
        .map(|n| {
            n.items()
                .iter()
                .map(|i| value_of(i).map(|v| used_image(&v)).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let faulting = body
        .get("faultingThread")
        .and_then(value_of)
        .and_then(|v| v.as_u64());
    let mut resolver = Resolver::new(store, report);
    let mut ctx = Ctx {
        text,
        images: &images,
        resolver: &mut resolver,
        outcome,
    };
    if let Some(threads) = body.get("threads") {
        for (i, thread) in threads.items().iter().enumerate() {
            let triggered = thread
                .get("triggered")
                .and_then(|n| text.get(n.start()..n.end()))
                == Some("true");
            let crashed = triggered || faulting == Some(i as u64);
            if let Some(frames) = thread.get("frames") {
                ctx.frames(frames, crashed, edits);
            }
        }
    }
    if let Some(leb) = body.get("lastExceptionBacktrace") {
        ctx.frames(leb, false, edits);
    }
    let problems = resolver.into_outcome();
    outcome.merge(problems);
}

struct Ctx<'a, 's> {
    text: &'a str,
    images: &'a [FrameSite],
    resolver: &'a mut Resolver<'s>,
    outcome: &'a mut SymbolicationOutcome,
}

impl Ctx<'_, '_> {
    /// Rewrite one `frames` array (one edit covering all its items, if anything changed).
    fn frames(&mut self, array: &Node, crashed: bool, edits: &mut Vec<(usize, usize, String)>) {
        let items = array.items();
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return;
        };
        // The separator between items as written (`,\n        `), else derived from the
        // whitespace before the first item.
        let sep = match items.get(1) {
            Some(second) => self
                .text
                .get(first.end()..second.start())
                .unwrap_or(",")
                .to_owned(),
            None => format!(
                ",{}",
                self.text
                    .get(array.start() + 1..first.start())
                    .unwrap_or("")
            ),
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        let mut pending: Vec<String> = Vec::new();
        let mut changed = false;
        let mut real = 0usize;
        for item in items {
            let raw = self.text.get(item.start()..item.end()).unwrap_or("");
            let value: Option<Value> = serde_json::from_str(raw).ok();
            let is_inline = value
                .as_ref()
                .and_then(|v| v.get("inline"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if is_inline {
                pending.push(raw.to_owned());
                continue;
            }
            let kind = if crashed && real == 0 {
                FrameKind::Pc
            } else {
                FrameKind::ReturnAddress
            };
            real += 1;
            self.outcome.frames += 1;
            let sym = value.as_ref().and_then(|v| self.symbolicate(v, kind));
            match sym {
                Some(sym) => {
                    pending.clear();
                    changed = true;
                    self.outcome.symbolicated += 1;
                    self.outcome.inlined_added += sym.frames.len().saturating_sub(1);
                    for (k, f) in sym.frames.iter().enumerate() {
                        out.push(frame_object(self.text, item, f, k + 1 < sym.frames.len()));
                    }
                }
                None => {
                    if self.resolver.last_was_not_found() {
                        self.outcome.without_symbols += 1;
                    }
                    out.append(&mut pending);
                    out.push(raw.to_owned());
                }
            }
        }
        out.append(&mut pending);
        if changed {
            edits.push((first.start(), last.end(), out.join(&sep)));
        }
    }

    fn symbolicate(&mut self, frame: &Value, kind: FrameKind) -> Option<Symbolication> {
        let index = frame.get("imageIndex").and_then(Value::as_u64)?;
        let offset = frame.get("imageOffset").and_then(Value::as_u64)?;
        let mut site = self.images.get(usize::try_from(index).ok()?)?.clone();
        site.image_offset = Some(offset);
        site.address = site.image_base.and_then(|b| b.checked_add(offset));
        self.resolver.complete(&mut site);
        self.resolver.symbolicate(&site, kind)
    }
}

/// A frame object in the original object's layout with the symbol keys set.
fn frame_object(
    text: &str,
    original: &Node,
    f: &crashlog_symbols::SymbolFrame,
    inline: bool,
) -> String {
    let Node::Object { members, end, .. } = original else {
        return String::new();
    };
    let get = |a: usize, b: usize| text.get(a..b).unwrap_or("");
    let (open_ws, colon, member_sep, close_ws) = match (members.first(), members.last()) {
        (Some(m0), Some(ml)) => (
            get(original.start() + 1, m0.key_start),
            get(m0.key_end, m0.value.start()),
            members
                .get(1)
                .map_or(", ", |m1| get(m0.value.end(), m1.key_start)),
            get(ml.value.end(), end.saturating_sub(1)),
        ),
        _ => ("", ":", ",", ""),
    };
    let mut fields: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m.key.clone(),
                get(m.value.start(), m.value.end()).to_owned(),
            )
        })
        .collect();
    let mut set =
        |key: &str, value: Option<String>| match (fields.iter().position(|(k, _)| k == key), value)
        {
            (Some(i), Some(v)) => fields[i].1 = v,
            (Some(i), None) => {
                fields.remove(i);
            }
            (None, Some(v)) => fields.push((key.to_owned(), v)),
            (None, None) => {}
        };
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    if let Some(name) = symbol_name(f) {
        set("symbol", Some(json(name)));
    }
    set("symbolLocation", f.symbol_offset.map(|o| o.to_string()));
    set("sourceFile", f.file.as_deref().map(|p| json(base_name(p))));
    set("sourceLine", f.line.map(|l| l.to_string()));
    set("inline", inline.then(|| "true".to_owned()));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}{colon}{v}", json(k)))
        .collect();
    format!("{{{open_ws}{}{close_ws}}}", body.join(member_sep))
}

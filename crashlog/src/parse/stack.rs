//! Pasted stacks: one frame per line, all frames on one line, arrow chains
//! (`a -> b -> c`, `a <- b`), LLDB `bt` output; with or without image names, addresses
//! and offsets.

use crate::error::ParseError;
use crate::model::{Frame, Report, ReportKind, SourceFormat, Thread};
use crate::parse::text::{dec, frame_rest, hex0x, non_empty};

const ARROWS: [&str; 6] = [" -> ", " <- ", " → ", " ← ", " --> ", " <-- "];

/// Whether a line is an arrow chain of at least two elements (and not a numbered frame
/// with a trailing `<- crash` note).
pub(crate) fn is_arrow_chain(line: &str) -> bool {
    let t = line.trim();
    if starts_with_index(t) || (embedded_frames(t).is_some() && is_frame_line(t)) {
        return false;
    }
    ARROWS.iter().any(|a| t.contains(a))
}

fn starts_with_index(t: &str) -> bool {
    let end = t
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(t.len());
    end > 0 && end <= 4 && t[end..].starts_with([' ', '\t'])
}

/// The part of a prose line that starts a numbered frame run: `Crash thread: 0 libquic.dylib
/// quic_conn_send_packet + 144 1 libquic.dylib …` → from `0 libquic…`. Needs tokens `0`, `1`
/// and `2` in order.
pub(crate) fn embedded_frames(t: &str) -> Option<&str> {
    let mut expect = 0u32;
    let mut start = None;
    let mut pos = 0;
    for tok in t.split_whitespace() {
        let at = pos + t[pos..].find(tok)?;
        pos = at + tok.len();
        if dec(tok) == Some(u64::from(expect)) {
            if expect == 0 {
                start = Some(at);
            }
            expect += 1;
            if expect == 3 {
                return start.map(|s| &t[s..]);
            }
        }
    }
    None
}

/// Whether a line looks like one pasted frame (for detection).
pub(crate) fn is_frame_line(line: &str) -> bool {
    let t = line.trim();
    if !starts_with_index(t)
        && let Some(run) = embedded_frames(t)
    {
        return run.contains(" + ") || run.contains(".dylib") || run.contains(" 0x");
    }
    if t.starts_with("frame #") || t.starts_with("* frame #") {
        return true;
    }
    if !starts_with_index(t) {
        return false;
    }
    let rest = t.split_whitespace().skip(1).collect::<Vec<_>>();
    !rest.is_empty()
        && rest.len() <= 40
        && rest.iter().any(|tok| {
            tok.starts_with("0x")
                || tok.contains(".dylib")
                || *tok == "+"
                || tok.contains('_')
                || tok.contains("::")
        })
}

/// Parse a pasted stack. Each arrow chain and each numbered run starting again at 0
/// becomes its own thread.
pub(crate) fn parse_stack_text(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let mut r = Report::new(ReportKind::Stack, SourceFormat::PastedStack);
    let mut numbered = String::new();
    let mut unnumbered: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if is_arrow_chain(t) {
            if let Some(th) = arrow_chain(t) {
                push_thread(&mut r, th);
            }
        } else if t.starts_with("frame #")
            || t.starts_with("* frame #")
            || t.starts_with("thread #")
            || t.starts_with("* thread #")
        {
            if let Some(f) = lldb_frame(t) {
                unnumbered.push(f);
            }
        } else if starts_with_index(t) {
            numbered.push_str(t);
            numbered.push(' ');
        } else if let Some(run) = embedded_frames(t).filter(|_| is_frame_line(t)) {
            numbered.push_str(run);
            numbered.push(' ');
        } else if let Some(f) = bare_frame(t) {
            unnumbered.push(f);
        }
    }
    for th in numbered_threads(&numbered) {
        push_thread(&mut r, th);
    }
    if !unnumbered.is_empty() {
        for (i, f) in unnumbered.iter_mut().enumerate() {
            f.index = i as u32;
        }
        push_thread(
            &mut r,
            Thread {
                frames: unnumbered,
                ..Thread::default()
            },
        );
    }
    if r.threads.is_empty() {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "stack",
            hint: "no stack frames found".into(),
        });
    }
    if let Some(t) = r.threads.first_mut() {
        t.crashed = true;
        r.crashed_thread = Some(t.index);
    }
    r.resolve_frames();
    Ok(r)
}

fn push_thread(r: &mut Report, mut th: Thread) {
    if r.threads.len() < super::MAX_THREADS && !th.frames.is_empty() {
        th.index = r.threads.len() as u32;
        r.threads.push(th);
    }
}

/// Split the numbered text (possibly all on one line) into frames at tokens equal to the
/// next expected index; a new run at 0 starts a new thread.
fn numbered_threads(text: &str) -> Vec<Thread> {
    let mut threads = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut cur_index: Option<u32> = None;
    let mut prev_plus = false;
    // `… [inlined]` then the same index again: the next frame of one inline chain
    // (symbolicated reports), not a new thread.
    let mut prev_inlined = false;
    let flush = |idx: Option<u32>, toks: &mut Vec<&str>, frames: &mut Vec<Frame>| {
        if let Some(i) = idx
            && let Some(f) = frame_from_tokens(i, toks)
            && frames.len() < super::MAX_FRAMES
        {
            frames.push(f);
        }
        toks.clear();
    };
    for tok in text.split_whitespace() {
        let as_idx = if prev_plus {
            None
        } else {
            dec(tok).and_then(|v| u32::try_from(v).ok())
        };
        let expected = cur_index.map_or(0, |i| i + 1);
        match as_idx {
            Some(v) if prev_inlined && Some(v) == cur_index => {
                flush(cur_index, &mut cur, &mut frames);
            }
            Some(v) if cur_index.is_none() || v == expected || (v == 0 && !cur.is_empty()) => {
                flush(cur_index, &mut cur, &mut frames);
                if v == 0 && !frames.is_empty() {
                    threads.push(Thread {
                        frames: std::mem::take(&mut frames),
                        ..Thread::default()
                    });
                }
                cur_index = Some(v);
            }
            _ => cur.push(tok),
        }
        prev_plus = tok == "+";
        prev_inlined = tok == "[inlined]";
    }
    flush(cur_index, &mut cur, &mut frames);
    if !frames.is_empty() {
        threads.push(Thread {
            frames,
            ..Thread::default()
        });
    }
    threads
}

fn is_note(tok: &str) -> bool {
    matches!(tok, "<-" | "←" | "<--" | "<==" | "<—" | "//" | "#")
}

fn frame_from_tokens(index: u32, toks: &[&str]) -> Option<Frame> {
    let end = toks.iter().position(|t| is_note(t)).unwrap_or(toks.len());
    let toks = &toks[..end];
    if toks.is_empty() {
        return None;
    }
    let mut f = Frame {
        index,
        ..Frame::default()
    };
    if let Some(ai) = toks.iter().position(|t| hex0x(t).is_some()) {
        f.address = hex0x(toks[ai]);
        let image = toks[..ai].join(" ");
        f.image = non_empty(&image).filter(|i| i != "???");
        frame_rest(&toks[ai + 1..].join(" "), &mut f);
        return Some(f);
    }
    if toks.len() >= 2 && toks[1] != "+" {
        f.image = non_empty(toks[0]).filter(|i| i != "???");
        frame_rest(&toks[1..].join(" "), &mut f);
    } else {
        frame_rest(&toks.join(" "), &mut f);
    }
    Some(f)
}

/// `libquic.dylib quic_conn_send_packet + 144`, `symbol (in Image) + 12`, `Image\`symbol`,
/// or a bare symbol.
fn bare_frame(t: &str) -> Option<Frame> {
    let t = t.trim_start_matches(['-', '*', '•']).trim();
    if t.is_empty() || t.len() > 1024 || t.ends_with(':') || t.split_whitespace().count() > 12 {
        return None;
    }
    let mut f = Frame::default();
    if let Some((img, sym)) = t.split_once('`') {
        f.image = non_empty(img);
        frame_rest(sym, &mut f);
        return Some(f);
    }
    if let Some(open) = t.find(" (in ") {
        let close = open + t[open..].find(')')?;
        f.image = non_empty(&t[open + 5..close]);
        let rest = format!("{}{}", &t[..open], &t[close + 1..]);
        frame_rest(&rest, &mut f);
        return Some(f);
    }
    let toks: Vec<&str> = t.split_whitespace().collect();
    let first = toks.first()?;
    let looks_image = first.ends_with(".dylib")
        || first.ends_with(".framework")
        || first.ends_with(".kext")
        || (toks.len() >= 2
            && toks[1] != "+"
            && first.starts_with(|c: char| c.is_ascii_uppercase())
            && first
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.'));
    if looks_image && toks.len() >= 2 {
        return frame_from_tokens(0, &toks);
    }
    // Reject prose: a frame is one symbol, optionally with `+ off` and `(file:line)`.
    if toks.len() > 1 && !t.contains(" + ") && !t.ends_with(')') {
        return None;
    }
    frame_rest(t, &mut f);
    f.symbol.is_some().then_some(f)
}

/// `* frame #0: 0x0000000100003f50 a.out\`main at main.c:5:3`
fn lldb_frame(t: &str) -> Option<Frame> {
    let t = t.trim_start_matches('*').trim();
    let rest = t.strip_prefix("frame #")?;
    let (idx, rest) = rest.split_once(':')?;
    let mut f = Frame {
        index: dec(idx.trim()).and_then(|v| u32::try_from(v).ok())?,
        ..Frame::default()
    };
    let rest = rest.trim();
    let (addr, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    f.address = hex0x(addr);
    let (loc, file) = match rest.rsplit_once(" at ") {
        Some((l, file)) => (l, Some(file)),
        None => (rest, None),
    };
    match loc.split_once('`') {
        Some((img, sym)) => {
            f.image = non_empty(img);
            frame_rest(sym, &mut f);
        }
        None => f.image = non_empty(loc),
    }
    if let Some(file) = file {
        let mut parts = file.split(':');
        f.file = parts.next().and_then(non_empty);
        f.line = parts
            .next()
            .and_then(dec)
            .and_then(|l| u32::try_from(l).ok());
    }
    Some(f)
}

fn arrow_chain(t: &str) -> Option<Thread> {
    // `a -> b -> c`: caller first, so the innermost frame is the last element.
    let forward = t.contains(" -> ") || t.contains(" → ") || t.contains(" --> ");
    let mut parts: Vec<&str> = vec![t];
    for a in ARROWS {
        parts = parts.iter().flat_map(|p| p.split(a)).collect();
    }
    if forward {
        parts.reverse();
    }
    let mut frames = Vec::new();
    for p in parts.iter().take(super::MAX_FRAMES) {
        let p = p.trim().trim_matches('`');
        if p.is_empty() {
            continue;
        }
        let mut f = Frame {
            index: frames.len() as u32,
            ..Frame::default()
        };
        // `symbol (image)` or `symbol`
        let (sym, img) = match (p.ends_with(')'), p.rfind(" (")) {
            (true, Some(open)) => (&p[..open], Some(&p[open + 2..p.len() - 1])),
            _ => (p, None),
        };
        f.image = img.and_then(non_empty);
        frame_rest(sym, &mut f);
        if f.symbol.is_some() {
            frames.push(f);
        }
    }
    (frames.len() >= 2).then(|| Thread {
        frames,
        ..Thread::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_LINE: &str = "0 libquic.dylib quic_conn_send_packet + 144 1 libquic.dylib quic_conn_continue_sending + 424 2 libquic.dylib __quic_conn_send_frames_for_key_state_block_invoke_2 + 1244 3 Network nw_protocol_data_access_buffer + 180 ← crash 4 Network nw_protocol_data_copy_buffer 5 Network nw_endpoint_flow_output_frames";

    #[test]
    fn all_frames_on_one_line() {
        let r = parse_stack_text(ONE_LINE, 1).unwrap();
        let f = &r.threads[0].frames;
        assert_eq!(f.len(), 6);
        assert_eq!(f[3].image.as_deref(), Some("Network"));
        assert_eq!(
            f[3].symbol.as_deref(),
            Some("nw_protocol_data_access_buffer")
        );
        assert_eq!(f[3].symbol_offset, Some(180));
        assert_eq!(f[4].symbol.as_deref(), Some("nw_protocol_data_copy_buffer"));
        assert_eq!(f[2].symbol_offset, Some(1244));
    }

    #[test]
    fn arrow_chains_both_directions() {
        let r = parse_stack_text(
            "libSystem_atfork_prepare -> nw_path_prepare_fork -> _os_unfair_lock_lock_slow",
            1,
        )
        .unwrap();
        let f = &r.threads[0].frames;
        assert_eq!(f[0].symbol.as_deref(), Some("_os_unfair_lock_lock_slow"));
        assert_eq!(f[2].symbol.as_deref(), Some("libSystem_atfork_prepare"));
        let r = parse_stack_text("_os_log_preferences_refresh (libsystem_trace.dylib) <- os_log_type_enabled <- getaddrinfo", 1).unwrap();
        let f = &r.threads[0].frames;
        assert_eq!(f[0].symbol.as_deref(), Some("_os_log_preferences_refresh"));
        assert_eq!(f[0].image.as_deref(), Some("libsystem_trace.dylib"));
        assert_eq!(f[2].symbol.as_deref(), Some("getaddrinfo"));
    }

    #[test]
    fn lldb_and_bare() {
        let r = parse_stack_text("* frame #0: 0x0000000100003f50 a.out`main at main.c:5:3\n  frame #1: 0x00007fff6c8a2cc9 libdyld.dylib`start + 1\n", 1).unwrap();
        let f = &r.threads[0].frames;
        assert_eq!(f[0].symbol.as_deref(), Some("main"));
        assert_eq!(f[0].file.as_deref(), Some("main.c"));
        assert_eq!(f[1].symbol_offset, Some(1));
        let r = parse_stack_text(
            "quic_conn_send_packet + 144\nNetwork nw_protocol_data_copy_buffer\n",
            1,
        )
        .unwrap();
        assert_eq!(r.threads[0].frames.len(), 2);
        assert_eq!(r.threads[0].frames[1].image.as_deref(), Some("Network"));
        assert!(parse_stack_text("just some prose here without frames", 1).is_err());
    }
}

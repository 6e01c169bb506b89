//! Small text helpers shared by the text parsers: hex/decimal fields, `name [pid]`,
//! `Key: value` headers and frame lines.

use crate::model::Frame;

/// Parse `0x1f`/`0X1f` (prefix required).
pub(crate) fn hex0x(s: &str) -> Option<u64> {
    let d = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if d.is_empty() || d.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for b in d.bytes() {
        let n = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(n);
    }
    Some(v)
}

/// Parse a decimal `u64` (all digits, no sign).
pub(crate) fn dec(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Leading decimal digits of `s` (`"5  Dispatch queue"` → 5).
pub(crate) fn leading_dec(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    dec(&s[..end])
}

/// `name [123]` → (`name`, 123). Without a bracketed pid the whole string is the name.
pub(crate) fn name_pid(s: &str) -> (Option<String>, Option<u32>) {
    let s = s.trim();
    if let Some(open) = s.rfind(" [")
        && let Some(inner) = s[open + 2..].strip_suffix(']')
    {
        let name = s[..open].trim();
        let pid = dec(inner).and_then(|p| u32::try_from(p).ok());
        if pid.is_some() {
            return (non_empty(name), pid);
        }
    }
    if let Some(open) = s.rfind('[')
        && let Some(inner) = s[open + 1..].strip_suffix(']')
        && let Some(pid) = dec(inner).and_then(|p| u32::try_from(p).ok())
    {
        return (non_empty(s[..open].trim()), Some(pid));
    }
    (non_empty(s), None)
}

/// `Some(s.to_string())` unless `s` is empty (after trimming).
pub(crate) fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Split a `Key: value` header line. The key must be short, start with a letter and hold
/// no `:`; the value may be empty.
pub(crate) fn key_value(line: &str) -> Option<(&str, &str)> {
    let colon = line.find(':')?;
    let key = line[..colon].trim();
    if key.is_empty() || key.len() > 48 || !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = &line[colon + 1..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((key, rest.trim()))
}

/// Whether a token is an image name placeholder.
fn is_unknown_image(s: &str) -> bool {
    s == "???" || s == "?" || s.is_empty()
}

/// Parse `(file.m:16)` / `(file.c:16:3)` into file and line.
pub(crate) fn file_line(s: &str) -> Option<(String, u32)> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let inner = inner.strip_prefix("in ").map_or(inner, |_| "");
    let mut parts = inner.rsplitn(3, ':');
    let last = parts.next()?;
    let prev = parts.next()?;
    let (file, line) = match (dec(last), dec(prev)) {
        (Some(_), Some(l)) => (parts.next()?, l),
        (Some(l), None) => (inner.rsplit_once(':')?.0, l),
        _ => return None,
    };
    let line = u32::try_from(line).ok()?;
    (!file.is_empty() && !file.contains(' ')).then(|| (file.to_string(), line))
}

/// Parse what follows the address of a frame: `0xbase + 123`, `symbol + 123`,
/// `symbol + 123 (file.m:16)`, `symbol (file.m:16)` or `symbol`. Trailing annotations
/// (`<- crash`) after the offset are dropped.
pub(crate) fn frame_rest(rest: &str, frame: &mut Frame) {
    let mut rest = rest.trim();
    // `fold16 (tunnel.c:5) [inlined]`: an inlined frame (symbolicated text reports).
    if let Some(r) = rest.strip_suffix("[inlined]") {
        frame.inline = true;
        rest = r.trim_end();
    }
    if rest.is_empty() {
        return;
    }
    // Unsymbolicated: `0x7fff61bc6000 + 3114`.
    if let Some((base, off)) = rest.split_once(" + ")
        && let Some(b) = hex0x(base.trim())
    {
        let off_tok = off.split_whitespace().next().unwrap_or("");
        if let Some(o) = dec(off_tok).or_else(|| hex0x(off_tok)) {
            frame.image_base = Some(b);
            frame.image_offset = Some(o);
            return;
        }
    }
    // `symbol + 123 …`: the last " + <number>" separates symbol and offset.
    let mut sym_end = rest.len();
    let mut after = "";
    let mut search = rest;
    let mut consumed = 0;
    while let Some(i) = search.find(" + ") {
        let cand = &search[i + 3..];
        let tok_end = cand.find(char::is_whitespace).unwrap_or(cand.len());
        let tok = &cand[..tok_end];
        if let Some(o) = dec(tok).or_else(|| hex0x(tok)) {
            sym_end = consumed + i;
            frame.symbol_offset = Some(o);
            after = cand[tok_end..].trim();
        }
        consumed += i + 3;
        search = &search[i + 3..];
    }
    let mut symbol = rest[..sym_end].trim();
    if frame.symbol_offset.is_none() {
        // `symbol (file:line)` without offset.
        if let Some(open) = symbol.rfind(" (")
            && let Some((f, l)) = file_line(&symbol[open + 1..])
        {
            frame.file = Some(f);
            frame.line = Some(l);
            symbol = symbol[..open].trim();
        }
    } else if let Some((f, l)) = paren_file_line(after) {
        frame.file = Some(f);
        frame.line = Some(l);
    }
    if !symbol.is_empty() && symbol != "???" {
        frame.symbol = Some(symbol.to_string());
    }
}

/// The first `(file:line)` group in `s`.
fn paren_file_line(s: &str) -> Option<(String, u32)> {
    let open = s.find('(')?;
    let close = open + s[open..].find(')')?;
    file_line(&s[open..=close])
}

/// Find the first `0x…` token in `s` that is followed by whitespace or the end; returns
/// (start, end, value).
fn find_addr_token(s: &str) -> Option<(usize, usize, u64)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i + 2 < bytes.len() + 1 {
        let at_start = i == 0 || bytes[i - 1].is_ascii_whitespace();
        if at_start && bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X'))
        {
            let end = s[i..].find(char::is_whitespace).map_or(s.len(), |e| i + e);
            if let Some(v) = hex0x(&s[i..end]) {
                return Some((i, end, v));
            }
        }
        i += 1;
    }
    None
}

/// Parse an indexed frame line with an address:
/// `12  libdyld.dylib   0x00007fff61a8e085 start + 0` (image names may hold spaces; tabs
/// allowed). Returns `None` when the line is not of that shape.
pub(crate) fn crash_frame(line: &str) -> Option<Frame> {
    let t = line.trim_start();
    let idx_end = t.bytes().position(|b| !b.is_ascii_digit())?;
    if idx_end == 0 || idx_end > 6 {
        return None;
    }
    let index = u32::try_from(dec(&t[..idx_end])?).ok()?;
    let rest = &t[idx_end..];
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (a_start, a_end, addr) = find_addr_token(rest)?;
    let image = rest[..a_start].trim();
    let mut frame = Frame {
        index,
        image: (!is_unknown_image(image)).then(|| image.to_string()),
        address: Some(addr),
        ..Frame::default()
    };
    frame_rest(&rest[a_end..], &mut frame);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_with_spaces_in_image() {
        let f = crash_frame(
            "0   App Namespace                       0x0000000102268e70 0x10211c000 + 1363568",
        )
        .unwrap();
        assert_eq!(f.image.as_deref(), Some("App Namespace"));
        assert_eq!(f.address, Some(0x102268e70));
        assert_eq!(f.image_base, Some(0x10211c000));
        assert_eq!(f.image_offset, Some(1363568));
        assert_eq!(f.symbol, None);
    }

    #[test]
    fn frame_symbolicated_with_tab_and_file() {
        let f = crash_frame("4   kaki                          \t0x0000000100081a1c main + 108")
            .unwrap();
        assert_eq!(f.image.as_deref(), Some("kaki"));
        assert_eq!(f.symbol.as_deref(), Some("main"));
        assert_eq!(f.symbol_offset, Some(108));
        let f = crash_frame(
            "13  YetanotherMac                       0x00000000000ea004 main (main.m:16)",
        )
        .unwrap();
        assert_eq!(f.symbol.as_deref(), Some("main"));
        assert_eq!(f.file.as_deref(), Some("main.m"));
        assert_eq!(f.line, Some(16));
        let f = crash_frame("1   ch.pitaya.xcdyoutubekit             0x00000001018b8cad -[XCDYouTubePlayerScript unscrambleSignature:] + 285 (XCDYouTubePlayerScript.m:42)").unwrap();
        assert_eq!(
            f.symbol.as_deref(),
            Some("-[XCDYouTubePlayerScript unscrambleSignature:]")
        );
        assert_eq!(f.symbol_offset, Some(285));
        assert_eq!(f.file.as_deref(), Some("XCDYouTubePlayerScript.m"));
        assert_eq!(f.line, Some(42));
    }

    #[test]
    fn unknown_image() {
        let f = crash_frame("2   ???                                 0x0000000054485244 0x0 + 0")
            .unwrap();
        assert_eq!(f.image, None);
        assert_eq!(f.image_base, Some(0));
    }

    #[test]
    fn not_frames() {
        assert!(crash_frame("Thread 0 Crashed:").is_none());
        assert!(crash_frame("0 no address here").is_none());
        assert!(crash_frame("").is_none());
    }

    #[test]
    fn helpers() {
        assert_eq!(name_pid("launchd [1]"), (Some("launchd".into()), Some(1)));
        assert_eq!(
            name_pid("Spotify Helper[69038]"),
            (Some("Spotify Helper".into()), Some(69038))
        );
        assert_eq!(name_pid("exc handler"), (Some("exc handler".into()), None));
        assert_eq!(
            key_value("Process:         kaki [12225]"),
            Some(("Process", "kaki [12225]"))
        );
        assert_eq!(key_value("http://x"), None);
        assert_eq!(file_line("(main.m:16)"), Some(("main.m".into(), 16)));
        assert_eq!(file_line("(a.c:16:3)"), Some(("a.c".into(), 16)));
        assert_eq!(file_line("(in kernel)"), None);
    }
}

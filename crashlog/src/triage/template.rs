//! Message templates: what stays the same across builds and runs.
//!
//! syzkaller-style replacements ([`template`]): hex addresses → `ADDR` (short hex →
//! `NUM`), decimal numbers → `NUM`, IPv4/IPv6 addresses → `IP`, UUIDs → `UUID`,
//! `@file.c:646` → `@file.c:LINE`, `/…/BuildRoots/…/skmem_slab.c` → `skmem_slab.c`,
//! `xnu-12377.91.3~2` → `xnu-VER`; whitespace squeezed; at most [`MAX_TEMPLATE`] bytes.

/// Longest template kept (bytes, cut at a character boundary).
pub const MAX_TEMPLATE: usize = 240;

/// Reduce a panic or log message to its template.
///
/// ```
/// use crashlog::triage::template::template;
/// assert_eq!(
///     template("skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646"),
///     "skmem_slab_free_locked: attempt to free invalid or already-freed obj ADDR on skm ADDR @skmem_slab.c:LINE"
/// );
/// assert_eq!(template("(402262746): No more valid control units"), "(NUM): No more valid control units");
/// ```
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_TEMPLATE + 8));
    let b = message.as_bytes();
    let mut i = 0;
    let mut last_space = true;
    while i < b.len() && out.len() < MAX_TEMPLATE {
        let c = b[i];
        if c.is_ascii_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            i += 1;
            continue;
        }
        last_space = false;
        if c == b'/' && is_path_start(b, i) {
            // A path: keep only its last component (BuildRoots, home dirs, bundle paths).
            let end = token_end(b, i, |c| !c.is_ascii_whitespace() && c != b':' && c != b')');
            let path = &message[i..end];
            let base = path.rsplit('/').next().unwrap_or(path);
            if path.contains("/BuildRoots/") || path.matches('/').count() >= 2 {
                out.push_str(base);
            } else {
                out.push_str(path);
            }
            i = end;
            continue;
        }
        if c == b':' && out.ends_with(|ch: char| ch.is_ascii_alphanumeric()) && is_file_ext(&out) {
            // `skmem_slab.c:646` → `skmem_slab.c:LINE`.
            let d = digits(b, i + 1);
            if d > 0 {
                out.push_str(":LINE");
                i += 1 + d;
                continue;
            }
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            let end = token_end(b, i, |c| c.is_ascii_alphanumeric() || c == b'_');
            // IPv4 / IPv6 / UUID look-ahead from a token start.
            if let Some(len) = ipv4_len(b, i) {
                out.push_str("IP");
                i += len;
                continue;
            }
            if let Some(len) = uuid_len(b, i) {
                out.push_str("UUID");
                i += len;
                continue;
            }
            if let Some(len) = ipv6_len(b, i) {
                out.push_str("IP");
                i += len;
                continue;
            }
            let tok = &message[i..end];
            out.push_str(&token(tok));
            i = end;
            // `xnu-12377.91.3~2`: a version after `xnu-`.
            if tok == "xnu" && b.get(i) == Some(&b'-') {
                let vend = token_end(b, i + 1, |c| {
                    c.is_ascii_alphanumeric() || c == b'.' || c == b'~'
                });
                out.push_str("-VER");
                i = vend;
            }
            continue;
        }
        if c == b':'
            && b.get(i + 1) == Some(&b':')
            && let Some(len) = ipv6_len(b, i)
        {
            out.push_str("IP");
            i += len;
            continue;
        }
        // Any other byte: copy the whole UTF-8 character.
        let ch_len = utf8_len(c);
        let end = (i + ch_len).min(b.len());
        out.push_str(message.get(i..end).unwrap_or("?"));
        i = end;
    }
    while out.ends_with(' ') {
        out.pop();
    }
    if out.len() > MAX_TEMPLATE {
        let mut cut = MAX_TEMPLATE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn token_end(b: &[u8], start: usize, keep: impl Fn(u8) -> bool) -> usize {
    let mut j = start;
    while j < b.len() && keep(b[j]) {
        j += 1;
    }
    j.max(start + 1).min(b.len())
}

fn digits(b: &[u8], start: usize) -> usize {
    b.get(start..)
        .map(|s| s.iter().take_while(|c| c.is_ascii_digit()).count())
        .unwrap_or(0)
}

fn is_path_start(b: &[u8], i: usize) -> bool {
    let prev_ok = i == 0 || matches!(b[i - 1], b' ' | b'(' | b'"' | b'\'' | b'=' | b'[' | b'@');
    let next_ok = b
        .get(i + 1)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.');
    prev_ok && next_ok
}

fn is_file_ext(out: &str) -> bool {
    const EXTS: [&str; 10] = [
        ".c", ".cc", ".cpp", ".h", ".m", ".mm", ".swift", ".rs", ".s", ".hpp",
    ];
    EXTS.iter().any(|e| out.ends_with(e))
}

/// One identifier-like token: numbers and hex become placeholders, identifiers stay.
fn token(tok: &str) -> String {
    let b = tok.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return "NUM".into();
    }
    if let Some(hex) = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X"))
        && !hex.is_empty()
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
    {
        return if hex.len() >= 5 { "ADDR" } else { "NUM" }.into();
    }
    // Bare hex hashes (`4f83d5c8`) with at least one digit and one letter.
    if b.len() >= 8
        && b.iter().all(u8::is_ascii_hexdigit)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        && b.iter().all(|c| !c.is_ascii_uppercase())
    {
        return "ADDR".into();
    }
    // One letter followed by digits: connection / object ids (`C513`).
    if b.len() >= 2 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit) {
        return format!("{}NUM", b[0] as char);
    }
    // Digits followed by a unit (`512ms`, `12K`) keep the unit.
    let d = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if d > 0 && b[d..].iter().all(u8::is_ascii_alphabetic) && b.len() - d <= 3 {
        return format!("NUM{}", &tok[d..]);
    }
    tok.to_string()
}

fn ipv4_len(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for part in 0..4 {
        let d = digits(b, j);
        if d == 0 || d > 3 {
            return None;
        }
        j += d;
        if part < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    // Not a longer dotted version string (`1.2.3.4.5`).
    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(j - i)
}

fn uuid_len(b: &[u8], i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut j = i;
    for (g, len) in GROUPS.iter().enumerate() {
        let s = b.get(j..j + len)?;
        if !s.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        j += len;
        if g < 4 {
            if b.get(j) != Some(&b'-') {
                return None;
            }
            j += 1;
        }
    }
    Some(j - i)
}

/// `fe80::3418:bbff:fe28:6d46`, `2001:db8::1`, `::1`: hex groups with `::` or 7 colons.
fn ipv6_len(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut colons = 0;
    let mut double = false;
    while j < b.len() && (b[j].is_ascii_hexdigit() || b[j] == b':') {
        if b[j] == b':' {
            colons += 1;
            if b.get(j + 1) == Some(&b':') {
                double = true;
            }
        }
        j += 1;
    }
    // Trailing `%scope` (`fe80::1%en0`).
    if j > i && b.get(j) == Some(&b'%') {
        j = token_end(b, j + 1, |c| c.is_ascii_alphanumeric());
    }
    let groups_ok = b[i..j]
        .split(|c| *c == b':')
        .all(|g| g.len() <= 4 || g.contains(&b'%'));
    let has_hex = b[i..j].iter().any(u8::is_ascii_hexdigit);
    (has_hex && ((double && colons >= 2) || colons == 7))
        .then_some(j - i)
        .filter(|_| groups_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_templates() {
        assert_eq!(
            template(
                "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xfffffe29e1604600 on skm 0xfffffe2518aaa200 @/AppleInternal/Library/BuildRoots/4e1b9a2c-1/Library/Caches/com.apple.xbs/Sources/xnu/bsd/skywalk/mem/skmem_slab.c:812"
            ),
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj ADDR on skm ADDR @skmem_slab.c:LINE"
        );
        assert_eq!(
            template("os_refcnt: underflow (rc=0x0, grp=0xfffffe1234567890) xnu-12377.91.3~2"),
            "os_refcnt: underflow (rc=NUM, grp=ADDR) xnu-VER"
        );
        assert_eq!(
            template(
                "skmem_cache_destroy: 'flow_entry' (0xfffffe2518aaa200) not empty (12 unfreed)"
            ),
            "skmem_cache_destroy: 'flow_entry' (ADDR) not empty (NUM unfreed)"
        );
    }

    #[test]
    fn log_templates() {
        assert_eq!(
            template(
                "Failed to update nan0 IPv6 address to [fe80::3418:bbff:fe28:6d46] (from [fe80::1])"
            ),
            "Failed to update nan0 IPv6 address to [IP] (from [IP])"
        );
        assert_eq!(
            template(
                "nw_connection_report_state [C513] reporting state waiting with error: [12: Cannot allocate memory] to 10.0.0.1"
            ),
            "nw_connection_report_state [CNUM] reporting state waiting with error: [NUM: Cannot allocate memory] to IP"
        );
        assert_eq!(
            template("flow 5A1E0000-0000-4001-8000-000000000001  hash=4f83d5c8"),
            "flow UUID hash=ADDR"
        );
        assert_eq!(template("Spotify Helper[69038]"), "Spotify Helper[NUM]");
        assert_eq!(template("ipsec1 nan0 v1.2.3"), "ipsec1 nan0 v1.NUM.NUM");
    }

    #[test]
    fn hostile_input_is_bounded() {
        let long = "é0x1 ".repeat(10_000);
        let t = template(&long);
        assert!(t.len() <= MAX_TEMPLATE);
        assert_eq!(template(""), "");
        assert_eq!(template("::"), "::");
        assert_eq!(template("/"), "/");
        assert_eq!(template("a:"), "a:");
    }
}

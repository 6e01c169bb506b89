//! Timestamp scanning for log lines: byte-level, no allocation.

use crate::model::LogTime;

#[inline]
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `HH:MM:SS[.fraction]` at `at`; returns the time fields and the end position.
fn clock(b: &[u8], at: usize, t: &mut LogTime) -> Option<usize> {
    let h = digits(b, at, 2)?;
    if b.get(at + 2) != Some(&b':') {
        return None;
    }
    let m = digits(b, at + 3, 2)?;
    if b.get(at + 5) != Some(&b':') {
        return None;
    }
    let s = digits(b, at + 6, 2)?;
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    t.hour = h as u8;
    t.minute = m as u8;
    t.second = s as u8;
    let mut i = at + 8;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        let mut nanos = 0u32;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        let n = (i - start).min(9);
        t.nanos = nanos * 10u32.pow(9 - n as u32);
    }
    Some(i)
}

/// Optional zone `+0300`, `-05:00`, `Z` at `at`.
fn zone(b: &[u8], at: usize, t: &mut LogTime) -> usize {
    match b.get(at) {
        Some(&b'Z') => {
            t.offset_minutes = Some(0);
            at + 1
        }
        Some(&c) if c == b'+' || c == b'-' => {
            let Some(h) = digits(b, at + 1, 2) else {
                return at;
            };
            let (m, end) = if b.get(at + 3) == Some(&b':') {
                match digits(b, at + 4, 2) {
                    Some(m) => (m, at + 6),
                    None => return at,
                }
            } else {
                match digits(b, at + 3, 2) {
                    Some(m) => (m, at + 5),
                    None => return at,
                }
            };
            if h > 18 || m > 59 {
                return at;
            }
            let off = (h * 60 + m) as i16;
            t.offset_minutes = Some(if c == b'-' { -off } else { off });
            end
        }
        _ => at,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.frac][zone]` (space or `T`) at the start of `b`.
pub(crate) fn datetime(b: &[u8]) -> Option<(LogTime, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let mut t = LogTime {
        year: digits(b, 0, 4)? as u16,
        month: digits(b, 5, 2)? as u8,
        day: digits(b, 8, 2)? as u8,
        ..LogTime::default()
    };
    if t.month == 0 || t.month > 12 || t.day == 0 || t.day > 31 {
        return None;
    }
    let end = clock(b, 11, &mut t)?;
    let end = zone(b, end, &mut t);
    Some((t, end))
}

/// `HH:MM:SS[.frac][zone]` at the start of `b`.
pub(crate) fn time_only(b: &[u8]) -> Option<(LogTime, usize)> {
    let mut t = LogTime::default();
    let end = clock(b, 0, &mut t)?;
    let end = zone(b, end, &mut t);
    Some((t, end))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// BSD syslog `Mon DD HH:MM:SS` (day may be space-padded) at the start of `b`.
pub(crate) fn bsd(b: &[u8]) -> Option<(LogTime, usize)> {
    let mon = b.get(0..3)?;
    let month = MONTHS.iter().position(|m| &m[..] == mon)? as u8 + 1;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (day, di) = match digits(b, i, 2) {
        Some(d) => (d, i + 2),
        None => (digits(b, i, 1)?, i + 1),
    };
    if day == 0 || day > 31 || b.get(di) != Some(&b' ') {
        return None;
    }
    let mut t = LogTime {
        month,
        day: day as u8,
        ..LogTime::default()
    };
    let end = clock(b, di + 1, &mut t)?;
    Some((t, end))
}

/// Parse our own ISO rendering back (see `LogTime`'s `Display`).
pub(crate) fn parse_iso(s: &str) -> Option<LogTime> {
    let b = s.as_bytes();
    if let Some(rest) = s.strip_prefix('T') {
        let (t, end) = time_only(rest.as_bytes())?;
        return (end == rest.len()).then_some(t);
    }
    if let Some(rest) = s.strip_prefix("--") {
        let rb = rest.as_bytes();
        let month = digits(rb, 0, 2)? as u8;
        let day = digits(rb, 3, 2)? as u8;
        let (mut t, end) = time_only(rb.get(6..)?)?;
        t.month = month;
        t.day = day;
        return (end + 6 == rb.len()).then_some(t);
    }
    let (t, end) = datetime(b)?;
    (end == b.len()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_with_micros_and_zone() {
        let (t, end) = datetime(b"2023-07-19 08:22:51.916784+0300 0x3058").unwrap();
        assert_eq!(end, 31);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2023, 7, 19, 8, 22, 51)
        );
        assert_eq!(t.nanos, 916_784_000);
        assert_eq!(t.offset_minutes, Some(180));
        let (t, _) = datetime(b"2026-05-07 19:48:34.701580-0500").unwrap();
        assert_eq!(t.offset_minutes, Some(-300));
    }

    #[test]
    fn compact_has_no_zone() {
        let (t, end) = datetime(b"2026-10-06 10:41:02.207 Df").unwrap();
        assert_eq!(end, 23);
        assert_eq!(t.nanos, 207_000_000);
        assert_eq!(t.offset_minutes, None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(datetime(b"2023-13-19 08:22:51").is_none());
        assert!(datetime(b"2023-07-19 08:22").is_none());
        assert!(datetime(b"abcd-07-19 08:22:51").is_none());
        assert!(bsd(b"Foo 11 09:21:10").is_none());
        assert!(time_only(b"9:21:10").is_none());
    }

    #[test]
    fn bsd_and_time_only() {
        let (t, end) = bsd(b"Oct 11 09:21:10 App").unwrap();
        assert_eq!((t.month, t.day, t.hour), (10, 11, 9));
        assert_eq!(end, 15);
        let (t, _) = bsd(b"Jul  1 17:38:39 x").unwrap();
        assert_eq!(t.day, 1);
        let (t, end) = time_only(b"17:11:52.481498+0200\tx").unwrap();
        assert_eq!(t.offset_minutes, Some(120));
        assert_eq!(end, 20);
    }

    #[test]
    fn iso_round_trip() {
        for s in [
            "2023-07-19T08:22:51.916784+03:00",
            "--10-11T09:21:10",
            "T17:11:52.481498+02:00",
        ] {
            let t = parse_iso(s).unwrap();
            assert_eq!(t.to_string(), s);
        }
    }
}

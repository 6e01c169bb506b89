//! `skm_mode` flags, the BSD `%b` formatter and the LP64 magazine-type table.

use std::fmt;

/// Cache mode flags, bit for bit `skm_mode` (`skmem_cache_var.h`).
///
/// `Display` renders the BSD `%b` way with [`SKM_MODE_BITS`], e.g. `12<AUDIT,DYNAMIC>`
/// (the dump prints it after a literal `0x`, as `skmem_dump` does).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mode(u32);

impl Mode {
    /// `SKM_MODE_NOMAGAZINES` (0x1): no per-thread magazines; every operation uses the slab layer.
    pub const NOMAGAZINES: Mode = Mode(0x1);
    /// `SKM_MODE_AUDIT` (0x2): per-object state, poisoning and transaction records.
    pub const AUDIT: Mode = Mode(0x2);
    /// `SKM_MODE_NOREDIRECT` (0x4): accepted and reported; has no effect in user space.
    pub const NOREDIRECT: Mode = Mode(0x4);
    /// `SKM_MODE_BATCH` (0x8): batch allocations may go to the slab layer in one lock hold.
    pub const BATCH: Mode = Mode(0x8);
    /// `SKM_MODE_DYNAMIC` (0x10): depot contention drives magazine resizing.
    pub const DYNAMIC: Mode = Mode(0x10);
    /// `SKM_MODE_CLEARONFREE` (0x20): objects are zeroed when they return to the slab layer.
    pub const CLEARONFREE: Mode = Mode(0x20);
    /// `SKM_MODE_PSEUDO` (0x40): accepted and reported (there are no regions here).
    pub const PSEUDO: Mode = Mode(0x40);
    /// `SKM_MODE_RECLAIM` (0x80): `reap_now` always purges.
    pub const RECLAIM: Mode = Mode(0x80);

    /// No flags.
    pub const fn empty() -> Mode {
        Mode(0)
    }

    /// The raw `skm_mode` value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Builds a mode from raw bits; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u32) -> Mode {
        Mode(bits & 0xff)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Mode) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of two modes.
    pub const fn union(self, other: Mode) -> Mode {
        Mode(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    pub const fn difference(self, other: Mode) -> Mode {
        Mode(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Mode {
    type Output = Mode;
    fn bitor(self, rhs: Mode) -> Mode {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Mode {
    fn bitor_assign(&mut self, rhs: Mode) {
        *self = self.union(rhs);
    }
}

/// The `%b` bit-name string of `skm_mode` (`SKM_MODE_BITS`): base 16, then bit number
/// (1-based) followed by the name.
pub const SKM_MODE_BITS: &str = "\x10\x01NOMAGAZINES\x02AUDIT\x03NOREDIRECT\x04BATCH\x05DYNAMIC\x06CLEARONFREE\x07PSEUDO\x08RECLAIM";

/// Formats `value` with a BSD kernel `%b` bit-name string: the number in the base given by
/// the first byte (8 or 16), then `<NAME,NAME>` for every set bit that has a name.
///
/// ```
/// use alloc_core::{format_bits, SKM_MODE_BITS};
/// assert_eq!(format_bits(0x12, SKM_MODE_BITS), "12<AUDIT,DYNAMIC>");
/// assert_eq!(format_bits(0, SKM_MODE_BITS), "0");
/// ```
pub fn format_bits(value: u64, bits: &str) -> String {
    let bytes = bits.as_bytes();
    let mut out = match bytes.first() {
        Some(8) => format!("{value:o}"),
        Some(10) => format!("{value}"),
        _ => format!("{value:x}"),
    };
    let mut first = true;
    let mut i = 1;
    while i < bytes.len() {
        let bit = bytes[i];
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] > 32 {
            end += 1;
        }
        let set = (1..=64).contains(&bit) && value & (1u64 << (bit - 1)) != 0;
        if set {
            out.push(if first { '<' } else { ',' });
            first = false;
            out.push_str(bits.get(start..end).unwrap_or(""));
        }
        i = end;
    }
    if !first {
        out.push('>');
    }
    out
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_bits(u64::from(self.0), SKM_MODE_BITS))
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mode(0x{})", self)
    }
}

/// One row of the magazine-type table (`struct skmem_magtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MagType {
    /// `mt_magsize`: rounds per magazine.
    pub magsize: u32,
    /// `mt_minbuf`: the type is chosen initially for chunk sizes above this.
    pub minbuf: usize,
    /// `mt_maxbuf`: resizing stops once the chunk size reaches this.
    pub maxbuf: usize,
}

/// The LP64 magazine-type table (`skmem_cache.c:191-209`).
pub const MAGTYPES_LP64: [MagType; 8] = [
    MagType {
        magsize: 14,
        minbuf: 128,
        maxbuf: 512,
    },
    MagType {
        magsize: 30,
        minbuf: 96,
        maxbuf: 256,
    },
    MagType {
        magsize: 46,
        minbuf: 64,
        maxbuf: 128,
    },
    MagType {
        magsize: 62,
        minbuf: 32,
        maxbuf: 64,
    },
    MagType {
        magsize: 94,
        minbuf: 16,
        maxbuf: 32,
    },
    MagType {
        magsize: 126,
        minbuf: 8,
        maxbuf: 16,
    },
    MagType {
        magsize: 142,
        minbuf: 0,
        maxbuf: 8,
    },
    MagType {
        magsize: 158,
        minbuf: 0,
        maxbuf: 0,
    },
];

/// The initial magazine type for `chunksize`: the first row with `chunksize > mt_minbuf`
/// (XNU's `for (mtp = skmem_magtype; chunksize <= mtp->mt_minbuf; mtp++)`).
pub fn initial_magtype(table: &[MagType], chunksize: usize) -> usize {
    table
        .iter()
        .position(|t| chunksize > t.minbuf)
        .unwrap_or(table.len().saturating_sub(1))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bits_render_like_bsd_percent_b() {
        assert_eq!(Mode::AUDIT.to_string(), "2<AUDIT>");
        assert_eq!(
            (Mode::NOMAGAZINES | Mode::RECLAIM | Mode::CLEARONFREE).to_string(),
            "a1<NOMAGAZINES,CLEARONFREE,RECLAIM>"
        );
        assert_eq!(Mode::empty().to_string(), "0");
        assert_eq!(format_bits(0o17, "\x08\x01A\x02B"), "17<A,B>");
        assert_eq!(format_bits(0x100, SKM_MODE_BITS), "100");
    }

    #[test]
    fn initial_magtype_follows_the_xnu_loop() {
        let t = &MAGTYPES_LP64;
        let pick = |c| t[initial_magtype(t, c)].magsize;
        assert_eq!(pick(200), 14);
        assert_eq!(pick(129), 14);
        assert_eq!(pick(128), 30);
        assert_eq!(pick(97), 30);
        assert_eq!(pick(96), 46);
        assert_eq!(pick(65), 46);
        assert_eq!(pick(64), 62);
        assert_eq!(pick(33), 62);
        assert_eq!(pick(32), 94);
        assert_eq!(pick(17), 94);
        assert_eq!(pick(16), 126);
        assert_eq!(pick(9), 126);
        assert_eq!(pick(8), 142);
        assert_eq!(pick(1), 142);
    }
}

//! A tiny byte reader for operation sequences.
//!
//! Operation inputs are decoded by hand (one tag byte, then fixed-width fields) rather
//! than with `#[derive(Arbitrary)]`, so that a seed written by [`crate::seeds`] keeps its
//! meaning across `arbitrary` releases and a crash input can be read with a hex dump.
//! Missing bytes read as zero, so every byte string is a valid program.

/// Reads fields from the front of an input; past the end every field reads 0.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next byte as a bool (low bit).
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// The next byte reduced to `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u8) -> u8 {
        self.u8() % n.max(1)
    }
}

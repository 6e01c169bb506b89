//! Flow keys (`struct flow_key`, 48 bytes), the seven flow masks, hashing and masked compare.
//!
//! Layout and semantics follow `bsd/skywalk/nexus/os_nexus_private.h`: a 16-bit mask of
//! the fields present, IP version, protocol, source/destination ports, 16-byte source and
//! destination address unions and 8 bytes of padding. Ports are kept in host order here;
//! only their rendering matters to users.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::FlowError;

/// `FKMASK_IPVER`.
pub const FKMASK_IPVER: u16 = 1 << 0;
/// `FKMASK_PROTO`.
pub const FKMASK_PROTO: u16 = 1 << 1;
/// `FKMASK_SRC`.
pub const FKMASK_SRC: u16 = 1 << 2;
/// `FKMASK_SPORT`.
pub const FKMASK_SPORT: u16 = 1 << 3;
/// `FKMASK_DST`.
pub const FKMASK_DST: u16 = 1 << 4;
/// `FKMASK_DPORT`.
pub const FKMASK_DPORT: u16 = 1 << 5;

/// `FK_HASH_SEED`.
pub const FK_HASH_SEED: u32 = 0xabcd;

/// `FLOW_KEY_LEN`.
pub const FLOW_KEY_LEN: usize = 48;

/// The seven named flow masks, in the flow manager's lookup order (most specific first).
/// The discriminant is the lookup-order index (tables below are indexed by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FlowMask {
    /// `FKMASK_5TUPLE` (0x3F).
    FiveTuple,
    /// `FKMASK_4TUPLE` (0x2F).
    FourTuple,
    /// `FKMASK_3TUPLE` (0x0F).
    ThreeTuple,
    /// `FKMASK_2TUPLE` (0x0A): protocol and local port, either IP version.
    TwoTuple,
    /// `FKMASK_IPFLOW3` (0x17).
    IpFlow3,
    /// `FKMASK_IPFLOW2` (0x07).
    IpFlow2,
    /// `FKMASK_IPFLOW1` (0x02).
    IpFlow1,
}

impl FlowMask {
    /// All masks in lookup order (`flow_mgr_create`'s slot order).
    pub const LOOKUP_ORDER: [FlowMask; 7] = [
        FlowMask::FiveTuple,
        FlowMask::FourTuple,
        FlowMask::ThreeTuple,
        FlowMask::TwoTuple,
        FlowMask::IpFlow3,
        FlowMask::IpFlow2,
        FlowMask::IpFlow1,
    ];

    /// The mask bits.
    pub const fn bits(self) -> u16 {
        match self {
            FlowMask::FiveTuple => 0x3F,
            FlowMask::FourTuple => 0x2F,
            FlowMask::ThreeTuple => 0x0F,
            FlowMask::TwoTuple => 0x0A,
            FlowMask::IpFlow3 => 0x17,
            FlowMask::IpFlow2 => 0x07,
            FlowMask::IpFlow1 => 0x02,
        }
    }

    /// The mask for the given bits, if it is one of the seven.
    pub const fn from_bits(bits: u16) -> Option<FlowMask> {
        Some(match bits {
            0x3F => FlowMask::FiveTuple,
            0x2F => FlowMask::FourTuple,
            0x0F => FlowMask::ThreeTuple,
            0x0A => FlowMask::TwoTuple,
            0x17 => FlowMask::IpFlow3,
            0x07 => FlowMask::IpFlow2,
            0x02 => FlowMask::IpFlow1,
            _ => return None,
        })
    }

    /// Slot index in the flow manager's per-mask counters (0 = 5-tuple).
    pub const fn index(self) -> usize {
        match self {
            FlowMask::FiveTuple => 0,
            FlowMask::FourTuple => 1,
            FlowMask::ThreeTuple => 2,
            FlowMask::TwoTuple => 3,
            FlowMask::IpFlow3 => 4,
            FlowMask::IpFlow2 => 5,
            FlowMask::IpFlow1 => 6,
        }
    }

    /// The 48-byte byte mask (`fk_mask_5tuple` …) as six little-endian words (a table
    /// lookup: this is on every flow lookup's path).
    const fn word_mask(self) -> [u64; 6] {
        WORD_MASKS[self as usize]
    }
}

/// [`FlowMask::word_mask`] for each mask, indexed by the discriminant.
const WORD_MASKS: [[u64; 6]; 7] = {
    let mut t = [[0u64; 6]; 7];
    let mut i = 0;
    while i < 7 {
        t[i] = word_mask_for_bits(FlowMask::LOOKUP_ORDER[i].bits());
        i += 1;
    }
    t
};

const fn word_mask_for_bits(bits: u16) -> [u64; 6] {
    let mut w0: u64 = bits as u64; // fk_mask itself participates, masked by its own bits
    if bits & FKMASK_IPVER != 0 {
        w0 |= 0xff << 16;
    }
    if bits & FKMASK_PROTO != 0 {
        w0 |= 0xff << 24;
    }
    if bits & FKMASK_SPORT != 0 {
        w0 |= 0xffff << 32;
    }
    if bits & FKMASK_DPORT != 0 {
        w0 |= 0xffff << 48;
    }
    let s = if bits & FKMASK_SRC != 0 { u64::MAX } else { 0 };
    let d = if bits & FKMASK_DST != 0 { u64::MAX } else { 0 };
    [w0, s, s, d, d, 0]
}

/// A flow key: `struct flow_key` (`FLOW_KEY_LEN` = 48 bytes, 16-byte aligned).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C, align(16))]
pub struct FlowKey {
    /// `fk_mask`: which fields are present (`FKMASK_*`).
    pub mask: u16,
    /// `fk_ipver`: 4, 6, or 0 (unspecified, 2-tuple listeners).
    pub ipver: u8,
    /// `fk_proto`: IP protocol number (6 TCP, 17 UDP…).
    pub proto: u8,
    /// `fk_sport`: local port.
    pub sport: u16,
    /// `fk_dport`: remote port.
    pub dport: u16,
    /// `fk_src`: local address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// `fk_dst`: remote address (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// `fk_pad`.
    pub pad: u64,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == FLOW_KEY_LEN);

fn addr_bytes(a: IpAddr) -> (u8, [u8; 16]) {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (4, out)
        }
        IpAddr::V6(v6) => (6, v6.octets()),
    }
}

impl FlowKey {
    /// A full 5-tuple key (`FKMASK_5TUPLE`).
    pub fn five_tuple(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        let (ipver, s) = addr_bytes(src);
        let (_, d) = addr_bytes(dst);
        FlowKey {
            mask: FlowMask::FiveTuple.bits(),
            ipver,
            proto,
            sport,
            dport,
            src: s,
            dst: d,
            pad: 0,
        }
    }

    /// `flow_req2key`: PROTO always; SRC/DST and IPVER when an address is non-zero; SPORT and
    /// DPORT when non-zero. A result that is not one of the seven masks is refused like the
    /// kernel does (`unknown flow key mask 0x%04x` → `ENOTSUP`).
    pub fn from_request(
        proto: u8,
        src: Option<IpAddr>,
        sport: u16,
        dst: Option<IpAddr>,
        dport: u16,
    ) -> Result<Self, FlowError> {
        let mut k = FlowKey {
            mask: FKMASK_PROTO,
            proto,
            ..FlowKey::default()
        };
        if let Some(a) = src.filter(|a| !a.is_unspecified()) {
            let (v, b) = addr_bytes(a);
            k.ipver = v;
            k.src = b;
            k.mask |= FKMASK_SRC | FKMASK_IPVER;
        }
        if let Some(a) = dst.filter(|a| !a.is_unspecified()) {
            let (v, b) = addr_bytes(a);
            k.ipver = v;
            k.dst = b;
            k.mask |= FKMASK_DST | FKMASK_IPVER;
        }
        if sport != 0 {
            k.sport = sport;
            k.mask |= FKMASK_SPORT;
        }
        if dport != 0 {
            k.dport = dport;
            k.mask |= FKMASK_DPORT;
        }
        if FlowMask::from_bits(k.mask).is_none() {
            return Err(FlowError::UnknownMask(k.mask));
        }
        Ok(k)
    }

    /// The key's named mask, if its `fk_mask` is one of the seven.
    pub fn flow_mask(&self) -> Option<FlowMask> {
        FlowMask::from_bits(self.mask)
    }

    /// The key as six little-endian 64-bit words (the 48 bytes in `struct flow_key` order).
    pub fn words(&self) -> [u64; 6] {
        let w0 = u64::from(self.mask)
            | u64::from(self.ipver) << 16
            | u64::from(self.proto) << 24
            | u64::from(self.sport) << 32
            | u64::from(self.dport) << 48;
        let half = |b: &[u8; 16], i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        [
            w0,
            half(&self.src, 0),
            half(&self.src, 1),
            half(&self.dst, 0),
            half(&self.dst, 1),
            self.pad,
        ]
    }

    /// The key's words with every field outside `mask` cleared (the masked 48-byte view
    /// `sk_memcmp_mask_48B` compares).
    pub fn masked_words(&self, mask: FlowMask) -> [u64; 6] {
        let w = self.words();
        let m = mask.word_mask();
        [
            w[0] & m[0],
            w[1] & m[1],
            w[2] & m[2],
            w[3] & m[3],
            w[4] & m[4],
            w[5] & m[5],
        ]
    }

    /// `flow_key_hash` under `mask`: the masked fields mixed from `FK_HASH_SEED`.
    pub fn hash(&self, mask: FlowMask) -> u32 {
        hash_words(&self.masked_words(mask))
    }

    /// `flow_key_cmp_mask`: the keys agree on every byte the mask selects.
    pub fn eq_masked(&self, other: &FlowKey, mask: FlowMask) -> bool {
        self.masked_words(mask) == other.masked_words(mask)
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        addr_of(self.ipver, &self.src)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        addr_of(self.ipver, &self.dst)
    }
}

fn addr_of(ipver: u8, b: &[u8; 16]) -> IpAddr {
    if ipver == 6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// Mixes six masked key words into the 32-bit flow hash (seeded with `FK_HASH_SEED`).
///
/// XNU feeds each present field to `net_flowhash` (MurmurHash3) in turn; this is a
/// multiply–xorshift mix over the same masked 48 bytes with the same seed, which keeps the
/// property the table relies on (equal masked keys hash equal) at a fraction of the cost.
pub fn hash_words(w: &[u64; 6]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = u64::from(FK_HASH_SEED) ^ (w[0].wrapping_mul(K));
    h = (h ^ w[1]).wrapping_mul(K).rotate_left(29) ^ w[2];
    h = (h ^ w[3]).wrapping_mul(K).rotate_left(29) ^ w[4];
    h = (h ^ w[5]).wrapping_mul(K);
    h ^= h >> 32;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h ^ (h >> 29)) as u32
}

impl fmt::Display for FlowKey {
    /// `fk_as_string`: `ipver=%u,src=%s,dst=%s,proto=0x%02u,sport=%u,dport=%u mask=%08x,hash=%08x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash = self.flow_mask().map_or(0, |m| self.hash(m));
        write!(
            f,
            "ipver={},src={},dst={},proto=0x{:02},sport={},dport={} mask={:08x},hash={:08x}",
            self.ipver,
            self.src_addr(),
            self.dst_addr(),
            self.proto,
            self.sport,
            self.dport,
            self.mask,
            hash
        )
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowKey({self})")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn k(sport: u16) -> FlowKey {
        FlowKey::five_tuple(
            6,
            "10.0.0.1".parse().unwrap(),
            sport,
            "93.184.216.34".parse().unwrap(),
            443,
        )
    }

    #[test]
    fn masks_have_reference_values() {
        let bits: Vec<u16> = FlowMask::LOOKUP_ORDER.iter().map(|m| m.bits()).collect();
        assert_eq!(bits, vec![0x3F, 0x2F, 0x0F, 0x0A, 0x17, 0x07, 0x02]);
        for (i, m) in FlowMask::LOOKUP_ORDER.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(FlowMask::from_bits(m.bits()), Some(*m));
        }
        assert_eq!(FlowMask::from_bits(0x3E), None);
    }

    #[test]
    fn discriminants_index_the_word_mask_table() {
        for (i, m) in FlowMask::LOOKUP_ORDER.iter().enumerate() {
            assert_eq!(*m as usize, i);
            assert_eq!(m.word_mask(), word_mask_for_bits(m.bits()));
        }
        assert_eq!(
            FlowMask::FiveTuple.word_mask(),
            [
                0xffff_ffff_ffff_003f,
                u64::MAX,
                u64::MAX,
                u64::MAX,
                u64::MAX,
                0
            ]
        );
    }

    #[test]
    fn masked_compare_ignores_unselected_fields() {
        let a = k(5000);
        let b = k(5001);
        assert!(!a.eq_masked(&b, FlowMask::FiveTuple));
        // 3-tuple = ipver, proto, src, sport: sport differs, so still different.
        assert!(!a.eq_masked(&b, FlowMask::ThreeTuple));
        // ipflow3 = ipver, proto, src, dst: ports ignored.
        assert!(a.eq_masked(&b, FlowMask::IpFlow3));
        assert_eq!(a.hash(FlowMask::IpFlow3), b.hash(FlowMask::IpFlow3));
        assert_ne!(a.hash(FlowMask::FiveTuple), b.hash(FlowMask::FiveTuple));
    }

    #[test]
    fn two_tuple_ignores_ip_version() {
        let v4 = k(80);
        let mut v6 = FlowKey::five_tuple(
            6,
            "fe80::1".parse().unwrap(),
            80,
            "fe80::2".parse().unwrap(),
            1234,
        );
        assert!(v4.eq_masked(&v6, FlowMask::TwoTuple));
        v6.sport = 81;
        assert!(!v4.eq_masked(&v6, FlowMask::TwoTuple));
    }

    #[test]
    fn req2key_sets_fields_and_refuses_unknown_masks() {
        let listener = FlowKey::from_request(6, None, 8080, None, 0).unwrap();
        assert_eq!(listener.flow_mask(), Some(FlowMask::TwoTuple));
        let conn = FlowKey::from_request(
            17,
            Some("10.1.1.1".parse().unwrap()),
            53000,
            Some("8.8.8.8".parse().unwrap()),
            53,
        )
        .unwrap();
        assert_eq!(conn.flow_mask(), Some(FlowMask::FiveTuple));
        // src + dport only: 0x27 is not one of the seven.
        let err =
            FlowKey::from_request(6, Some("10.1.1.1".parse().unwrap()), 0, None, 80).unwrap_err();
        assert_eq!(err.to_string(), "unknown flow key mask 0x0027");
    }

    #[test]
    fn display_matches_fk_as_string() {
        let s = k(5000).to_string();
        assert!(s.starts_with(
            "ipver=4,src=10.0.0.1,dst=93.184.216.34,proto=0x06,sport=5000,dport=443 mask=0000003f,hash="
        ));
    }
}

//! `FLOWENTF_*` flags and the BSD `%b` bit-field formatter.

/// `FLOWENTF_INITED`.
pub const FLOWENTF_INITED: u32 = 0x1;
/// `FLOWENTF_TRACK`.
pub const FLOWENTF_TRACK: u32 = 0x10;
/// `FLOWENTF_CONNECTED`.
pub const FLOWENTF_CONNECTED: u32 = 0x20;
/// `FLOWENTF_LISTENER`.
pub const FLOWENTF_LISTENER: u32 = 0x40;
/// `FLOWENTF_QOS_MARKING`.
pub const FLOWENTF_QOS_MARKING: u32 = 0x100;
/// `FLOWENTF_LOW_LATENCY`.
pub const FLOWENTF_LOW_LATENCY: u32 = 0x200;
/// `FLOWENTF_WAIT_CLOSE`: defer the free after close (linger).
pub const FLOWENTF_WAIT_CLOSE: u32 = 0x1000;
/// `FLOWENTF_CLOSE_NOTIFY`.
pub const FLOWENTF_CLOSE_NOTIFY: u32 = 0x2000;
/// `FLOWENTF_EXTRL_PORT`.
pub const FLOWENTF_EXTRL_PORT: u32 = 0x4000;
/// `FLOWENTF_EXTRL_PROTO`.
pub const FLOWENTF_EXTRL_PROTO: u32 = 0x8000;
/// `FLOWENTF_EXTRL_FLOWID`.
pub const FLOWENTF_EXTRL_FLOWID: u32 = 0x10000;
/// `FLOWENTF_CHILD`.
pub const FLOWENTF_CHILD: u32 = 0x20000;
/// `FLOWENTF_PARENT`.
pub const FLOWENTF_PARENT: u32 = 0x40000;
/// `FLOWENTF_NOWAKEFROMSLEEP`.
pub const FLOWENTF_NOWAKEFROMSLEEP: u32 = 0x80000;
/// `FLOWENTF_ABORTED`.
pub const FLOWENTF_ABORTED: u32 = 0x100_0000;
/// `FLOWENTF_NONVIABLE`.
pub const FLOWENTF_NONVIABLE: u32 = 0x200_0000;
/// `FLOWENTF_WITHDRAWN`.
pub const FLOWENTF_WITHDRAWN: u32 = 0x400_0000;
/// `FLOWENTF_TORN_DOWN`.
pub const FLOWENTF_TORN_DOWN: u32 = 0x800_0000;
/// `FLOWENTF_HALF_CLOSED`.
pub const FLOWENTF_HALF_CLOSED: u32 = 0x1000_0000;
/// `FLOWENTF_DESTROYED`: no longer in the table or the owner's id tree.
pub const FLOWENTF_DESTROYED: u32 = 0x4000_0000;
/// `FLOWENTF_LINGERING`.
pub const FLOWENTF_LINGERING: u32 = 0x8000_0000;

/// `FLOWENTF_BITS`, verbatim (including the kernel's `LISTNER` typo and `EXT_` names).
pub const FLOWENTF_BITS: &[u8] = b"\x10\x01INITED\x05TRACK\x06CONNECTED\x07LISTNER\x09QOS_MARKING\x0aLOW_LATENCY\x0dWAIT_CLOSE\x0eCLOSE_NOTIFY\x0fEXT_PORT\x10EXT_PROTO\x11EXT_FLOWID\x19ABORTED\x1aNONVIABLE\x1bWITHDRAWN\x1cTORN_DOWN\x1dHALF_CLOSED\x1fDESTROYED\x20LINGERING";

/// The BSD kernel's `%b` conversion: the value in the base named by the first byte of
/// `bits` (8, 10 or 16), then `<NAME,NAME>` for every set bit that `bits` names. Each name
/// is preceded by its 1-based bit number as a byte. Writing `0x%b` therefore gives
/// `0x40000021<INITED,CONNECTED,DESTROYED>`.
pub fn format_b(value: u32, bits: &[u8]) -> String {
    let mut out = match bits.first() {
        Some(8) => format!("{value:o}"),
        Some(10) => format!("{value}"),
        _ => format!("{value:x}"),
    };
    if value == 0 {
        return out;
    }
    let mut first = true;
    let mut i = 1;
    while let Some(&bit) = bits.get(i) {
        i += 1;
        let start = i;
        while bits.get(i).is_some_and(|&c| c > 32) {
            i += 1;
        }
        let name = bits.get(start..i).unwrap_or_default();
        let set = (1..=32).contains(&bit) && value & (1u32 << (bit - 1)) != 0;
        if set {
            out.push(if first { '<' } else { ',' });
            first = false;
            out.push_str(&String::from_utf8_lossy(name));
        }
    }
    if !first {
        out.push('>');
    }
    out
}

/// `%b` with [`FLOWENTF_BITS`].
pub fn flowentf_string(flags: u32) -> String {
    format_b(flags, FLOWENTF_BITS)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn percent_b_uses_reference_names() {
        assert_eq!(
            flowentf_string(FLOWENTF_INITED | FLOWENTF_CONNECTED | FLOWENTF_TRACK),
            "31<INITED,TRACK,CONNECTED>"
        );
        assert_eq!(flowentf_string(FLOWENTF_LISTENER), "40<LISTNER>");
        assert_eq!(
            flowentf_string(FLOWENTF_EXTRL_PORT | FLOWENTF_EXTRL_FLOWID),
            "14000<EXT_PORT,EXT_FLOWID>"
        );
        assert_eq!(
            flowentf_string(FLOWENTF_TORN_DOWN | FLOWENTF_DESTROYED | FLOWENTF_LINGERING),
            "c8000000<TORN_DOWN,DESTROYED,LINGERING>"
        );
        // CHILD, PARENT and NOWAKEFROMSLEEP are not in FLOWENTF_BITS: never printed.
        assert_eq!(
            flowentf_string(FLOWENTF_CHILD | FLOWENTF_PARENT | FLOWENTF_NOWAKEFROMSLEEP),
            "e0000"
        );
        assert_eq!(flowentf_string(0), "0");
    }

    #[test]
    fn percent_b_other_bases() {
        assert_eq!(format_b(5, b"\x0a\x01A\x03C"), "5<A,C>");
        assert_eq!(format_b(8, b"\x08\x04D"), "10<D>");
    }
}

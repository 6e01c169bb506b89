//! Image identifiers (Mach-O UUIDs, ELF build-ids) and CPU architectures.

use std::fmt;
use std::str::FromStr;

/// The identity of one build of a binary: a Mach-O `LC_UUID` (16 bytes) or an ELF
/// `NT_GNU_BUILD_ID` (any length, usually 20).
///
/// Parsing accepts upper- or lower-case hex with or without dashes, with or without the
/// `<…>` brackets of `.crash` binary-image lines. An all-zero id (the sentinel "A" images
/// of `.ips` reports carry one) parses but [`ImageId::is_nil`] is true and the store never
/// matches on it.
///
/// Display: 16-byte ids print as an upper-case dashed UUID
/// (`8-4-4-4-12`, the form `dwarfdump --uuid` prints); other lengths as lower-case hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(Vec<u8>);

impl ImageId {
    /// Wrap raw id bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        ImageId(bytes.to_vec())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True when every byte is zero (or there are none): such ids identify nothing.
    pub fn is_nil(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

/// Error returned when a string is not a hex image id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID/build-id (expected hex digits, optionally dashed): {0:?}")]
pub struct ParseIdError(String);

impl FromStr for ImageId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim().trim_start_matches('<').trim_end_matches('>');
        let digits: Vec<u8> = trimmed.bytes().filter(|&b| b != b'-').collect();
        if digits.is_empty() || !digits.len().is_multiple_of(2) {
            return Err(ParseIdError(s.to_owned()));
        }
        let mut out = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks(2) {
            let hi = hex_val(pair.first().copied());
            let lo = hex_val(pair.get(1).copied());
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(ParseIdError(s.to_owned())),
            }
        }
        Ok(ImageId(out))
    }
}

fn hex_val(b: Option<u8>) -> Option<u8> {
    match b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() == 16 {
            for (i, b) in self.0.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    f.write_str("-")?;
                }
                write!(f, "{b:02X}")?;
            }
            Ok(())
        } else {
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({self})")
    }
}

/// A CPU architecture as crash reports name it.
///
/// `arm64e` and `arm64` are different slices of a fat file and are never substituted for
/// one another (the pointer-authentication ABI differs, and so does the code).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Arch {
    /// 64-bit ARM (`arm64`, `aarch64`, `.ips` `cpuType` `ARM-64`).
    Arm64,
    /// 64-bit ARM with pointer authentication (`arm64e`).
    Arm64e,
    /// ILP32 ARM64 (watchOS `arm64_32`).
    Arm64_32,
    /// 32-bit ARM (`armv7`, `armv7s`, `armv7k`).
    Arm,
    /// `x86_64` (`X86-64`).
    X86_64,
    /// `x86_64h` (Haswell slice).
    X86_64h,
    /// 32-bit x86 (`i386`).
    I386,
    /// Anything else, by the name it was given.
    Other(String),
}

impl Arch {
    /// Parse an architecture the way reports spell it; never fails (unknown names become
    /// [`Arch::Other`]).
    pub fn parse(s: &str) -> Arch {
        match s.trim().to_ascii_lowercase().as_str() {
            "arm64" | "aarch64" | "arm-64" => Arch::Arm64,
            "arm64e" => Arch::Arm64e,
            "arm64_32" => Arch::Arm64_32,
            "arm" | "armv7" | "armv7s" | "armv7k" | "arm-32" => Arch::Arm,
            "x86_64" | "x86-64" | "amd64" => Arch::X86_64,
            "x86_64h" => Arch::X86_64h,
            "i386" | "x86" | "i686" => Arch::I386,
            other => Arch::Other(other.to_owned()),
        }
    }

    pub(crate) fn from_macho(
        cputype: object::macho::CpuType,
        cpusubtype: object::macho::CpuSubtype,
    ) -> Arch {
        use object::macho;
        let sub = cpusubtype.id();
        match cputype {
            macho::CPU_TYPE_ARM64 if sub == macho::CPU_SUBTYPE_ARM64E => Arch::Arm64e,
            macho::CPU_TYPE_ARM64 => Arch::Arm64,
            macho::CPU_TYPE_ARM64_32 => Arch::Arm64_32,
            macho::CPU_TYPE_ARM => Arch::Arm,
            macho::CPU_TYPE_X86_64 if sub == macho::CPU_SUBTYPE_X86_64_H => Arch::X86_64h,
            macho::CPU_TYPE_X86_64 => Arch::X86_64,
            macho::CPU_TYPE_X86 => Arch::I386,
            _ => Arch::Other(format!("cputype-{:#x}", cputype.0)),
        }
    }

    pub(crate) fn from_object(arch: object::Architecture) -> Arch {
        match arch {
            object::Architecture::Aarch64 => Arch::Arm64,
            object::Architecture::Aarch64_Ilp32 => Arch::Arm64_32,
            object::Architecture::Arm => Arch::Arm,
            object::Architecture::X86_64 => Arch::X86_64,
            object::Architecture::I386 => Arch::I386,
            other => Arch::Other(format!("{other:?}").to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Arm64 => "arm64",
            Arch::Arm64e => "arm64e",
            Arch::Arm64_32 => "arm64_32",
            Arch::Arm => "arm",
            Arch::X86_64 => "x86_64",
            Arch::X86_64h => "x86_64h",
            Arch::I386 => "i386",
            Arch::Other(name) => name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms_parse_to_the_same_id() {
        let dashed: ImageId = "d8fbe4ad-1c2e-3b4f-9a0b-112233445566".parse().unwrap();
        let plain: ImageId = "<D8FBE4AD1C2E3B4F9A0B112233445566>".parse().unwrap();
        assert_eq!(dashed, plain);
        assert_eq!(dashed.to_string(), "D8FBE4AD-1C2E-3B4F-9A0B-112233445566");
        assert!(!dashed.is_nil());
    }

    #[test]
    fn build_ids_print_as_lower_hex_and_bad_input_is_an_error() {
        let id: ImageId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef01234567");
        assert!("xyz".parse::<ImageId>().is_err());
        assert!("abc".parse::<ImageId>().is_err());
        assert!("".parse::<ImageId>().is_err());
        let nil: ImageId = "00000000-0000-0000-0000-000000000000".parse().unwrap();
        assert!(nil.is_nil());
    }

    #[test]
    fn arch_names_from_reports() {
        assert_eq!(Arch::parse("ARM-64"), Arch::Arm64);
        assert_eq!(Arch::parse("arm64e"), Arch::Arm64e);
        assert_eq!(Arch::parse("X86-64"), Arch::X86_64);
        assert_eq!(Arch::parse("ppc").to_string(), "ppc");
        assert_eq!(
            Arch::from_macho(object::macho::CPU_TYPE_ARM64, object::macho::CpuSubtype(2)),
            Arch::Arm64e
        );
    }
}

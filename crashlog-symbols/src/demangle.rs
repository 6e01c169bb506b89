//! Demangling of Rust, C++ and (detection only) Swift symbol names.

/// The language a mangled name belongs to, as far as the mangling tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mangling {
    /// Not mangled (C, Objective-C `-[Class sel]`, or already demangled).
    None,
    /// Rust legacy (`_ZN…17h<hash>E`) or v0 (`_R…`).
    Rust,
    /// Itanium C++ ABI (`_Z…`).
    Cpp,
    /// Swift (`$s…`, `$S…`, `_T0…`, `$e…`): detected but not demangled (there is no
    /// Swift demangler in this crate's dependency set). With DWARF, symbolication shows
    /// the compiler's `DW_AT_name` instead (unqualified, e.g.
    /// `startTunnel(options:completionHandler:)`); from a symbol table alone the name
    /// stays mangled (run `swift demangle` on it).
    Swift,
}

/// A symbol name after demangling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demangled {
    /// The readable name (the input when it was not mangled or could not be demangled).
    pub name: String,
    /// Which mangling scheme the input used.
    pub mangling: Mangling,
    /// True when `name` differs from the input because it was demangled.
    pub demangled: bool,
}

/// Strip the one leading underscore Mach-O symbol tables put on every C-level name
/// (`_main`, `__ZN3foo3barEv`, `_$s4main…`).
pub(crate) fn strip_macho_underscore(name: &str) -> &str {
    name.strip_prefix('_').unwrap_or(name)
}

/// Demangle `name`. Rust is tried before C++ because legacy Rust symbols are also valid
/// Itanium names (which would keep the `::h<hash>` suffix). The Rust form printed is
/// `{:#}` (without the hash), as `atos` and backtraces show it.
pub fn demangle(name: &str) -> Demangled {
    let looks_rust_v0 = name.starts_with("_R");
    let looks_itanium = name.starts_with("_Z");
    if (looks_rust_v0 || looks_itanium)
        && let Ok(sym) = rustc_demangle::try_demangle(name)
    {
        let text = format!("{sym:#}");
        // rustc_demangle also accepts plain C++ `_ZN…E` names; only call it Rust when
        // the legacy hash suffix or the v0 prefix is there.
        if looks_rust_v0 || format!("{sym}") != text {
            return Demangled {
                name: text,
                mangling: Mangling::Rust,
                demangled: true,
            };
        }
    }
    if looks_itanium {
        if let Ok(sym) = cpp_demangle::Symbol::new(name)
            && let Ok(text) = sym.demangle()
        {
            return Demangled {
                name: text,
                mangling: Mangling::Cpp,
                demangled: true,
            };
        }
        return Demangled {
            name: name.to_owned(),
            mangling: Mangling::Cpp,
            demangled: false,
        };
    }
    let swift = ["$s", "$S", "$e", "_T0", "_$s", "_$S"]
        .iter()
        .any(|p| name.starts_with(p));
    Demangled {
        name: name.to_owned(),
        mangling: if swift {
            Mangling::Swift
        } else {
            Mangling::None
        },
        demangled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_and_v0() {
        let d = demangle("_ZN4core9panicking5panic17h3c3d3b6a5e2a1f01E");
        assert_eq!(d.name, "core::panicking::panic");
        assert_eq!(d.mangling, Mangling::Rust);
        let v0 = demangle("_RNvCs1234_7mycrate3foo");
        assert_eq!(v0.mangling, Mangling::Rust);
        assert_eq!(v0.name, "mycrate::foo");
    }

    #[test]
    fn cpp_names_and_failures() {
        let d = demangle("_ZN3net6Parser5parseEPKcm");
        assert_eq!(d.name, "net::Parser::parse(char const*, unsigned long)");
        assert_eq!(d.mangling, Mangling::Cpp);
        let bad = demangle("_Z!!!");
        assert!(!bad.demangled);
        assert_eq!(bad.name, "_Z!!!");
    }

    #[test]
    fn swift_is_detected_and_left_alone_and_c_is_untouched() {
        let s = demangle("$s8MyTunnel0B8ProviderC10startTunnel7optionsySDySSSo8NSObjectCGSg_tF");
        assert_eq!(s.mangling, Mangling::Swift);
        assert!(!s.demangled);
        assert_eq!(demangle("main").mangling, Mangling::None);
        assert_eq!(strip_macho_underscore("__ZN1a1bEv"), "_ZN1a1bEv");
    }
}

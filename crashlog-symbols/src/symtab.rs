//! A sorted function-symbol table, the fallback when there is no DWARF.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// One function symbol.
#[derive(Debug, Clone)]
pub(crate) struct Sym {
    pub(crate) address: u64,
    /// End of the symbol (exclusive): its size when the format records one, else the next
    /// symbol's start or the end of its section.
    pub(crate) end: u64,
    pub(crate) name: String,
}

/// Function symbols of one object, sorted by address.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    syms: Vec<Sym>,
}

impl SymbolTable {
    /// Collect defined text symbols (`.symtab`, else `.dynsym`; Mach-O `nlist` minus
    /// debugger stabs). Mach-O names lose their leading underscore.
    pub(crate) fn from_object<'data>(
        file: &object::File<'data, impl object::ReadRef<'data>>,
    ) -> Self {
        let is_macho = matches!(file.format(), object::BinaryFormat::MachO);
        let mut syms = collect(file, file.symbols(), is_macho);
        if syms.is_empty() {
            syms = collect(file, file.dynamic_symbols(), is_macho);
        }
        syms.sort_by(|a, b| a.address.cmp(&b.address).then(b.end.cmp(&a.end)));
        syms.dedup_by_key(|s| s.address);
        // Fill unknown sizes from the next symbol (Mach-O has no sizes at all).
        let starts: Vec<u64> = syms.iter().map(|s| s.address).collect();
        for (i, sym) in syms.iter_mut().enumerate() {
            if let Some(&next) = starts.get(i + 1)
                && next > sym.address
            {
                sym.end = sym.end.min(next);
            }
        }
        SymbolTable { syms }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.syms.len()
    }

    /// The symbol covering `address`, if any.
    pub(crate) fn lookup(&self, address: u64) -> Option<&Sym> {
        let idx = self.syms.partition_point(|s| s.address <= address);
        let sym = self.syms.get(idx.checked_sub(1)?)?;
        (address < sym.end).then_some(sym)
    }
}

fn collect<'data, 'file, R, I>(
    file: &'file object::File<'data, R>,
    iter: I,
    is_macho: bool,
) -> Vec<Sym>
where
    R: object::ReadRef<'data>,
    I: Iterator<Item = object::Symbol<'data, 'file, R>>,
{
    let mut out = Vec::new();
    for sym in iter {
        if !sym.is_definition() || sym.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        let address = sym.address();
        let section_end = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .filter(|s| s.kind() == SectionKind::Text || is_macho)
            .and_then(|s| s.address().checked_add(s.size()));
        let end = match sym.size() {
            0 => section_end.unwrap_or(u64::MAX),
            size => address.saturating_add(size),
        };
        let name = if is_macho {
            crate::demangle::strip_macho_underscore(name)
        } else {
            name
        };
        out.push(Sym {
            address,
            end: end.max(address.saturating_add(1)),
            name: name.to_owned(),
        });
    }
    out
}

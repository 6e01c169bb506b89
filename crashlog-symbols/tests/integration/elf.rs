//! Real ELF binaries compiled at test time (gcc -g -O2 with always_inline chains, g++,
//! rustc), checked against line numbers known from the source and against binutils
//! `addr2line -f -i`. Split debug files by build-id and by `.gnu_debuglink`; stripped
//! binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashlog_symbols::{
    Address, FrameKind, ImageId, ImageRef, Mangling, SymbolSource, SymbolStore, Symbolication,
};
use object::{Object, ObjectSymbol};

const C_SOURCE: &str = r#"#include <stdio.h>
#include <stdlib.h>

static inline __attribute__((always_inline)) int fold16(unsigned int x) {
    x = (x & 0xffff) + (x >> 16); /* L_FOLD_1 */
    return (int)((x & 0xffff) + (x >> 16)); /* L_FOLD_2 */
}

static inline __attribute__((always_inline)) int checksum(const unsigned char *p, int n) {
    unsigned int s = 0;
    for (int i = 0; i < n; i++) s += p[i] * (unsigned)(i + 1); /* L_SUM_LOOP */
    return fold16(s); /* L_CALL_FOLD */
}

__attribute__((noinline)) int handle_packet(const unsigned char *p, int n) {
    int c = checksum(p, n); /* L_CALL_CHECKSUM */
    if (c == 0x1234) abort(); /* L_ABORT */
    return c ^ n;
}

int main(int argc, char **argv) {
    printf("%d\n", handle_packet((const unsigned char *)argv[0], argc));
    return 0;
}
"#;

/// Line number (1-based) of the source line containing `marker`.
fn line_of(src: &str, marker: &str) -> u32 {
    src.lines()
        .position(|l| l.contains(marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("marker {marker} not in source"))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compile the C program; `None` (with a message) only when gcc is missing.
fn compile_c(dir: &Path, name: &str, extra: &[&str]) -> Option<PathBuf> {
    if !have("gcc") {
        eprintln!("SKIP: gcc not found; ELF tests need a C compiler");
        return None;
    }
    let src = dir.join("tunnel.c");
    std::fs::write(&src, C_SOURCE).unwrap();
    let out = dir.join(name);
    run(Command::new("gcc")
        .args(["-g", "-O2", "-fno-omit-frame-pointer"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&src));
    Some(out)
}

/// `(address, size)` of a defined symbol, and the file's build-id.
fn symbol(path: &Path, name: &str) -> (u64, u64) {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()));
    (sym.address(), sym.size())
}

fn build_id(path: &Path) -> ImageId {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    ImageId::from_bytes(file.build_id().unwrap().expect("gcc emits a build-id"))
}

fn basename(f: &str) -> &str {
    f.rsplit('/').next().unwrap_or(f)
}

/// `[(function, "file:line")]` innermost first, comparable with binutils output.
fn pairs(sym: &Symbolication) -> Vec<(String, String)> {
    sym.frames
        .iter()
        .map(|f| {
            (
                f.raw_function.clone().unwrap_or_else(|| "??".into()),
                match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{}:{line}", basename(file)),
                    _ => "??:0".to_owned(),
                },
            )
        })
        .collect()
}

/// Run binutils `addr2line -a -f -i` for many addresses: address → frames.
fn binutils(bin: &Path, addrs: &[u64]) -> Vec<(u64, Vec<(String, String)>)> {
    let mut cmd = Command::new("addr2line");
    cmd.args(["-a", "-f", "-i", "-e"]).arg(bin);
    for a in addrs {
        cmd.arg(format!("{a:#x}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut result: Vec<(u64, Vec<(String, String)>)> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(hex) = line.strip_prefix("0x") {
            result.push((u64::from_str_radix(hex, 16).unwrap(), Vec::new()));
            continue;
        }
        let func = line.to_owned();
        let loc = lines.next().unwrap_or("??:0");
        let loc = loc.split(" (discriminator").next().unwrap_or(loc);
        let (file, l) = loc.rsplit_once(':').unwrap_or((loc, "0"));
        let loc = if file == "??" || l == "?" || l == "0" {
            "??:0".to_owned()
        } else {
            format!("{}:{l}", basename(file))
        };
        result.last_mut().unwrap().1.push((func, loc));
    }
    result
}

#[test]
fn gcc_inline_chains_match_the_source_and_binutils() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = compile_c(dir.path(), "tunnel", &[]) else {
        return;
    };
    let store = SymbolStore::from_paths([&bin]).unwrap();
    let info = &store.objects()[0];
    assert_eq!(info.id, Some(build_id(&bin)));
    assert!(info.has_dwarf);
    let image = ImageRef::with_uuid(build_id(&bin)).load_address(0x5555_5555_4000);
    let handle = store.image(&image).unwrap();
    assert_eq!(handle.image_vmaddr(), 0, "PIE: first PT_LOAD at 0");

    let (start, size) = symbol(&bin, "handle_packet");
    assert!(size > 0);
    let addrs: Vec<u64> = (start..start + size).collect();
    let ours: Vec<Symbolication> = addrs
        .iter()
        .map(|&a| {
            handle
                .symbolicate(Address::Unslid(a), FrameKind::Pc)
                .unwrap()
        })
        .collect();

    // 1. Against the source: some address is inside fold16, inlined into checksum at
    //    L_CALL_FOLD, inlined into handle_packet at L_CALL_CHECKSUM.
    let l_call_fold = line_of(C_SOURCE, "L_CALL_FOLD");
    let l_call_checksum = line_of(C_SOURCE, "L_CALL_CHECKSUM");
    let fold_body = line_of(C_SOURCE, "L_FOLD_1")..=line_of(C_SOURCE, "L_FOLD_2");
    let deepest = ours
        .iter()
        .find(|s| {
            s.frames
                .iter()
                .map(|f| f.function.as_deref().unwrap_or(""))
                .eq(["fold16", "checksum", "handle_packet"])
        })
        .expect("an address with the full inline chain fold16 < checksum < handle_packet");
    assert!(fold_body.contains(&deepest.frames[0].line.unwrap()));
    assert_eq!(deepest.frames[1].line, Some(l_call_fold));
    assert_eq!(deepest.frames[2].line, Some(l_call_checksum));
    assert!(deepest.frames[0].inlined && deepest.frames[1].inlined);
    assert!(!deepest.frames[2].inlined);
    assert!(
        deepest.frames[0]
            .file
            .as_deref()
            .unwrap()
            .ends_with("tunnel.c")
    );
    assert_eq!(deepest.source, SymbolSource::Dwarf);
    // Every address of handle_packet resolves to handle_packet as the real function, with
    // the symbol offset from the ELF symbol.
    for (a, s) in addrs.iter().zip(&ours) {
        let outer = s.outermost().unwrap();
        assert_eq!(outer.function.as_deref(), Some("handle_packet"));
        assert_eq!(outer.symbol_offset, Some(a - start));
    }
    // Absolute addresses with the load address agree with unslid ones.
    for (a, s) in addrs.iter().zip(&ours).step_by(7) {
        let abs = handle
            .symbolicate(Address::Absolute(0x5555_5555_4000 + a), FrameKind::Pc)
            .unwrap();
        assert_eq!(abs.frames, s.frames);
    }

    // 2. Against binutils addr2line, address by address.
    if !have("addr2line") {
        eprintln!("SKIP (part): binutils addr2line not found; compared with the source only");
        return;
    }
    let theirs = binutils(&bin, &addrs);
    assert_eq!(theirs.len(), addrs.len());
    let mut compared = 0;
    for ((a, expected), sym) in theirs.iter().zip(&ours) {
        assert_eq!(pairs(sym), *expected, "address {a:#x}");
        compared += 1;
    }
    assert_eq!(compared, addrs.len());
}

#[test]
fn split_debug_by_build_id_and_by_debuglink() {
    if !have("objcopy") || !have("strip") {
        eprintln!("SKIP: binutils objcopy/strip not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(full) = compile_c(dir.path(), "tunnel", &[]) else {
        return;
    };
    let id = build_id(&full);
    let (start, _) = symbol(&full, "handle_packet");
    let reference = SymbolStore::from_paths([&full])
        .unwrap()
        .symbolicate(
            &ImageRef::with_uuid(id.clone()),
            Address::Unslid(start + 8),
            FrameKind::Pc,
        )
        .unwrap();

    // /usr/lib/debug-style tree: .build-id/ab/cdef….debug
    let hex = id.to_string();
    let debug_root = dir.path().join("debugroot");
    let dbg = debug_root.join(format!(".build-id/{}/{}.debug", &hex[..2], &hex[2..]));
    std::fs::create_dir_all(dbg.parent().unwrap()).unwrap();
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&full)
        .arg(&dbg));
    let stripped = dir.path().join("bin/tunnel");
    std::fs::create_dir_all(stripped.parent().unwrap()).unwrap();
    run(Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&full));

    // The stripped binary alone: a clear "stripped" error.
    let alone = SymbolStore::from_paths([&stripped]).unwrap();
    let err = alone
        .symbolicate(
            &ImageRef::with_uuid(id.clone()),
            Address::Unslid(start),
            FrameKind::Pc,
        )
        .unwrap_err();
    assert_eq!(err.name(), "stripped_binary");
    assert!(err.to_string().contains(&stripped.display().to_string()));

    // With the debug tree, the build-id finds the .debug file.
    let store = SymbolStore::from_paths([stripped.parent().unwrap(), &debug_root]).unwrap();
    let sym = store
        .symbolicate(
            &ImageRef::with_uuid(id.clone()).name("tunnel"),
            Address::Unslid(start + 8),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(sym.object_path, dbg);
    assert_eq!(sym.frames, reference.frames);

    // No build-id, `.gnu_debuglink` to `.debug/tunnel.debug` next to the binary; only the
    // binary's directory is given.
    let dl_dir = dir.path().join("dl");
    std::fs::create_dir_all(dl_dir.join(".debug")).unwrap();
    let Some(noid) = compile_c(&dl_dir, "tunnel", &["-Wl,--build-id=none"]) else {
        return;
    };
    let (start, _) = symbol(&noid, "handle_packet");
    let linked = dl_dir.join(".debug/tunnel.debug");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&noid)
        .arg(&linked));
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(format!("--add-gnu-debuglink={}", linked.display()))
        .arg(&noid));
    std::fs::remove_file(dl_dir.join("tunnel.c")).unwrap();
    let store = SymbolStore::from_paths([&noid]).unwrap();
    assert_eq!(store.objects().len(), 2, "{:?}", store.objects());
    let sym = store
        .symbolicate(
            &ImageRef::default().name("tunnel"),
            Address::ImageOffset(start + 8),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(sym.object_path, linked);
    assert_eq!(sym.source, SymbolSource::Dwarf);
    assert_eq!(
        sym.outermost().unwrap().function.as_deref(),
        Some("handle_packet")
    );
}

#[test]
fn symbol_table_fallback_without_dwarf() {
    if !have("strip") {
        eprintln!("SKIP: binutils strip not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = compile_c(dir.path(), "tunnel", &[]) else {
        return;
    };
    run(Command::new("strip").arg("--strip-debug").arg(&bin));
    let (start, size) = symbol(&bin, "handle_packet");
    let store = SymbolStore::from_paths([&bin]).unwrap();
    assert!(!store.objects()[0].has_dwarf);
    let sym = store
        .symbolicate(
            &ImageRef::with_uuid(build_id(&bin)),
            Address::ImageOffset(start + size / 2),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(sym.source, SymbolSource::SymbolTable);
    assert_eq!(sym.frames.len(), 1);
    assert_eq!(sym.frames[0].function.as_deref(), Some("handle_packet"));
    assert_eq!(sym.frames[0].symbol_offset, Some(size / 2));
    assert_eq!(sym.frames[0].file, None);
}

#[test]
fn gxx_symbols_demangle() {
    if !have("g++") {
        eprintln!(
            "SKIP: g++ not found; the C++ demangling of a compiled binary is not checked (the synthetic Mach-O test still covers a C++ name)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = "namespace net {\nstruct Parser {\n  __attribute__((noinline)) int parse(const char *p, unsigned long n);\n};\nint Parser::parse(const char *p, unsigned long n) {\n  int s = 0;\n  for (unsigned long i = 0; i < n; i++) s += p[i]; // L_PARSE\n  return s;\n}\n}\nint main(int argc, char **argv) { net::Parser q; return q.parse(argv[0], (unsigned long)argc); }\n";
    std::fs::write(dir.path().join("parser.cpp"), src).unwrap();
    let bin = dir.path().join("parser");
    run(Command::new("g++")
        .args(["-g", "-O1", "-o"])
        .arg(&bin)
        .arg(dir.path().join("parser.cpp")));
    let (start, size) = symbol(&bin, "_ZN3net6Parser5parseEPKcm");
    let store = SymbolStore::from_paths([&bin]).unwrap();
    let handle = store.image(&ImageRef::with_uuid(build_id(&bin))).unwrap();
    let mut saw_loop_line = false;
    for a in start..start + size {
        let sym = handle
            .symbolicate(Address::Unslid(a), FrameKind::Pc)
            .unwrap();
        let f = sym.outermost().unwrap();
        assert_eq!(
            f.function.as_deref(),
            Some("net::Parser::parse(char const*, unsigned long)")
        );
        assert_eq!(f.raw_function.as_deref(), Some("_ZN3net6Parser5parseEPKcm"));
        assert_eq!(f.mangling, Mangling::Cpp);
        assert!(f.file.as_deref().unwrap().ends_with("parser.cpp"));
        saw_loop_line |= f.line == Some(line_of(src, "L_PARSE"));
    }
    assert!(saw_loop_line);
}

#[test]
fn rustc_symbols_demangle() {
    if !have("rustc") {
        eprintln!("SKIP: rustc not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = "mod flow {\n    #[inline(never)]\n    pub fn process(x: u32) -> u32 {\n        x.wrapping_mul(2654435761).rotate_left(5) // L_PROCESS\n    }\n}\nfn main() {\n    let n = std::env::args().count() as u32;\n    println!(\"{}\", flow::process(std::hint::black_box(n)));\n}\n";
    let file = dir.path().join("mytunnel.rs");
    std::fs::write(&file, src).unwrap();
    let bin = dir.path().join("mytunnel");
    run(Command::new("rustc")
        .args(["-g", "-C", "opt-level=1", "--crate-name", "mytunnel", "-o"])
        .arg(&bin)
        .arg(&file));
    let data = std::fs::read(&bin).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let (start, mangled) = obj
        .symbols()
        .filter_map(|s| Some((s.address(), s.name().ok()?.to_owned())))
        .find(|(_, n)| crashlog_symbols::demangle(n).name == "mytunnel::flow::process")
        .expect("mytunnel::flow::process in the symbol table");
    let store = SymbolStore::from_paths([&bin]).unwrap();
    let image = ImageRef::default().name("mytunnel");
    let sym = store
        .symbolicate(&image, Address::Unslid(start), FrameKind::Pc)
        .unwrap();
    let f = sym.outermost().unwrap();
    assert_eq!(f.function.as_deref(), Some("mytunnel::flow::process"));
    assert_eq!(f.raw_function.as_deref(), Some(mangled.as_str()));
    assert_eq!(f.mangling, Mangling::Rust);
    assert!(f.file.as_deref().unwrap().ends_with("mytunnel.rs"));
}

#[test]
fn non_pie_slide_and_compressed_debug_sections() {
    let dir = tempfile::tempdir().unwrap();
    // Non-PIE: the first PT_LOAD is at 0x400000, which is also where it loads.
    let Some(bin) = compile_c(dir.path(), "tunnel", &["-no-pie", "-gz=zlib"]) else {
        return;
    };
    let (start, _) = symbol(&bin, "handle_packet");
    let store = SymbolStore::from_paths([&bin]).unwrap();
    assert!(
        store.objects()[0].has_dwarf,
        "compressed .debug_info is found"
    );
    let image = ImageRef::with_uuid(build_id(&bin)).load_address(0x40_0000);
    let handle = store.image(&image).unwrap();
    assert_eq!(handle.image_vmaddr(), 0x40_0000);
    let abs = handle
        .symbolicate(Address::Absolute(start + 4), FrameKind::Pc)
        .unwrap();
    let off = handle
        .symbolicate(Address::ImageOffset(start + 4 - 0x40_0000), FrameKind::Pc)
        .unwrap();
    assert_eq!(abs, off);
    assert_eq!(abs.source, SymbolSource::Dwarf);
    assert_eq!(
        abs.outermost().unwrap().function.as_deref(),
        Some("handle_packet")
    );
    assert!(
        abs.innermost()
            .unwrap()
            .file
            .as_deref()
            .unwrap()
            .ends_with("tunnel.c")
    );
    // The same binary loaded elsewhere (a relocated copy): the slide is applied.
    let moved = ImageRef::with_uuid(build_id(&bin)).load_address(0x7f00_0000_0000);
    let sym = store
        .symbolicate(
            &moved,
            Address::Absolute(0x7f00_0000_0000 + start + 4 - 0x40_0000),
            FrameKind::Pc,
        )
        .unwrap();
    assert_eq!(sym.frames, abs.frames);
}

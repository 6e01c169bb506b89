//! Symbolication cost: first use of an image (index + parse) and frames per second once
//! it is cached, on a real gcc-built ELF with DWARF and inline chains.
//!
//! Setup compiles a generated C file (`FUNCS` functions, each with a two-level
//! `always_inline` chain) with `gcc -g -O2` into a temp dir; without gcc the bench prints
//! a note and measures nothing. Addresses are taken from `nm -S` (binutils).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-symbols cargo bench -p flowslab-benches --bench symbolicate`

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use crashlog_symbols::{Address, FrameKind, ImageRef, SymbolStore};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const FUNCS: usize = 3000;
const FRAMES: usize = 1000;
const LOAD: u64 = 0x5555_5555_4000;

struct Fixture {
    _dir: tempfile_dir::Dir,
    bin: PathBuf,
    /// Unslid addresses inside the generated functions, spread over the whole binary.
    addrs: Vec<u64>,
}

/// A tiny temp-dir guard (the bench crate has no tempfile dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub(crate) struct Dir(PathBuf);

    impl Dir {
        pub(crate) fn new() -> Dir {
            let path = std::env::temp_dir()
                .join(format!("flowslab-symbolicate-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create bench temp dir");
            Dir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn source() -> String {
    let mut src = String::from("#include <stdio.h>\n");
    for i in 0..FUNCS {
        let _ = write!(
            src,
            "static inline __attribute__((always_inline)) unsigned mix{i}(unsigned x) {{\n\
             \x20   return (x ^ (x >> 13)) * 2654435761u + {i}u;\n}}\n\
             static inline __attribute__((always_inline)) unsigned step{i}(const unsigned char *p, int n) {{\n\
             \x20   unsigned s = 0;\n\
             \x20   for (int k = 0; k < n; k++) s += mix{i}(p[k] + (unsigned)k);\n\
             \x20   return s;\n}}\n\
             __attribute__((noinline)) unsigned f{i}(const unsigned char *p, int n) {{\n\
             \x20   unsigned s = step{i}(p, n);\n\
             \x20   return s ^ (unsigned)n;\n}}\n"
        );
    }
    src.push_str("int main(int argc, char **argv) {\n    unsigned s = 0;\n");
    for i in 0..FUNCS {
        let _ = writeln!(src, "    s += f{i}((const unsigned char *)argv[0], argc);");
    }
    src.push_str("    printf(\"%u\\n\", s);\n    return 0;\n}\n");
    src
}

fn fixture() -> Option<Fixture> {
    let dir = tempfile_dir::Dir::new();
    let src = dir.path().join("gen.c");
    std::fs::write(&src, source()).ok()?;
    let bin = dir.path().join("gen");
    let status = Command::new("gcc")
        .args(["-g", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let addrs = function_addresses(&bin)?;
    Some(Fixture {
        _dir: dir,
        bin,
        addrs,
    })
}

/// `FRAMES` addresses: one inside each of `FRAMES` generated functions (spread evenly),
/// at a third of its size.
fn function_addresses(bin: &Path) -> Option<Vec<u64>> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(bin)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut funcs: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let size = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?;
            let name = it.next()?;
            let generated = name.starts_with('f') && name[1..].chars().all(|c| c.is_ascii_digit());
            (kind.eq_ignore_ascii_case("t") && generated && size > 0).then_some((addr, size))
        })
        .collect();
    funcs.sort_unstable();
    if funcs.len() < FRAMES {
        return None;
    }
    let stride = funcs.len() / FRAMES;
    Some(
        funcs
            .iter()
            .step_by(stride)
            .take(FRAMES)
            .map(|&(a, s)| a + s / 3)
            .collect(),
    )
}

fn image() -> ImageRef {
    ImageRef::default().name("gen").load_address(LOAD)
}

fn bench(c: &mut Criterion) {
    let Some(fx) = fixture() else {
        eprintln!("symbolicate bench: gcc or nm not available, nothing measured");
        return;
    };
    let size = std::fs::metadata(&fx.bin).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "symbolicate bench: {} ({} KiB, {FUNCS} functions), {} frames",
        fx.bin.display(),
        size / 1024,
        fx.addrs.len()
    );

    let mut group = c.benchmark_group("symbolicate");
    group.sample_size(20);

    // Index the file, parse it (DWARF sections, unit headers, symbol table) and answer
    // one frame: what the first frame of an image costs.
    group.bench_function("first_use", |b| {
        b.iter(|| {
            let store = SymbolStore::from_paths([&fx.bin]).expect("index");
            let sym = store
                .symbolicate(
                    &image(),
                    Address::Absolute(LOAD + fx.addrs[0]),
                    FrameKind::Pc,
                )
                .expect("symbolicate");
            black_box(sym);
        })
    });

    // Frames through a resolved handle (one image of a report), cache warm.
    let store = SymbolStore::from_paths([&fx.bin]).expect("index");
    let handle = store.image(&image()).expect("image");
    for &a in &fx.addrs {
        let _ = handle.symbolicate(Address::Unslid(a), FrameKind::Pc);
    }
    group.throughput(Throughput::Elements(fx.addrs.len() as u64));
    group.bench_function("frames_warm_handle", |b| {
        b.iter(|| {
            for &a in &fx.addrs {
                let sym = handle
                    .symbolicate(Address::Absolute(LOAD + a), FrameKind::ReturnAddress)
                    .expect("symbolicate");
                black_box(sym);
            }
        })
    });

    // Frames through the store (image matched per frame, as a naive caller would do).
    group.bench_function("frames_warm_store", |b| {
        let img = image();
        b.iter(|| {
            for &a in &fx.addrs {
                let sym = store
                    .symbolicate(&img, Address::Absolute(LOAD + a), FrameKind::ReturnAddress)
                    .expect("symbolicate");
                black_box(sym);
            }
        })
    });

    // A whole report's worth of frames on a fresh store: one parse, then lazy per-unit
    // DWARF parsing as the frames touch new compile-unit regions.
    group.bench_function("frames_cold_store", |b| {
        b.iter_batched(
            || SymbolStore::from_paths([&fx.bin]).expect("index"),
            |store| {
                let handle = store.image(&image()).expect("image");
                for &a in &fx.addrs {
                    black_box(handle.symbolicate(Address::Unslid(a), FrameKind::Pc).ok());
                }
                assert_eq!(store.objects_parsed(), 1);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

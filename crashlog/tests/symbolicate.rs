//! `crashlog symbolicate` / `crashlog atos` and `crashlog::symbolicate` against a real ELF
//! compiled at test time (`gcc -g -O2`, with an `always_inline` chain), with generated
//! `.crash`, `.ips` and panic reports whose frames point into it (image UUID = the ELF
//! build-id, load addresses chosen here). Expected functions and lines come from the
//! source markers and from binutils `addr2line -f -i` (an independent oracle), never from
//! the code under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crashlog::model::Report;
use crashlog::symbolicate::{symbolicate_report, symbolicate_reports};
use crashlog_symbols::SymbolStore;

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
    printf("%d\n", handle_packet((const unsigned char *)argv[0], argc)); /* L_MAIN_CALL */
    return 0;
}
"#;

/// Where the test loads the image (a PIE: file vm address 0).
const LOAD: u64 = 0x5555_5555_4000;
/// A system image without symbols in the store.
const LIBDYLD: u64 = 0x7fff_6a1a_f000;

fn line_of(marker: &str) -> u32 {
    C_SOURCE
        .lines()
        .position(|l| l.contains(marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("marker {marker} not in source"))
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn have_gcc() -> bool {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: gcc not found; symbolication tests need a C compiler");
    }
    ok
}

/// One frame as binutils sees it: (function, file base name, line).
type Oracle = Vec<(String, String, u32)>;

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
    build_id: String,
    /// PC inside `fold16` inlined into `checksum` inlined into `handle_packet`.
    pc: u64,
    /// Return address in `main` after the call to `handle_packet`.
    ret: u64,
    handle_packet: u64,
    main: u64,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !have_gcc() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("tunnel.c");
        std::fs::write(&src, C_SOURCE).unwrap();
        let bin = dir.path().join("tunnel");
        tool(
            Command::new("gcc")
                .args(["-g", "-O2", "-fno-omit-frame-pointer", "-o"])
                .arg(&bin)
                .arg(&src),
        );
        let store = SymbolStore::from_paths([&bin]).unwrap();
        let build_id = store.objects()[0]
            .id
            .as_ref()
            .expect("gcc writes a build-id")
            .to_string();
        let nm = tool(Command::new("nm").arg(&bin));
        let sym = |name: &str| {
            nm.lines()
                .find_map(|l| {
                    let mut t = l.split_whitespace();
                    let (a, _, n) = (t.next()?, t.next()?, t.next()?);
                    (n == name).then(|| u64::from_str_radix(a, 16).ok())?
                })
                .unwrap_or_else(|| panic!("{name} not in nm output"))
        };
        let (handle_packet, main) = (sym("handle_packet"), sym("main"));
        // The return address: the instruction after `call … <handle_packet>` in main.
        let dis = tool(
            Command::new("objdump")
                .args(["-d", "--no-show-raw-insn"])
                .arg(&bin),
        );
        let mut ret = None;
        let mut after_call = false;
        for l in dis.lines() {
            let addr = l
                .trim()
                .split(':')
                .next()
                .and_then(|a| u64::from_str_radix(a, 16).ok());
            if after_call {
                ret = addr;
                break;
            }
            if l.contains("call") && l.contains("<handle_packet>") {
                after_call = addr.is_some_and(|a| a >= main);
            }
        }
        let ret = ret.expect("main calls handle_packet");
        let mut fx = Fixture {
            dir,
            bin,
            build_id,
            pc: 0,
            ret,
            handle_packet,
            main,
        };
        // A PC with the full inline chain, per binutils.
        fx.pc = (handle_packet..handle_packet + 0x100)
            .find(|&a| {
                let o = fx.oracle(a);
                o.iter()
                    .map(|f| f.0.as_str())
                    .eq(["fold16", "checksum", "handle_packet"])
            })
            .expect("an address inside fold16 < checksum < handle_packet");
        Some(fx)
    }

    fn oracle(&self, addr: u64) -> Oracle {
        let out = tool(
            Command::new("addr2line")
                .args(["-f", "-i", "-e"])
                .arg(&self.bin)
                .arg(format!("{addr:#x}")),
        );
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .map(|c| {
                let loc = c.get(1).copied().unwrap_or("??:0");
                let loc = loc.split(" (discriminator").next().unwrap_or(loc);
                let (file, line) = loc.rsplit_once(':').unwrap_or((loc, "0"));
                (
                    c[0].to_owned(),
                    file.rsplit('/').next().unwrap_or(file).to_owned(),
                    line.parse().unwrap_or(0),
                )
            })
            .collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A `.crash` report: thread 0 crashed in the fold16 chain, called from main; a frame
    /// in libdyld (no symbols); thread 1 in libsystem_kernel. `uuid` is the image's.
    fn crash_text(&self, uuid: &str) -> String {
        let (pc, ret) = (LOAD + self.pc, LOAD + self.ret);
        format!(
            "Incident Identifier: 5B6E2C1A-7D3F-4E8B-9A0C-1D2E3F4A5B6C\n\
Hardware Model:      MacBookPro18,2\n\
Process:             tunnel [4242]\n\
Path:                /usr/local/bin/tunnel\n\
Identifier:          tunnel\n\
Version:             1.0 (1)\n\
Code Type:           X86-64 (Native)\n\
Parent Process:      launchd [1]\n\
\n\
Date/Time:           2026-11-21 08:00:00.000 +0000\n\
OS Version:          macOS 14.5 (23F79)\n\
\n\
Exception Type:      EXC_BAD_ACCESS (SIGSEGV)\n\
Exception Codes:     KERN_INVALID_ADDRESS at 0x0000000000000010\n\
\n\
Crashed Thread:      0  Dispatch queue: com.apple.main-thread\n\
\n\
Thread 0 Crashed:: Dispatch queue: com.apple.main-thread\n\
0   tunnel                        \t{pc:#018x} {LOAD:#x} + {}\n\
1   tunnel                        \t{ret:#018x} {LOAD:#x} + {}\n\
2   libdyld.dylib                 \t0x00007fff6a1b2cc9 {LIBDYLD:#x} + 15561\n\
\n\
Thread 1:\n\
0   libsystem_kernel.dylib        \t0x00007fff6a2f4b96 __workq_kernreturn + 10\n\
\n\
Binary Images:\n\
    {LOAD:#x} -     {:#x} +tunnel x86_64 <{uuid}> /usr/local/bin/tunnel\n\
    {LIBDYLD:#x} -     0x7fff6a1c9fff  libdyld.dylib (733.6) <2A4F6E3B-1C5D-3E7F-9A8B-0C1D2E3F4A5B> /usr/lib/system/libdyld.dylib\n",
            self.pc,
            self.ret,
            LOAD + 0x4fff,
        )
    }

    /// The same crash symbolicated by binutils, in Apple's layout: the twin.
    fn crash_twin(&self) -> String {
        let mut text = self.crash_text(&self.build_id);
        let frame = |idx: u32, addr: u64, lookup: u64, start: u64| {
            let chain = self.oracle(lookup);
            let n = chain.len();
            chain
                .iter()
                .enumerate()
                .map(|(i, (f, file, line))| {
                    let tail = if i + 1 < n {
                        format!("{f} ({file}:{line}) [inlined]")
                    } else {
                        format!("{f} + {} ({file}:{line})", LOAD + addr - start)
                    };
                    format!(
                        "{idx:<4}tunnel                        \t{addr:#018x} {tail}\n",
                        addr = LOAD + addr
                    )
                })
                .collect::<String>()
        };
        let old0 = format!(
            "0   tunnel                        \t{:#018x} {LOAD:#x} + {}\n",
            LOAD + self.pc,
            self.pc
        );
        let old1 = format!(
            "1   tunnel                        \t{:#018x} {LOAD:#x} + {}\n",
            LOAD + self.ret,
            self.ret
        );
        text = text.replace(
            &old0,
            &frame(0, self.pc, self.pc, LOAD + self.handle_packet),
        );
        // A return address: binutils is asked about the call instruction (address - 1).
        text.replace(&old1, &frame(1, self.ret, self.ret - 1, LOAD + self.main))
    }

    /// An `.ips` (bug_type 309) with the same frames as image offsets.
    fn ips(&self) -> String {
        format!(
            r#"{{"app_name":"tunnel","timestamp":"2026-11-21 08:00:00.00 +0000","app_version":"1.0","bug_type":"309","os_version":"macOS 14.5 (23F79)","name":"tunnel","incident_id":"5B6E2C1A-7D3F-4E8B-9A0C-1D2E3F4A5B6C"}}
{{
  "procName" : "tunnel",
  "cpuType" : "X86-64",
  "faultingThread" : 0,
  "threads" : [
    {{
      "triggered" : true,
      "id" : 100,
      "frames" : [
        {{
          "imageOffset" : {pc},
          "imageIndex" : 0
        }},
        {{
          "imageOffset" : {ret},
          "imageIndex" : 0
        }},
        {{
          "imageOffset" : 15561,
          "symbol" : "start",
          "symbolLocation" : 1,
          "imageIndex" : 1
        }}
      ]
    }}
  ],
  "usedImages" : [
    {{
      "source" : "P",
      "arch" : "x86_64",
      "base" : {LOAD},
      "size" : 20480,
      "uuid" : "{uuid}",
      "path" : "/usr/local/bin/tunnel",
      "name" : "tunnel"
    }},
    {{
      "source" : "P",
      "arch" : "x86_64",
      "base" : {LIBDYLD},
      "size" : 110592,
      "uuid" : "2a4f6e3b-1c5d-3e7f-9a8b-0c1d2e3f4a5b",
      "path" : "/usr/lib/system/libdyld.dylib",
      "name" : "libdyld.dylib"
    }}
  ]
}}
"#,
            pc = self.pc,
            ret = self.ret,
            uuid = self.build_id,
        )
    }

    /// What the crashed thread must become: binutils' chain for the PC, then for the
    /// return address (looked up at address - 1), then the untouched libdyld frame.
    fn expected_chain(&self) -> Vec<(String, String, u32, bool)> {
        let mut v = Vec::new();
        for chain in [self.oracle(self.pc), self.oracle(self.ret - 1)] {
            let n = chain.len();
            for (i, (f, file, line)) in chain.into_iter().enumerate() {
                v.push((f, file, line, i + 1 < n));
            }
        }
        v
    }
}

fn crashlog(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crashlog"));
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    cmd.output().unwrap()
}

/// (symbol, file, line, inline) of the crashed thread's frames.
fn crashed_frames(r: &Report) -> Vec<(String, String, u32, bool)> {
    r.crashed_thread()
        .unwrap()
        .frames
        .iter()
        .map(|f| {
            (
                f.symbol.clone().unwrap_or_default(),
                f.file.clone().unwrap_or_default(),
                f.line.unwrap_or(0),
                f.inline,
            )
        })
        .collect()
}

fn parse_one(bytes: &[u8]) -> Report {
    let mut rs = crashlog::parse::parse_auto(bytes).unwrap();
    assert_eq!(rs.len(), 1);
    rs.remove(0)
}

#[test]
fn library_fills_frames_with_inline_chains_and_lines_from_the_source() {
    let Some(fx) = Fixture::new() else { return };
    let store = SymbolStore::from_paths([&fx.bin]).unwrap();
    let mut report = parse_one(fx.crash_text(&fx.build_id).as_bytes());
    let untouched = report.threads[1].clone();
    let outcome = symbolicate_report(&mut report, &store);
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert_eq!((outcome.symbolicated, outcome.inlined_added), (2, 2));
    assert_eq!(
        outcome.without_symbols, 2,
        "libdyld and libsystem_kernel frames"
    );

    let frames = crashed_frames(&report);
    let mut want = fx.expected_chain();
    want.push(("".into(), "".into(), 0, false)); // libdyld: unsymbolicated, left alone
    assert_eq!(frames, want);
    // Against the source itself: fold16's body, inlined at L_CALL_FOLD, at L_CALL_CHECKSUM;
    // main at its call.
    let fold = line_of("L_FOLD_1")..=line_of("L_FOLD_2");
    assert!(fold.contains(&frames[0].2));
    assert_eq!(frames[1].2, line_of("L_CALL_FOLD"));
    assert_eq!(frames[2].2, line_of("L_CALL_CHECKSUM"));
    assert_eq!(frames[3].2, line_of("L_MAIN_CALL"));
    assert_eq!(frames[3].0, "main");
    let t = report.crashed_thread().unwrap();
    // Offsets from the symbol start, on the real frames only; indices renumbered.
    assert_eq!(t.frames[2].symbol_offset, Some(fx.pc - fx.handle_packet));
    assert_eq!(t.frames[3].symbol_offset, Some(fx.ret - fx.main));
    assert_eq!(t.frames[0].symbol_offset, None);
    assert!(
        t.frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.index as usize == i)
    );
    // The libdyld frame keeps everything it had.
    assert_eq!(t.frames[4].image.as_deref(), Some("libdyld.dylib"));
    assert_eq!(t.frames[4].image_offset, Some(15561));
    assert_eq!(report.threads[1], untouched);

    // Symbolicating again changes nothing (the inline frames are rebuilt, not added).
    let before = report.clone();
    symbolicate_report(&mut report, &store);
    assert_eq!(report, before);
}

#[test]
fn text_report_keeps_its_layout_and_reparses_with_the_symbols() {
    let Some(fx) = Fixture::new() else { return };
    let input = fx.crash_text(&fx.build_id);
    let path = fx.write("tunnel.crash", &input);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();

    // Exactly the two tunnel frame lines changed; inline lines keep index/image/address.
    let pc = format!("{:#018x}", LOAD + fx.pc);
    let fold = fx.oracle(fx.pc);
    let expected0 = format!(
        "0   tunnel                        \t{pc} {} ({}:{}) [inlined]\n\
         0   tunnel                        \t{pc} {} ({}:{}) [inlined]\n\
         0   tunnel                        \t{pc} handle_packet + {} ({}:{})\n",
        fold[0].0,
        fold[0].1,
        fold[0].2,
        fold[1].0,
        fold[1].1,
        fold[1].2,
        fx.pc - fx.handle_packet,
        fold[2].1,
        fold[2].2,
    );
    assert!(text.contains(&expected0), "{text}");
    let unchanged_in = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.contains("\t0x00005555"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(unchanged_in(&text), unchanged_in(&input));
    assert_eq!(
        text.lines().filter(|l| l.contains("\t0x00005555")).count(),
        4,
        "3 lines for the inline chain at the PC, 1 for main"
    );

    // It parses back to the symbols, and equals its binutils-symbolicated twin, so the
    // two copies of the crash get the same frames (and signatures).
    let ours = parse_one(text.as_bytes());
    let twin = parse_one(fx.crash_twin().as_bytes());
    let mut want = fx.expected_chain();
    want.push(("".into(), "".into(), 0, false));
    assert_eq!(crashed_frames(&ours), want);
    assert_eq!(crashed_frames(&ours), crashed_frames(&twin));

    // And the library pass on the unsymbolicated model gives the same list.
    let store = SymbolStore::from_paths([&fx.bin]).unwrap();
    let mut model = parse_one(input.as_bytes());
    symbolicate_report(&mut model, &store);
    assert_eq!(crashed_frames(&model), crashed_frames(&twin));

    // Idempotent: symbolicating the output again gives the same bytes.
    let again_path = fx.write("again.crash", &text);
    let again = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &again_path]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

#[test]
fn ips_stays_valid_json_with_apple_keys_and_inline_frames() {
    let Some(fx) = Fixture::new() else { return };
    let input = fx.ips();
    let path = fx.write("tunnel.ips", &input);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();

    // Header line byte for byte; the body is valid JSON.
    let (header, body) = text.split_once('\n').unwrap();
    assert_eq!(header, input.lines().next().unwrap());
    let body: serde_json::Value = serde_json::from_str(body).expect("valid JSON body");
    let frames = body["threads"][0]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 5, "2 inline + handle_packet + main + start");
    let chain = fx.oracle(fx.pc);
    for (i, (f, file, line)) in chain.iter().enumerate() {
        assert_eq!(frames[i]["symbol"], f.as_str());
        assert_eq!(frames[i]["sourceFile"], file.as_str());
        assert_eq!(frames[i]["sourceLine"], *line);
        assert_eq!(frames[i]["imageOffset"], fx.pc);
        assert_eq!(frames[i]["inline"].as_bool(), (i < 2).then_some(true));
    }
    assert_eq!(frames[2]["symbolLocation"], fx.pc - fx.handle_packet);
    assert_eq!(frames[3]["symbol"], "main");
    assert_eq!(frames[3]["symbolLocation"], fx.ret - fx.main);
    // The frame without symbols keeps its text exactly, in Apple's layout.
    assert!(text.contains(
        "        {\n          \"imageOffset\" : 15561,\n          \"symbol\" : \"start\",\n          \"symbolLocation\" : 1,\n          \"imageIndex\" : 1\n        }"
    ));
    assert!(
        text.contains("\"symbol\" : \"handle_packet\""),
        "Apple's ` : ` kept"
    );
    // Everything outside the frames array is unchanged.
    let tail = |t: &str| t[t.find("\"usedImages\"").unwrap()..].to_owned();
    assert_eq!(tail(&text), tail(&input));

    // crashlog reads it back with the symbols: the same frames as the text twin.
    let ours = parse_one(text.as_bytes());
    let twin = parse_one(fx.crash_twin().as_bytes());
    let strip = |v: Vec<(String, String, u32, bool)>| v.into_iter().take(4).collect::<Vec<_>>();
    assert_eq!(strip(crashed_frames(&ours)), strip(crashed_frames(&twin)));
    assert_eq!(crashed_frames(&ours)[4].0, "start");

    // Idempotent.
    let again_path = fx.write("again.ips", &text);
    let again = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &again_path]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

#[test]
fn wrong_uuid_stripped_binary_and_corrupt_dwarf_leave_frames_and_say_why_once() {
    let Some(fx) = Fixture::new() else { return };
    // Wrong UUID: same name, another build.
    let wrong = fx.crash_text("00112233445566778899aabbccddeeff00112233");
    let path = fx.write("wrong.crash", &wrong);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        wrong,
        "report unchanged"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.matches("[uuid_mismatch]").count(),
        1,
        "once per image: {err}"
    );
    assert!(err.contains("image 'tunnel'"), "{err}");
    assert!(err.contains(&fx.bin.display().to_string()), "{err}");
    assert!(err.contains("wrong.crash"), "{err}");

    // Stripped: the same build, no DWARF and no symbol table.
    let stripped_dir = fx.path("stripped");
    std::fs::create_dir(&stripped_dir).unwrap();
    let stripped = stripped_dir.join("tunnel");
    std::fs::copy(&fx.bin, &stripped).unwrap();
    tool(Command::new("strip").arg(&stripped));
    let good = fx.crash_text(&fx.build_id);
    let path = fx.write("good.crash", &good);
    let out = crashlog(&["symbolicate", "--symbols"], &[&stripped_dir, &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), good);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("[stripped_binary]").count(), 1, "{err}");
    assert!(err.contains(&stripped.display().to_string()), "{err}");

    // Corrupt DWARF: .debug_info replaced by a unit of an unknown DWARF version.
    let corrupt_dir = fx.path("corrupt");
    std::fs::create_dir(&corrupt_dir).unwrap();
    let junk = fx.path("junk.bin");
    std::fs::write(&junk, [7u8, 0, 0, 0, 0xff, 0x7f, 0, 0, 0, 0, 8]).unwrap();
    let corrupt = corrupt_dir.join("tunnel");
    tool(
        Command::new("objcopy")
            .arg(format!("--update-section=.debug_info={}", junk.display()))
            .arg(&fx.bin)
            .arg(&corrupt),
    );
    let out = crashlog(&["symbolicate", "--symbols"], &[&corrupt_dir, &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), good);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("[corrupt_dwarf]").count(), 1, "{err}");
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
    assert!(err.contains(".debug_info at offset 0x0"), "{err}");

    // The library reports the same, once, and leaves the model as parsed.
    let store = SymbolStore::from_paths([&stripped]).unwrap();
    let mut report = parse_one(good.as_bytes());
    let before = report.clone();
    let outcome = symbolicate_report(&mut report, &store);
    assert_eq!(report, before);
    assert_eq!(outcome.symbolicated, 0);
    assert_eq!(outcome.problems.len(), 1);
    assert_eq!(outcome.problems[0].error.name(), "stripped_binary");
}

#[test]
fn panic_kernel_and_kext_frames_use_the_slide_lines() {
    let Some(fx) = Fixture::new() else { return };
    // The ELF stands for both the kernel (UUID line + slide) and a kext (its @start).
    let slide: u64 = 0xffff_ff80_1555_4000;
    let kext: u64 = 0xffff_ff80_1666_4000;
    let text = format!(
        "panic(cpu 2 caller {k:#x}): \"classq_dequeue: bad state\"@classq_subr.c:512\n\
Backtrace (CPU 2), panicked thread: 0xffffff9354d6c540, Frame : Return Address\n\
0xffffffa0f8c3bb90 : {k:#x} \n\
0xffffffa0f8c3bbe0 : {x:#x} \n\
0xffffffa0f8c3bc30 : 0xffffff8012345678 mach_kernel : _foo + 0x10\n\
      Kernel Extensions in backtrace:\n\
         com.example.nke(1.0)[{uuid}]@{kext:#x}->{kend:#x}\n\
\n\
Kernel version:\n\
Darwin Kernel Version 19.6.0: Thu Jun 18 20:49:00 PDT 2020; root:xnu-6153.141.1~1/RELEASE_X86_64\n\
Kernel UUID: {uuid}\n\
Kernel slide:     {slide:#018x}\n",
        // A return address one past the PC inside the inline chain.
        k = slide + fx.pc + 1,
        x = kext + fx.ret,
        kend = kext + 0x4fff,
        uuid = fx.build_id,
    );
    let path = fx.write("x86.panic", &text);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(out.status.code(), Some(0));
    let new = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = new.lines().collect();
    let chain = fx.oracle(fx.pc);
    assert_eq!(
        lines[2],
        format!(
            "0xffffffa0f8c3bb90 : {:#x} mach_kernel : handle_packet + {:#x} ({}:{}) [inlined: {} ({}:{}) <- {} ({}:{})]",
            slide + fx.pc + 1,
            fx.pc + 1 - fx.handle_packet,
            chain[2].1,
            chain[2].2,
            chain[0].0,
            chain[0].1,
            chain[0].2,
            chain[1].0,
            chain[1].1,
            chain[1].2,
        )
    );
    assert!(
        lines[3].ends_with(&format!(
            "com.example.nke : main + {:#x} (tunnel.c:{})",
            fx.ret - fx.main,
            line_of("L_MAIN_CALL")
        )),
        "{}",
        lines[3]
    );
    // Outside the binary: left as is, reported once.
    assert_eq!(lines[4], text.lines().nth(4).unwrap());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.matches("[bad_address]").count(), 1, "{err}");
    assert!(err.contains("image 'mach_kernel'"), "{err}");
    // Everything else unchanged.
    assert_eq!(lines[5..], text.lines().collect::<Vec<_>>()[5..]);

    // The model pass agrees: crashlog reads the rewritten panic back with the symbols.
    let back = parse_one(new.as_bytes());
    let store = SymbolStore::from_paths([&fx.bin]).unwrap();
    let mut model = parse_one(text.as_bytes());
    symbolicate_report(&mut model, &store);
    let real = |r: &Report| -> Vec<Option<String>> {
        r.threads[0]
            .frames
            .iter()
            .filter(|f| !f.inline)
            .map(|f| f.symbol.clone())
            .collect()
    };
    assert_eq!(real(&back), real(&model));
    assert_eq!(
        real(&model),
        [
            Some("handle_packet".into()),
            Some("main".into()),
            Some("_foo".into())
        ]
    );
}

#[test]
fn atos_prints_inline_chains_like_atos_i() {
    let Some(fx) = Fixture::new() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_crashlog"))
        .args(["atos", "--symbols"])
        .arg(&fx.bin)
        .args(["--load-address", &format!("{LOAD:#x}")])
        .arg(format!("{:#x}", LOAD + fx.pc))
        .arg(format!("{:#x}", LOAD + 0x10_0000))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one address has no function");
    let text = String::from_utf8(out.stdout).unwrap();
    let want: Vec<String> = fx
        .oracle(fx.pc)
        .iter()
        .map(|(f, file, line)| format!("{f} (in tunnel) ({file}:{line})"))
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        want.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert!(lines[3].starts_with(&format!("{:#x} (no symbols: ", LOAD + 0x10_0000)));
    assert!(lines[3].ends_with("[address_not_found])"), "{}", lines[3]);

    // File addresses without --load-address, by image name.
    let out = Command::new(env!("CARGO_BIN_EXE_crashlog"))
        .args(["atos", "--symbols"])
        .arg(&fx.bin)
        .args(["--image", "tunnel", &format!("{:#x}", fx.main)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("main (in tunnel) (tunnel.c:")
    );
}

#[test]
fn batch_hook_output_dir_and_json() {
    let Some(fx) = Fixture::new() else { return };
    // The triage hook: many reports, one store, each object parsed once.
    let store = SymbolStore::from_paths([&fx.bin]).unwrap();
    let mut reports: Vec<Report> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                parse_one(fx.crash_text(&fx.build_id).as_bytes())
            } else {
                parse_one(fx.ips().as_bytes())
            }
        })
        .collect();
    let outcome = symbolicate_reports(&mut reports, &store);
    assert_eq!(outcome.symbolicated, 16);
    assert_eq!(store.objects_parsed(), 1);
    let first = crashed_frames(&reports[0]);
    for r in &reports {
        assert_eq!(crashed_frames(r)[..4], first[..4]);
    }

    // --output DIR: one file per input, same names; --json: the model.
    let a = fx.write("a.crash", &fx.crash_text(&fx.build_id));
    let b = fx.write("b.ips", &fx.ips());

    // The same through load_paths + symbolicate_loaded: outcomes per file, in order.
    let w = fx.write(
        "w.crash",
        &fx.crash_text("00112233445566778899aabbccddeeff00112233"),
    );
    let mut loaded = crashlog::load::load_paths(
        &[a.clone(), b.clone(), w.clone(), fx.path("missing.crash")],
        &crashlog::load::LoadOptions::default(),
    );
    let outcomes = crashlog::symbolicate::symbolicate_loaded(&mut loaded, &store);
    assert_eq!(outcomes.len(), loaded.len());
    for ((path, outcome), l) in outcomes.iter().zip(&loaded) {
        assert_eq!(path, &l.path);
        if path == &a || path == &b {
            assert_eq!(outcome.symbolicated, 2);
            let r = &l.result.as_ref().unwrap()[0];
            assert_eq!(crashed_frames(r)[..4], first[..4]);
        } else if path == &w {
            assert_eq!(outcome.symbolicated, 0);
            assert_eq!(outcome.problems.len(), 1);
            assert_eq!(outcome.problems[0].error.name(), "uuid_mismatch");
        } else {
            assert!(l.result.is_err());
        }
    }
    assert_eq!(
        store.objects_parsed(),
        1,
        "still one parse for the whole run"
    );
    let dir = fx.path("out");
    let out = crashlog(
        &[
            "symbolicate",
            "--output",
            dir.to_str().unwrap(),
            "--symbols",
        ],
        &[&fx.bin, &a, &b],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    for name in ["a.crash", "b.ips"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let r = parse_one(&bytes);
        assert_eq!(crashed_frames(&r)[..4], first[..4], "{name}");
    }
    let out = crashlog(&["symbolicate", "--json", "--symbols"], &[&fx.bin, &a, &b]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "crashlog.parse.v1");
    for r in v["reports"].as_array().unwrap() {
        let frames = r["threads"][0]["frames"].as_array().unwrap();
        assert_eq!(frames[2]["symbol"], "handle_packet");
        assert_eq!(frames[0]["inline"], true);
    }

    // A --symbols path that does not exist is a usage error (exit 2).
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.path("nope"), &a]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("nope"));
}

#[test]
fn ips_panic_string_is_rewritten_and_stays_json() {
    let Some(fx) = Fixture::new() else { return };
    let kext: u64 = 0xffff_fe00_1666_4000;
    let panic = format!(
        "panic(cpu 0 caller 0xfffffe001555a000): nke: bad packet @nke.c:10\n\
Panicked task 0xfffffe1b4d5c8000: 0 pages, 612 threads: pid 0: kernel_task\n\
Panicked thread: 0xfffffe1b4d6e0000, backtrace: 0xfffffe8a35b2f520, tid: 1894\n\
\t\t  lr: {x:#018x}  fp: 0xfffffe8a35b2f5a0\n\
\t\t  lr: 0xfffffe001555a000  fp: 0x0000000000000000\n\
      Kernel Extensions in backtrace:\n\
         com.example.nke(1.0)[{uuid}]@{kext:#x}->{kend:#x}\n",
        x = kext + fx.ret,
        kend = kext + 0x4fff,
        uuid = fx.build_id,
    );
    let body = serde_json::json!({ "panicString": panic, "build": "macOS 26.3 (25D2128)", "product": "Mac17,2" });
    let input = format!(
        "{{\"bug_type\":\"210\",\"timestamp\":\"2026-03-30 14:11:23.00 +0300\",\"os_version\":\"macOS 26.3 (25D2128)\"}}\n{}\n",
        serde_json::to_string_pretty(&body).unwrap()
    );
    let path = fx.write("kext.ips", &input);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert_eq!(header, input.lines().next().unwrap());
    let v: serde_json::Value = serde_json::from_str(body).expect("valid JSON");
    let new_panic = v["panicString"].as_str().unwrap();
    let want = format!(
        "\t\t  lr: {:#018x}  fp: 0xfffffe8a35b2f5a0  main + {} (tunnel.c:{})",
        kext + fx.ret,
        fx.ret - fx.main,
        line_of("L_MAIN_CALL")
    );
    assert_eq!(new_panic.lines().nth(3), Some(want.as_str()));
    // The kernel frame (no kernel binary given) and every other line are unchanged.
    let old: Vec<&str> = panic.lines().collect();
    let new: Vec<&str> = new_panic.lines().collect();
    assert_eq!(old.len(), new.len());
    for (i, (a, b)) in old.iter().zip(&new).enumerate() {
        if i != 3 {
            assert_eq!(a, b);
        }
    }
    assert_eq!(v["product"], "Mac17,2");
}

/// With no matching symbols, every report of the test corpus comes back byte for byte,
/// and truncated copies never make the rewrite panic.
#[test]
fn reports_without_matching_symbols_come_back_unchanged() {
    let store = SymbolStore::new();
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match crashlog::symbolicate::rewrite(&bytes, &store) {
            Ok(r) => {
                assert_eq!(
                    String::from_utf8_lossy(&r.bytes),
                    String::from_utf8_lossy(&bytes),
                    "{}",
                    path.display()
                );
                assert_eq!(r.outcome.symbolicated, 0);
                checked += 1;
            }
            Err(e) => {
                // Logs and deliberately broken files.
                assert!(
                    matches!(
                        e.name(),
                        "unsupported"
                            | "invalid_json"
                            | "malformed"
                            | "unrecognized"
                            | "empty"
                            | "wrong_format"
                    ),
                    "{}: {e}",
                    path.display()
                );
            }
        }
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len().saturating_sub(7),
        ] {
            let _ = crashlog::symbolicate::rewrite(&bytes[..cut], &store);
        }
    }
    assert!(checked >= 15, "only {checked} reports rewritten");
}

/// A stack pasted without binary images has no UUID: the image is matched by name (and
/// the report's arch when it states one); a binary of another name is not used, silently.
#[test]
fn pasted_stack_without_uuid_matches_by_name() {
    let Some(fx) = Fixture::new() else { return };
    let paste = format!(
        "Crash seen in the field, from the forum:\n\
0   tunnel                        {:#018x} {LOAD:#x} + {}\n\
1   tunnel                        {:#018x} {LOAD:#x} + {}\n\
thanks\n",
        LOAD + fx.pc,
        fx.pc,
        LOAD + fx.ret,
        fx.ret
    );
    let path = fx.write("paste.txt", &paste);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let r = parse_one(text.as_bytes());
    let symbols: Vec<&str> = r.threads[0]
        .frames
        .iter()
        .map(|f| f.symbol.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(symbols, ["fold16", "checksum", "handle_packet", "main"]);
    assert!(text.starts_with("Crash seen in the field, from the forum:\n"));
    assert!(text.ends_with("\nthanks\n"));

    // Another name: nothing matches, nothing is printed about it, the paste is unchanged.
    let other = fx.path("other");
    std::fs::copy(&fx.bin, &other).unwrap();
    let out = crashlog(&["symbolicate", "--symbols"], &[&other, &path]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), paste);
    assert!(!String::from_utf8(out.stderr).unwrap().contains("warning"));
}

/// Console's "Translated Report (Full Report Below)": both the translated text and the
/// full `.ips` after it are symbolicated; the result still reads as that wrapper.
#[test]
fn translated_report_rewrites_the_text_and_the_full_report() {
    let Some(fx) = Fixture::new() else { return };
    let input = format!(
        "-------------------------------------\n\
Translated Report (Full Report Below)\n\
-------------------------------------\n\
\n{}\n\
-----------\n\
Full Report\n\
-----------\n\
\n{}",
        fx.crash_text(&fx.build_id),
        fx.ips()
    );
    let path = fx.write("translated.ips", &input);
    let out = crashlog(&["symbolicate", "--symbols"], &[&fx.bin, &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let split = text.find("\nFull Report\n").unwrap();
    let (head, full) = text.split_at(split);
    assert!(head.contains(&format!(
        "{:#018x} handle_packet + {}",
        LOAD + fx.pc,
        fx.pc - fx.handle_packet
    )));
    let json_start = full.find('{').unwrap();
    let (header, body) = full[json_start..].split_once('\n').unwrap();
    serde_json::from_str::<serde_json::Value>(header).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["threads"][0]["frames"][2]["symbol"], "handle_packet");
    let r = parse_one(text.as_bytes());
    assert_eq!(r.format, crashlog::SourceFormat::TranslatedReport);
    let mut want = fx.expected_chain();
    want.push(("start".into(), "".into(), 0, false));
    assert_eq!(crashed_frames(&r), want);
}

/// Issue 5: `crashlog triage --symbols` symbolicates before signing, so an unsymbolicated
/// crash lands in the cluster of its already-symbolicated twin (and without symbols the
/// two stay apart, which is what makes the flag necessary).
#[test]
fn triage_with_symbols_clusters_the_unsymbolicated_crash_with_its_twin() {
    let Some(fx) = Fixture::new() else { return };
    let reports = tempfile::tempdir().unwrap();
    std::fs::write(
        reports.path().join("tunnel-raw.crash"),
        fx.crash_text(&fx.build_id),
    )
    .unwrap();
    std::fs::write(reports.path().join("tunnel-twin.crash"), fx.crash_twin()).unwrap();
    let clusters = |with_symbols: bool| -> Vec<(String, u64)> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crashlog"));
        cmd.arg("triage")
            .arg(reports.path())
            .args(["--format", "json"]);
        if with_symbols {
            cmd.arg("--symbols").arg(&fx.bin);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["signature"].as_str().unwrap().to_owned(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let apart = clusters(false);
    assert_eq!(apart.len(), 2, "without symbols: {apart:?}");
    let together = clusters(true);
    assert_eq!(together.len(), 1, "with symbols: {together:?}");
    assert_eq!(together[0].1, 2);
    assert!(together[0].0.contains("handle_packet"), "{together:?}");

    // A --symbols path that does not exist is a usage error naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_crashlog"))
        .arg("triage")
        .arg(reports.path())
        .args(["--symbols", "/nonexistent/symbols"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/symbols"));
}

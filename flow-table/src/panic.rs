//! Kernel panics: where misuse caught by the allocator or `os_refcnt` is recorded, and
//! their rendering as an arm64 panic report (text and `.ips` bug_type 210).

use std::fmt::Write as _;

use crate::log::format_timestamp;
use crate::sync::Mutex;

/// Which check fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicKind {
    /// The allocator (`skmem_slab_free_locked` …).
    Allocator,
    /// `os_refcnt` (underflow, overflow, resurrection).
    Refcnt,
    /// A kernel `VERIFY`/`ASSERT`.
    Assertion,
}

/// A recorded panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicRecord {
    /// Which check fired.
    pub kind: PanicKind,
    /// The panic string (without the location suffix).
    pub message: String,
    /// The `@file.c:line` suffix.
    pub location: &'static str,
}

impl PanicRecord {
    /// `message location`, as printed after `panic(cpu N caller 0x…): `.
    pub fn panic_string(&self) -> String {
        format!("{} {}", self.message, self.location)
    }
}

/// What happens when a check fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PanicPolicy {
    /// Record the first panic and carry on (the simulator renders it afterwards).
    #[default]
    Record,
    /// Panic the calling thread with the message, like the kernel.
    Panic,
}

/// Collects the first panic (the kernel stops at its first one).
#[derive(Debug, Default)]
pub struct PanicSink {
    first: Mutex<Option<PanicRecord>>,
    count: Mutex<usize>,
    policy: PanicPolicy,
}

impl PanicSink {
    /// A sink with `policy`.
    pub fn new(policy: PanicPolicy) -> Self {
        PanicSink {
            first: Mutex::new(None),
            count: Mutex::new(0),
            policy,
        }
    }

    /// Records a panic (or panics, under [`PanicPolicy::Panic`]).
    pub fn record(&self, kind: PanicKind, message: String, location: &'static str) {
        if self.policy == PanicPolicy::Panic {
            panic!("{message} {location}");
        }
        *self.count.lock() += 1;
        let mut g = self.first.lock();
        if g.is_none() {
            *g = Some(PanicRecord {
                kind,
                message,
                location,
            });
        }
    }

    /// The first panic, if any.
    pub fn first(&self) -> Option<PanicRecord> {
        self.first.lock().clone()
    }

    /// How many checks fired.
    pub fn count(&self) -> usize {
        *self.count.lock()
    }
}

/// Machine and build details printed in the report header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicHost {
    /// `OS version:` build, e.g. `25D2128`.
    pub os_build: String,
    /// Marketing version, e.g. `26.3`.
    pub os_version: String,
    /// `Kernel version:` line.
    pub kernel_version: String,
    /// `iBoot version:`.
    pub iboot: String,
    /// Model, e.g. `Mac17,2`.
    pub product: String,
    /// Number of CPUs.
    pub ncpu: u32,
}

impl Default for PanicHost {
    fn default() -> Self {
        PanicHost {
            os_build: "25D2128".into(),
            os_version: "26.3".into(),
            kernel_version: "Darwin Kernel Version 25.3.0: Wed Jan 28 20:54:55 PST 2026; root:xnu-12377.91.3~2/RELEASE_ARM64_T6050".into(),
            iboot: "iBoot-13822.81.10".into(),
            product: "Mac17,2".into(),
            ncpu: 10,
        }
    }
}

/// Per-report varying details (deterministic from the simulator's seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicContext {
    /// The CPU that panicked.
    pub cpu: u32,
    /// `caller 0x…` (the return address into the check).
    pub caller: u64,
    /// Panicked task's process (pid, name).
    pub pid: u32,
    /// Process name.
    pub process: String,
    /// Thread id.
    pub tid: u64,
    /// Wall-clock time of the panic (µs since epoch).
    pub time_us: u64,
    /// Kernel slide.
    pub slide: u64,
    /// Backtrace return addresses, innermost first.
    pub backtrace: Vec<u64>,
}

/// The panic text (the report's `panicString`): `panic(cpu …)` line, arm64 header block,
/// CPU state, panicked task/thread with backtrace, and the kext trailer.
pub fn render_panic_text(p: &PanicRecord, host: &PanicHost, cx: &PanicContext) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "panic(cpu {} caller {:#018x}): {}",
        cx.cpu,
        cx.caller,
        p.panic_string()
    );
    let _ = writeln!(s, "Debugger message: panic");
    let _ = writeln!(s, "Memory ID: 0xff");
    let _ = writeln!(s, "OS release type: User");
    let _ = writeln!(s, "OS version: {}", host.os_build);
    let _ = writeln!(s, "macOS version: {}", host.os_build);
    let _ = writeln!(s, "Kernel version: {}", host.kernel_version);
    let _ = writeln!(s, "iBoot version: {}", host.iboot);
    let _ = writeln!(s, "iBoot Stage 2 version: {}", host.iboot);
    let _ = writeln!(s, "secure boot?: YES");
    let _ = writeln!(s, "roots installed: 0");
    let _ = writeln!(s, "Paniclog version: 14");
    let _ = writeln!(s, "Kernel slide:      {:#018x}", cx.slide);
    let _ = writeln!(
        s,
        "Kernel text base:  {:#018x}",
        0xfffffe0007004000u64 + cx.slide
    );
    let _ = writeln!(
        s,
        "mach_absolute_time: {:#x}",
        cx.time_us.wrapping_mul(24) & 0xffff_ffff_ffff
    );
    let secs = cx.time_us / 1_000_000;
    let _ = writeln!(s, "Epoch Time:        sec       usec");
    let _ = writeln!(
        s,
        "  Boot    : {:#010x} {:#010x}",
        secs.saturating_sub(86_400),
        0x3a2e1u32
    );
    let _ = writeln!(
        s,
        "  Sleep   : {:#010x} {:#010x}",
        secs.saturating_sub(3_600),
        0x1b2c3u32
    );
    let _ = writeln!(
        s,
        "  Wake    : {:#010x} {:#010x}",
        secs.saturating_sub(3_000),
        0x4d5e6u32
    );
    let _ = writeln!(
        s,
        "  Calendar: {:#010x} {:#010x}",
        secs,
        cx.time_us % 1_000_000
    );
    s.push('\n');
    let _ = writeln!(s, "Zone info:");
    let _ = writeln!(s, "  Zone map: 0xfffffe1000000000 - 0xfffffe3000000000");
    let _ = writeln!(s, "  . VM    : 0xfffffe1000000000 - 0xfffffe1aaaa88000");
    let _ = writeln!(s, "  . RO    : 0xfffffe1aaaa88000 - 0xfffffe1d55550000");
    let _ = writeln!(s, "  . GEN0  : 0xfffffe1d55550000 - 0xfffffe2000018000");
    let _ = writeln!(
        s,
        "TPIDRx_ELy = {{1: 0xfffffe2a1c3f4000  0: 0x0000000000000000  0ro: 0x0000000000000000 }}"
    );
    for cpu in 0..host.ncpu {
        if cpu == cx.cpu {
            let _ = writeln!(
                s,
                "CORE {cpu} is the one that panicked. Check the full backtrace for details."
            );
        } else {
            let pc = 0xfffffe0007a1c000u64 + cx.slide + u64::from(cpu) * 0x1f4;
            let _ = writeln!(
                s,
                "CORE {cpu}: PC={pc:#018x}, LR={:#018x}, FP={:#018x}",
                pc + 0x4c,
                0xfffffe8ff3a0bf00u64 - u64::from(cpu) * 0x4000
            );
        }
    }
    let _ = writeln!(
        s,
        "Compressor Info: 0% of compressed pages limit (OK) and 0% of segments limit (OK) with 0 swapfiles and OK swap space"
    );
    let _ = writeln!(
        s,
        "Panicked task 0xfffffe2a1b8e0000: 0 pages, {} threads: pid {}: {}",
        if cx.pid == 0 { 612 } else { 9 },
        cx.pid,
        cx.process
    );
    let _ = writeln!(
        s,
        "Panicked thread: 0xfffffe2a1c3f4000, backtrace: 0xfffffe8ff3a0b2a0, tid: {}",
        cx.tid
    );
    let mut fp = 0xfffffe8ff3a0b410u64;
    for lr in &cx.backtrace {
        let _ = writeln!(s, "\t\t  lr: {lr:#018x}  fp: {fp:#018x}");
        fp += 0x60;
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "last started kext at 3418211011: com.apple.driver.AppleUSBHostMergeProperties\t1.2 (addr 0xfffffe0007b2c000, size 2024)"
    );
    let _ = writeln!(s, "loaded kexts:");
    for k in [
        "com.apple.filesystems.smbfs\t6.0",
        "com.apple.nke.l2tp\t1.9",
        "com.apple.iokit.IOSkywalkFamily\t1.0",
        "com.apple.driver.AppleT8110DART\t1",
        "com.apple.driver.AppleSEPManager\t1.0.1",
    ] {
        let _ = writeln!(s, "{k}");
    }
    s
}

fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// A `panic-full-*.ips` file (bug_type 210): a one-line JSON metadata header, then the
/// report body whose `panicString` holds [`render_panic_text`].
pub fn render_panic_ips(
    p: &PanicRecord,
    host: &PanicHost,
    cx: &PanicContext,
    incident: &str,
) -> String {
    let text = render_panic_text(p, host, cx);
    let ts = format_timestamp(cx.time_us);
    // "2026-11-21 07:30:22.481498+0000" -> "2026-11-21 07:30:22.00 +0000"
    let ts_ips = format!("{}.00 +0000", ts.get(..19).unwrap_or(&ts));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{{\"bug_type\":\"210\",\"timestamp\":\"{ts_ips}\",\"os_version\":\"macOS {} ({})\",\"roots_installed\":0,\"incident_id\":\"{incident}\"}}",
        host.os_version, host.os_build
    );
    let _ = writeln!(s, "{{");
    let _ = writeln!(
        s,
        "  \"build\" : \"macOS {} ({})\",",
        host.os_version, host.os_build
    );
    let _ = writeln!(s, "  \"product\" : \"{}\",", host.product);
    let _ = writeln!(s, "  \"socId\" : \"6050\",");
    let _ = writeln!(
        s,
        "  \"kernel\" : \"{}\",",
        json_escape(&host.kernel_version)
    );
    let _ = writeln!(s, "  \"incident\" : \"{incident}\",");
    let _ = writeln!(
        s,
        "  \"crashReporterKey\" : \"9f1c2b7e4d5a6f8091a2b3c4d5e6f708192a3b4c\","
    );
    let _ = writeln!(s, "  \"date\" : \"{ts_ips}\",");
    let _ = writeln!(s, "  \"panicString\" : \"{}\",", json_escape(&text));
    let _ = writeln!(s, "  \"panicFlags\" : \"0x902\",");
    let _ = writeln!(
        s,
        "  \"otherString\" : \"\\n** Stackshot Succeeded ** Bytes Traced 412380 (Uncompressed 1062912) **\\n\","
    );
    let _ = writeln!(
        s,
        "  \"memoryStatus\" : {{\"compressorSize\":0,\"pageSize\":16384}},"
    );
    let _ = writeln!(
        s,
        "  \"notes\" : [\"PC register does not match crashing frame (0x0 vs 0x0)\"]"
    );
    let _ = writeln!(s, "}}");
    s
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn sample() -> (PanicRecord, PanicHost, PanicContext) {
        (
            PanicRecord {
                kind: PanicKind::Allocator,
                message: "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xfffffe29e15f2400 on skm 0xfffffe2518aaa200".into(),
                location: "@skmem_slab.c:646",
            },
            PanicHost::default(),
            PanicContext {
                cpu: 0,
                caller: 0xfffffe003bb68224,
                pid: 0,
                process: "kernel_task".into(),
                tid: 2010,
                time_us: 1_795_246_222_481_498,
                slide: 0x34b60000,
                backtrace: vec![0xfffffe003bb11111, 0xfffffe003bb22222],
            },
        )
    }

    #[test]
    fn text_has_kernel_layout() {
        let (p, h, c) = sample();
        let t = render_panic_text(&p, &h, &c);
        let first = t.lines().next().unwrap();
        assert_eq!(
            first,
            "panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xfffffe29e15f2400 on skm 0xfffffe2518aaa200 @skmem_slab.c:646"
        );
        for needle in [
            "\nDebugger message: panic\n",
            "\nMemory ID: 0xff\n",
            "\nOS release type: User\n",
            "\nOS version: 25D2128\n",
            "\nKernel version: Darwin Kernel Version 25.3.0: ",
            "RELEASE_ARM64_T6050\n",
            "\nPaniclog version: 14\n",
            "\nCORE 0 is the one that panicked.",
            "\nPanicked task 0xfffffe2a1b8e0000: 0 pages, 612 threads: pid 0: kernel_task\n",
            "\t\t  lr: 0xfffffe003bb11111  fp: ",
        ] {
            assert!(t.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn ips_is_two_json_documents() {
        let (p, h, c) = sample();
        let ips = render_panic_ips(&p, &h, &c, "1B9C1A9E-4C0E-4B57-9A37-2D2B4E0F6A11");
        let (head, body) = ips.split_once('\n').unwrap();
        assert!(head.starts_with("{\"bug_type\":\"210\""));
        assert!(body.contains(
            "\"panicString\" : \"panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked"
        ));
        assert!(!body.contains("\n\"panic("));
    }

    #[test]
    fn sink_keeps_first() {
        let s = PanicSink::default();
        assert!(s.first().is_none());
        s.record(PanicKind::Refcnt, "a".into(), "@x.c:1");
        s.record(PanicKind::Allocator, "b".into(), "@y.c:2");
        assert_eq!(s.first().unwrap().message, "a");
        assert_eq!(s.count(), 2);
    }
}

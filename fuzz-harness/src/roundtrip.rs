//! `crashlog_roundtrip`: a structured report ([`RtReport`], built with `arbitrary`) is
//! rendered to each text format the way the system writes it — kernel panic text, a
//! pasted `lldb bt` stack, a legacy `.crash` report, an `.ips` crash report (bug_type
//! 309: JSON header line + JSON body), a `sample` call graph, and `log show`
//! default-style rows —
//! and parsed back with the format's parser; the content must come back unchanged
//! (message, OS build, process, frames with image/address/symbol/offset, log rows with
//! time, pid, process and message).
//!
//! crashlog's own renderers write the readable summary and JSON, not the system's text
//! formats, so the small renderers the round trip needs live here.

use std::fmt::Write as _;

use arbitrary::{Arbitrary, Unstructured};
use crashlog::parse;
use crashlog::{Frame, Report};

/// An identifier-like token: `[A-Za-z][A-Za-z0-9_]{0,15}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(pub String);

impl<'a> Arbitrary<'a> for Ident {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const FIRST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const REST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
        let mut s = String::new();
        s.push(char::from(*u.choose(FIRST)?));
        for _ in 0..u.int_in_range(0..=15)? {
            s.push(char::from(*u.choose(REST)?));
        }
        Ok(Ident(s))
    }
}

/// A message: 1–6 words of printable ASCII without leading/trailing blanks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words(pub String);

impl<'a> Arbitrary<'a> for Words {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,=/#%";
        let mut words = Vec::new();
        for _ in 0..u.int_in_range(1..=6)? {
            let mut w = String::new();
            for _ in 0..u.int_in_range(1..=10)? {
                w.push(char::from(*u.choose(CH)?));
            }
            words.push(w);
        }
        Ok(Words(words.join(" ")))
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct RtFrame {
    /// Image (binary) name.
    pub image: Ident,
    /// Low bits of the return address (made non-zero and put in a user range).
    pub addr: u32,
    /// Symbol name.
    pub symbol: Ident,
    /// Offset into the symbol.
    pub offset: u16,
}

impl RtFrame {
    fn address(&self) -> u64 {
        0x1_0000_0000 + u64::from(self.addr)
    }
}

/// One log row.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct RtLog {
    /// Seconds into the day.
    pub second_of_day: u32,
    /// Microseconds.
    pub micros: u32,
    /// Thread id.
    pub thread: u16,
    /// Pid.
    pub pid: u16,
    /// Process name.
    pub process: Ident,
    /// Message.
    pub message: Words,
}

/// The structured report the renderers start from.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct RtReport {
    /// Process name.
    pub process: Ident,
    /// Pid.
    pub pid: u16,
    /// OS build (e.g. `25D2128`): an identifier with a leading digit pair.
    pub build: Ident,
    /// Panic / exception message.
    pub message: Words,
    /// Crashed thread's frames (at most 16 are used, at least 1).
    pub frames: Vec<RtFrame>,
    /// Log rows (at most 8 are used).
    pub log: Vec<RtLog>,
}

impl RtReport {
    fn frames(&self) -> &[RtFrame] {
        &self.frames[..self.frames.len().min(16)]
    }

    fn build(&self) -> String {
        format!("25{}", self.build.0.chars().take(8).collect::<String>())
    }
}

/// Kernel panic text (`panic(cpu …)`, the header lines, and a backtrace in the
/// `0x… : 0x… symbol + off` style with the panicked process).
pub fn render_panic(r: &RtReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "panic(cpu 0 caller 0xfffffe003bb68224): {} @skmem_slab.c:646",
        r.message.0
    );
    let _ = writeln!(s, "Debugger message: panic");
    let _ = writeln!(s, "OS version: {}", r.build());
    let _ = writeln!(s, "Paniclog version: 14");
    let _ = writeln!(
        s,
        "Panicked task 0xfffffe2518bc4a38: 0 pages, 1 threads: pid {}: {}",
        r.pid, r.process.0
    );
    let _ = writeln!(
        s,
        "Panicked thread: 0xfffffe2519b8c1e0, backtrace: 0xfffffe8ab4dd3560, tid: 1894"
    );
    for f in r.frames() {
        let _ = writeln!(s, "\t\t  lr: {:#018x}  fp: 0xfffffe8ab4dd35e0", f.address());
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "last started kext at 1: com.example.kext 1.0 (addr 0xfffffe003f0b8000, size 4096)"
    );
    s
}

/// A pasted `lldb` backtrace.
pub fn render_lldb(r: &RtReport) -> String {
    let mut s = String::from("(lldb) bt\n");
    let _ = writeln!(
        s,
        "* thread #1, queue = 'com.apple.main-thread', stop reason = EXC_BAD_ACCESS (code=1, address=0x18)"
    );
    for (i, f) in r.frames().iter().enumerate() {
        let mark = if i == 0 { "  * " } else { "    " };
        let _ = writeln!(
            s,
            "{mark}frame #{i}: {:#018x} {}`{} + {}",
            f.address(),
            f.image.0,
            f.symbol.0,
            f.offset
        );
    }
    s
}

/// A legacy `.crash` report with the crashed thread's frames.
pub fn render_crash(r: &RtReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Process:               {} [{}]", r.process.0, r.pid);
    let _ = writeln!(s, "Path:                  /usr/local/bin/{}", r.process.0);
    let _ = writeln!(s, "Identifier:            {}", r.process.0);
    let _ = writeln!(s, "Version:               1.0");
    let _ = writeln!(s, "Code Type:             ARM-64 (Native)");
    let _ = writeln!(s, "Parent Process:        launchd [1]");
    let _ = writeln!(s);
    let _ = writeln!(s, "Date/Time:             2026-02-11 17:22:41.3817 +0100");
    let _ = writeln!(s, "OS Version:            macOS 26.2 ({})", r.build());
    let _ = writeln!(s, "Report Version:        12");
    let _ = writeln!(s);
    let _ = writeln!(s, "Exception Type:        EXC_BAD_ACCESS (SIGSEGV)");
    let _ = writeln!(
        s,
        "Exception Codes:       KERN_INVALID_ADDRESS at 0x0000000000000010"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Application Specific Information:");
    let _ = writeln!(s, "{}", r.message.0);
    let _ = writeln!(s);
    let _ = writeln!(s, "Thread 0 Crashed:");
    for (i, f) in r.frames().iter().enumerate() {
        let _ = writeln!(
            s,
            "{i:<4}{:<30}\t{:#018x} {} + {}",
            f.image.0,
            f.address(),
            f.symbol.0,
            f.offset
        );
    }
    let _ = writeln!(s);
    s
}

/// An `.ips` crash report (bug_type 309): the one-line JSON header, then the body with
/// the process, OS version, faulting thread and its frames (`imageOffset` into
/// `usedImages`, one image per distinct name, all based at 4 GiB).
pub fn render_ips(r: &RtReport) -> String {
    use serde_json::{Value, json};
    let mut images: Vec<&str> = Vec::new();
    let frames: Vec<Value> = r
        .frames()
        .iter()
        .map(|f| {
            let idx = match images.iter().position(|n| *n == f.image.0) {
                Some(i) => i,
                None => {
                    images.push(&f.image.0);
                    images.len() - 1
                }
            };
            json!({
                "imageOffset": f.addr,
                "imageIndex": idx,
                "symbol": f.symbol.0,
                "symbolLocation": f.offset,
            })
        })
        .collect();
    let used: Vec<Value> = images
        .iter()
        .map(|n| json!({"base": 0x1_0000_0000u64, "size": 0x1_0000_0000u64, "name": n, "source": "P"}))
        .collect();
    let header = json!({
        "app_name": r.process.0,
        "bug_type": "309",
        "os_version": format!("macOS 26.2 ({})", r.build()),
        "name": r.process.0,
        "incident_id": "A7F3C2E1-9B4D-4C5E-8F6A-1B2C3D4E5F60",
    });
    let body = json!({
        "bug_type": "309",
        "pid": r.pid,
        "procName": r.process.0,
        "procPath": format!("/usr/local/bin/{}", r.process.0),
        "cpuType": "ARM-64",
        "osVersion": {"train": "macOS 26.2", "build": r.build(), "releaseType": "User"},
        "exception": {"type": "EXC_BAD_ACCESS", "signal": "SIGSEGV", "message": r.message.0},
        "faultingThread": 0,
        "threads": [{"id": 1120381, "triggered": true, "frames": frames}],
        "usedImages": used,
    });
    let body = serde_json::to_string_pretty(&body).unwrap_or_default();
    format!("{header}\n{body}\n")
}

/// A `sample` report: the call graph of one thread, outermost frame first, each frame
/// one level deeper with the same sample count (so the heaviest path is the stack).
pub fn render_sample(r: &RtReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Analysis of sampling {} (pid {}) every 1 millisecond",
        r.process.0, r.pid
    );
    let _ = writeln!(s, "Process:         {} [{}]", r.process.0, r.pid);
    let _ = writeln!(s, "Path:            /usr/local/bin/{}", r.process.0);
    let _ = writeln!(s, "Code Type:       ARM64");
    let _ = writeln!(s, "OS Version:      macOS 26.2 ({})", r.build());
    let _ = writeln!(s, "Analysis Tool:   /usr/bin/sample");
    let _ = writeln!(s, "----");
    let _ = writeln!(s);
    let _ = writeln!(s, "Call graph:");
    let _ = writeln!(
        s,
        "    2519 Thread_1048576   DispatchQueue_1: com.apple.main-thread  (serial)"
    );
    for (depth, f) in r.frames().iter().rev().enumerate() {
        let _ = writeln!(
            s,
            "    +{} 2519 {}  (in {}) + {}  [{:#x}]",
            "  ".repeat(depth),
            f.symbol.0,
            f.image.0,
            f.offset,
            f.address()
        );
    }
    let _ = writeln!(s);
    s
}

/// `log show` default-style rows (with the header line).
pub fn render_log(r: &RtReport) -> String {
    let mut s = String::from(
        "Timestamp                       Thread     Type        Activity             PID    TTL  \n",
    );
    for l in log_rows(r) {
        let sec = l.second_of_day % 86_400;
        let _ = writeln!(
            s,
            "2026-03-30 {:02}:{:02}:{:02}.{:06}+0000 {:<10} Default     0x0                  {:<6} 0    {}: {}",
            sec / 3600,
            sec / 60 % 60,
            sec % 60,
            l.micros % 1_000_000,
            format!("{:#x}", l.thread),
            l.pid,
            l.process.0,
            l.message.0
        );
    }
    s
}

fn log_rows(r: &RtReport) -> &[RtLog] {
    &r.log[..r.log.len().min(8)]
}

fn check_frames(what: &str, text: &str, want: &[RtFrame], got: &[Frame], symbols: bool) {
    assert_eq!(
        got.len(),
        want.len(),
        "crashlog_roundtrip: {what}: {} frames back instead of {}\n{text}",
        got.len(),
        want.len()
    );
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(
            g.address,
            Some(w.address()),
            "crashlog_roundtrip: {what}: frame {i} address\n{text}"
        );
        if symbols {
            assert_eq!(
                (g.image.as_deref(), g.symbol.as_deref(), g.symbol_offset),
                (
                    Some(w.image.0.as_str()),
                    Some(w.symbol.0.as_str()),
                    Some(u64::from(w.offset))
                ),
                "crashlog_roundtrip: {what}: frame {i}\n{text}"
            );
        }
    }
}

fn crashed_frames(r: &Report) -> &[Frame] {
    r.crashed_thread()
        .or(r.threads.first())
        .map_or(&[], |t| t.frames.as_slice())
}

/// The harness body of `crashlog_roundtrip`.
///
/// # Panics
/// When a rendered report does not parse back to the same content.
pub fn run(data: &[u8]) {
    run_checked(data);
}

/// [`run`], returning whether the input decoded to a report with frames (and so was
/// checked).
pub fn run_checked(data: &[u8]) -> bool {
    let mut u = Unstructured::new(data);
    let Ok(mut r) = RtReport::arbitrary(&mut u) else {
        return false;
    };
    if r.frames.is_empty() {
        return false;
    }
    r.frames.truncate(16);
    r.log.truncate(8);
    check(&r);
    true
}

/// Renders `r` to each format and checks the parse.
pub fn check(r: &RtReport) {
    // Kernel panic text.
    let text = render_panic(r);
    let p = parse::parse_panic(text.as_bytes())
        .unwrap_or_else(|e| panic!("crashlog_roundtrip: panic text refused: {e}\n{text}"));
    let info = p.panic.as_ref().expect("a panic report has panic info");
    let want_msg = format!("{} @skmem_slab.c:646", r.message.0);
    assert!(
        info.message.as_deref() == Some(want_msg.as_str())
            || info.message.as_deref() == Some(r.message.0.as_str()),
        "crashlog_roundtrip: panic message {:?}\n{text}",
        info.message
    );
    assert_eq!(
        p.os.build.as_deref(),
        Some(r.build().as_str()),
        "crashlog_roundtrip: panic OS build\n{text}"
    );
    let task = info.panicked_task.as_ref();
    assert_eq!(
        (
            task.and_then(|t| t.pid),
            task.and_then(|t| t.name.as_deref())
        ),
        (Some(u32::from(r.pid)), Some(r.process.0.as_str())),
        "crashlog_roundtrip: panicked task\n{text}"
    );
    check_frames("panic", &text, r.frames(), crashed_frames(&p), false);

    // lldb stack.
    let text = render_lldb(r);
    let s = parse::parse_stack(text.as_bytes())
        .unwrap_or_else(|e| panic!("crashlog_roundtrip: lldb stack refused: {e}\n{text}"));
    check_frames("lldb", &text, r.frames(), crashed_frames(&s), true);

    // .crash text.
    let text = render_crash(r);
    let c = parse::parse_crash(text.as_bytes())
        .unwrap_or_else(|e| panic!("crashlog_roundtrip: .crash refused: {e}\n{text}"));
    assert_eq!(
        (c.process.name.as_deref(), c.process.pid),
        (Some(r.process.0.as_str()), Some(u32::from(r.pid))),
        "crashlog_roundtrip: .crash process\n{text}"
    );
    assert_eq!(
        c.os.build.as_deref(),
        Some(r.build().as_str()),
        "crashlog_roundtrip: .crash OS build\n{text}"
    );
    check_frames(".crash", &text, r.frames(), crashed_frames(&c), true);

    // .ips (bug_type 309).
    let text = render_ips(r);
    let i = parse::parse_ips(text.as_bytes())
        .unwrap_or_else(|e| panic!("crashlog_roundtrip: .ips refused: {e}\n{text}"));
    assert_eq!(
        (
            i.process.name.as_deref(),
            i.process.pid,
            i.bug_type.as_deref()
        ),
        (
            Some(r.process.0.as_str()),
            Some(u32::from(r.pid)),
            Some("309")
        ),
        "crashlog_roundtrip: .ips process\n{text}"
    );
    assert_eq!(
        i.os.build.as_deref(),
        Some(r.build().as_str()),
        "crashlog_roundtrip: .ips OS build\n{text}"
    );
    assert_eq!(
        i.exception.as_ref().and_then(|e| e.message.as_deref()),
        Some(r.message.0.as_str()),
        "crashlog_roundtrip: .ips exception message\n{text}"
    );
    check_frames(".ips", &text, r.frames(), crashed_frames(&i), true);

    // sample call graph.
    let text = render_sample(r);
    let h = parse::parse_spindump(text.as_bytes())
        .unwrap_or_else(|e| panic!("crashlog_roundtrip: sample refused: {e}\n{text}"));
    assert_eq!(
        (h.process.name.as_deref(), h.process.pid),
        (Some(r.process.0.as_str()), Some(u32::from(r.pid))),
        "crashlog_roundtrip: sample process\n{text}"
    );
    let t = h.threads.first().map_or(&[][..], |t| t.frames.as_slice());
    check_frames("sample", &text, r.frames(), t, true);

    // log show rows.
    let rows = log_rows(r);
    if !rows.is_empty() {
        let text = render_log(r);
        let l = parse::parse_log(text.as_bytes())
            .unwrap_or_else(|e| panic!("crashlog_roundtrip: log refused: {e}\n{text}"));
        assert_eq!(
            l.log.len(),
            rows.len(),
            "crashlog_roundtrip: log rows\n{text}"
        );
        for (i, (w, g)) in rows.iter().zip(&l.log).enumerate() {
            let sec = w.second_of_day % 86_400;
            let t = g.timestamp.as_ref();
            assert_eq!(
                (
                    t.map(|t| (t.hour, t.minute, t.second, t.nanos)),
                    g.thread,
                    g.pid,
                    g.process.as_deref(),
                    g.message.as_str()
                ),
                (
                    Some((
                        (sec / 3600) as u8,
                        (sec / 60 % 60) as u8,
                        (sec % 60) as u8,
                        (w.micros % 1_000_000) * 1000
                    )),
                    Some(u64::from(w.thread)),
                    Some(u32::from(w.pid)),
                    Some(w.process.0.as_str()),
                    w.message.0.as_str()
                ),
                "crashlog_roundtrip: log row {i}\n{text}"
            );
        }
    }
}

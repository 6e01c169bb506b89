//! crashlog parsing speed.
//!
//! 1. `crash_fixtures/*`: each legacy `.crash` fixture of `../shared/conformance`
//!    parsed by crashlog and by the peer `apple-crash-report-parser`, side by side (the
//!    ratio is printed after the group).
//! 2. `log_styles/*`: log text throughput (MB/s) of `crashlog::parse::LogReader` for each
//!    `log show` style (plus ASL) on a generated ~100 MB log, built in memory at start.
//!
//! Run (short times):
//! `cargo bench -p flowslab-benches --bench parse -- --warm-up-time 1 --measurement-time 3`
//! Set `PARSE_BENCH_LOG_MB` to change the generated log size (default 100).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FIXTURES: [&str; 5] = [
    "bruno",
    "XCDYouTubeKit-54",
    "handcrafted",
    "spaces",
    "xcode16",
];

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/apple-crash-report-parser/tests/fixtures")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn crash_fixtures(c: &mut Criterion) {
    let mut group = c.benchmark_group("crash_fixtures");
    let mut ratios = Vec::new();
    for name in FIXTURES {
        let text = fixture(name);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("crashlog/{name}"), |b| {
            b.iter(|| {
                crashlog::parse::parse_crash(black_box(text.as_bytes())).map(|r| r.threads.len())
            })
        });
        group.bench_function(format!("apple-crash-report-parser/{name}"), |b| {
            b.iter(|| {
                apple_crash_report_parser::AppleCrashReport::from_str(black_box(&text))
                    .map(|r| r.threads.len())
            })
        });
        // A plain timing for the printed ratio (criterion's own numbers are the reference).
        let time = |f: &dyn Fn()| {
            let n = 200;
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() / f64::from(n)
        };
        let ours = time(&|| {
            black_box(crashlog::parse::parse_crash(text.as_bytes()).ok());
        });
        let peer = time(&|| {
            black_box(apple_crash_report_parser::AppleCrashReport::from_str(&text).ok());
        });
        ratios.push((name, ours, peer));
    }
    group.finish();
    println!("\ncrash fixtures: crashlog vs apple-crash-report-parser (mean of 200 runs)");
    for (name, ours, peer) in ratios {
        println!(
            "  {name:<18} crashlog {:>8.1} µs   peer {:>8.1} µs   peer/crashlog = {:.2}x",
            ours * 1e6,
            peer * 1e6,
            peer / ours
        );
    }
}

/// Deterministic pseudo-random numbers (xorshift) for the generated log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PROCS: [(&str, &str, &str, &str); 6] = [
    ("kernel", "", "", ""),
    (
        "nesessionmanager",
        "NetworkExtension",
        "com.apple.networkextension",
        "session",
    ),
    ("wifip2pd", "Network", "com.apple.network", "connection"),
    ("Arc", "Network", "com.apple.network", "connection"),
    ("mDNSResponder", "", "com.apple.mDNSResponder", "Default"),
    (
        "com.example.tunnel",
        "NetworkExtension",
        "com.apple.networkextension",
        "provider",
    ),
];

const MSGS: [&str; 6] = [
    "NESMVPNSession[Primary Tunnel:Secure DNS: got On Demand start message from pid 5454",
    "Failed to create socket: Too many open files",
    "[C9.1.1.1 IPv4#e5b4bb04:443 in_progress socket-flow (satisfied (Path is satisfied), interface: en0[802.11], ipv4, ipv6, dns, uses wifi)] event: flow:start_connect @0.075s",
    "(402262746): No more valid control units, disabling flow divert",
    "tcp connect outgoing: [<IPv4-redacted>:49703<-><IPv4-redacted>:443] interface: en0 (skipped: 0) so_gencnt: 14634 t_state: SYN_SENT",
    "nw_path_shared_necp_fd necp_open failed [24: Too many open files]",
];

const TYPES: [(&str, &str); 4] = [
    ("Default", "Df"),
    ("Info", "I "),
    ("Error", "E "),
    ("Fault", "F "),
];

fn gen_line(style: &str, i: u64, rng: &mut Rng, out: &mut String) {
    let (proc_, sender, sub, cat) = PROCS[(rng.next() % 6) as usize];
    let msg = MSGS[(rng.next() % 6) as usize];
    let (ty, ty2) = TYPES[(rng.next() % 4) as usize];
    let pid = if proc_ == "kernel" {
        0
    } else {
        100 + rng.next() % 900
    };
    let tid = 0x1000 + rng.next() % 0xfffff;
    let (h, m, s, us) = (
        (i / 3_600_000_000) % 24,
        (i / 60_000_000) % 60,
        (i / 1_000_000) % 60,
        i % 1_000_000,
    );
    let ts = format!("2026-03-30 {h:02}:{m:02}:{s:02}.{us:06}");
    let sender_part = if sender.is_empty() {
        String::new()
    } else {
        format!("({sender}) ")
    };
    let sub_part = if sub.is_empty() {
        String::new()
    } else {
        format!("[{sub}:{cat}] ")
    };
    match style {
        "default" => {
            let _ = writeln!(
                out,
                "{ts}+0300 {tid:<#10x} {ty:<11} 0x0                  {pid:<6} 0    {proc_}: {sender_part}{sub_part}{msg}"
            );
        }
        "compact" => {
            let _ = writeln!(
                out,
                "{} {ty2} {proc_}[{pid}:{tid:x}] {sub_part}{msg}",
                &ts[..23]
            );
        }
        "syslog" => {
            let _ = writeln!(
                out,
                "{ts}+0300  localhost {proc_}[{pid}]: {sender_part}{sub_part}{msg}"
            );
        }
        "ndjson" | "json" => {
            let lead = if style == "json" {
                if i == 0 { "[" } else { "," }
            } else {
                ""
            };
            let json = format!(
                "{{\"timezoneName\":\"\",\"messageType\":\"{ty}\",\"eventType\":\"logEvent\",\"subsystem\":\"{sub}\",\"category\":\"{cat}\",\"threadID\":{tid},\"processID\":{pid},\"processImagePath\":\"/usr/libexec/{proc_}\",\"senderImagePath\":\"/usr/lib/{sender}\",\"timestamp\":\"{ts}+0300\",\"eventMessage\":{}}}",
                serde_escape(msg)
            );
            if style == "json" {
                // Pretty-printed like `log show --style json`: one field per line.
                let pretty = json
                    .replacen('{', "{\n  ", 1)
                    .replace(",\"", ",\n  \"")
                    .replace('}', "\n}");
                let _ = writeln!(out, "{lead}{pretty}");
            } else {
                let _ = writeln!(out, "{json}");
            }
        }
        "asl" => {
            let _ = writeln!(
                out,
                "Mar 30 {h:02}:{m:02}:{s:02} iPhone {proc_}[{pid}] <Notice>: {msg}"
            );
        }
        _ => unreachable!("unknown style"),
    }
}

fn serde_escape(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn gen_log(style: &str, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 4096);
    match style {
        "default" => out.push_str("Timestamp                       Thread     Type        Activity             PID    TTL  \n"),
        "compact" => out.push_str("Timestamp               Ty Process[PID:TID]\n"),
        "syslog" => out.push_str("Timestamp                       (process)[PID]\n"),
        _ => {}
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut i = 0u64;
    while out.len() < bytes {
        gen_line(style, i * 1013, &mut rng, &mut out);
        i += 1;
    }
    if style == "json" {
        out.push_str("]\n");
    }
    out
}

fn log_styles(c: &mut Criterion) {
    let mb: usize = std::env::var("PARSE_BENCH_LOG_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut group = c.benchmark_group("log_styles");
    group.sample_size(10);
    for style in ["default", "compact", "syslog", "json", "ndjson", "asl"] {
        let log = gen_log(style, mb * 1024 * 1024);
        let expected = crashlog::parse::LogReader::new(log.as_bytes())
            .filter(Result::is_ok)
            .count();
        assert!(expected > 0, "{style}: generated log does not parse");
        group.throughput(Throughput::Bytes(log.len() as u64));
        group.bench_function(style, |b| {
            b.iter(|| {
                let n = crashlog::parse::LogReader::new(black_box(log.as_bytes()))
                    .filter(Result::is_ok)
                    .count();
                assert_eq!(n, expected);
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, crash_fixtures, log_styles);
criterion_main!(benches);

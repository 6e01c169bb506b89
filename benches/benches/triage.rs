//! `crashlog triage` speed.
//!
//! 1. `triage_reports/10k_files`: the whole pipeline (walk, sniff, parse in parallel,
//!    signatures, known-issue matching, clustering) on 10,000 generated report files
//!    (panic text, legacy `.crash`, pasted stacks; ~60 distinct bugs with per-report
//!    addresses, offsets and inlined frames) written to a temp dir at start.
//! 2. `triage_log/<N>MB`: a generated `log show` (default style) log of N MB streamed
//!    through the log detectors ([`crashlog::triage::scan_log_stream`]) from a `Read`
//!    implementation that produces the text on the fly — never held in memory. Default
//!    N = 256; the issue's 1 GB case: `TRIAGE_BENCH_LOG_MB=1024`.
//! 3. `cluster/{1k,10k,100k}`: the clustering pass alone on generated signatures; the
//!    time per report stays flat (near-linear: keys index the candidates, never all pairs).
//!
//! Run (short times):
//! `cargo bench -p flowslab-benches --bench triage -- --warm-up-time 1 --measurement-time 5`

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{BufReader, Read};

use crashlog::model::ReportKind;
use crashlog::triage::signature::Signature;
use crashlog::triage::{NoProgress, Rules, TriageOptions, cluster, scan_log_stream, triage_paths};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// xorshift64*: deterministic inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: [&str; 16] = [
    "conn", "path", "flow", "queue", "buffer", "socket", "frame", "timer", "cache", "route",
    "proxy", "packet", "session", "stream", "agent", "lock",
];

fn func(bug: u64, depth: u64) -> String {
    let a = WORDS[((bug * 7 + depth * 3) % 16) as usize];
    let b = WORDS[((bug * 11 + depth * 5 + 1) % 16) as usize];
    format!("app_{a}_{b}_{bug}_{depth}")
}

fn gen_report(i: u64, bugs: u64, rng: &mut Rng) -> (String, String) {
    let bug = rng.below(bugs);
    let inlined = rng.below(4) == 0;
    let mut frames: Vec<String> = Vec::new();
    if inlined {
        frames.push(format!("{}_inline", func(bug, 0)));
    }
    for d in 0..10 {
        frames.push(func(bug, d));
    }
    match i % 3 {
        0 => {
            let body = format!(
                "panic(cpu {} caller 0xfffffe003b{:06x}): {}: invalid object 0xfffffe29{:08x} in zone {} @{}.c:{}\nDebugger message: panic\nOS version: 25D{}\nKernel version: Darwin Kernel Version 25.3.0: root:xnu-12377.91.3~2/RELEASE_ARM64_T6050\n",
                rng.below(8),
                rng.below(1 << 24),
                func(bug, 0),
                rng.below(1 << 32),
                bug % 5,
                WORDS[(bug % 16) as usize],
                100 + rng.below(900),
                2100 + bug % 50,
            );
            (format!("r{i:05}.panic"), body)
        }
        1 => {
            let mut s = format!(
                "Process:         Worker [{}]\nIdentifier:      com.example.worker\nCode Type:       ARM-64 (Native)\nDate/Time:       2026-03-{:02} 10:{:02}:{:02}.000 +0000\nOS Version:      macOS 26.3 (25D2128)\n\nException Type:  EXC_CRASH (SIGABRT)\n\nThread 0 Crashed::  Dispatch queue: com.apple.main-thread\n0   libsystem_kernel.dylib        \t0x000000018a6d65f0 __pthread_kill + 8\n1   libsystem_c.dylib             \t0x000000018a61ba30 abort + 180\n",
                1000 + rng.below(60000),
                1 + rng.below(28),
                rng.below(60),
                rng.below(60)
            );
            for (k, f) in frames.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{:<4}Worker                        \t0x{:016x} {f} + {}",
                    k + 2,
                    0x1_04a8_0000 + rng.below(1 << 20),
                    rng.below(2000)
                );
            }
            s.push_str("\nBinary Images:\n       0x104a80000 -        0x104b3ffff com.example.worker (1.0) <7c1e2d3f-4a5b-3c6d-8e7f-9a0b1c2d3e4f> /Applications/Worker.app/Contents/MacOS/Worker\n");
            (format!("r{i:05}.crash"), s)
        }
        _ => {
            let mut s = String::from("Crashed thread:\n");
            for (k, f) in frames.iter().enumerate() {
                let _ = writeln!(s, "{k} Worker {f} + {}", rng.below(2000));
            }
            (format!("r{i:05}.txt"), s)
        }
    }
}

fn triage_reports(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = 10_000u64;
    let mut bytes = 0u64;
    for i in 0..n {
        let (name, body) = gen_report(i, 60, &mut rng);
        bytes += body.len() as u64;
        std::fs::write(dir.path().join(name), body).expect("write report");
    }
    let rules = Rules::builtin();
    let paths = vec![dir.path().to_path_buf()];
    let t = triage_paths(&rules, &paths, &TriageOptions::default(), &NoProgress);
    println!(
        "\ntriage of {n} generated reports ({:.1} MB): {} reports, {} clusters, {} errors",
        bytes as f64 / 1e6,
        t.reports.len(),
        t.clusters.len(),
        t.errors.len()
    );
    let mut group = c.benchmark_group("triage_reports");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n));
    group.bench_function("10k_files", |b| {
        b.iter(|| {
            triage_paths(
                &rules,
                black_box(&paths),
                &TriageOptions::default(),
                &NoProgress,
            )
            .clusters
            .len()
        })
    });
    group.finish();
}

/// `log show` default-style text generated on the fly: mostly quiet traffic, a
/// start-command storm, wifip2pd EMFILE lines and an unknown error burst.
struct GenLog {
    remaining: usize,
    buf: Vec<u8>,
    pos: usize,
    line: u64,
    rng: Rng,
}

impl GenLog {
    fn new(bytes: usize) -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(
            b"Timestamp                       Thread     Type        Activity             PID    TTL  \n",
        );
        GenLog {
            remaining: bytes,
            buf,
            pos: 0,
            line: 0,
            rng: Rng(42),
        }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        let mut s = String::with_capacity(64 * 1024);
        while s.len() < 60 * 1024 {
            self.line += 1;
            let l = self.line;
            // 20,000 lines per simulated second.
            let us = l * 50;
            let (sec, frac) = (us / 1_000_000, us % 1_000_000);
            let (h, m, sc) = ((sec / 3600) % 24, (sec / 60) % 60, sec % 60);
            let (ty, proc_, msg): (&str, &str, String) = match self.rng.below(1000) {
                0..=4 => (
                    "Default",
                    "nesessionmanager",
                    "[com.apple.networkextension:session] NESMVPNSession[Primary Tunnel:Secure DNS: Skip a start command from Spotify Helper[69038]: session in state connecting".into(),
                ),
                5 => (
                    "Error",
                    "wifip2pd",
                    "[com.apple.WiFiP2P:nan] Failed to create socket: Too many open files".into(),
                ),
                6..=8 => (
                    "Error",
                    "configd",
                    format!(
                        "[com.apple.IPConfiguration:Server] en0: DHCP lease renewal failed (xid 0x{:x})",
                        self.rng.below(1 << 24)
                    ),
                ),
                _ => (
                    "Default",
                    "kernel",
                    format!(
                        "SK[6]: flow_entry_alloc allocated entry \"fe 0xfffffe29{:08x} proc app nx_port {} flow_uuid 5A1E0000-0000-4001-8000-{:012x}\"",
                        self.rng.below(1 << 32),
                        self.rng.below(64),
                        l
                    ),
                ),
            };
            let _ = writeln!(
                s,
                "2026-11-21 {h:02}:{m:02}:{sc:02}.{frac:06}+0000 0x{:<8x} {ty:<11} 0x0                  {:<6} 0    {proc_}: {msg}",
                0x1f9 + l % 7,
                100 + l % 900
            );
        }
        let take = s.len().min(self.remaining);
        // Whole lines only (the last chunk may end early).
        let cut = s.as_bytes()[..take]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let cut = if take == s.len() { take } else { cut };
        self.buf.extend_from_slice(&s.as_bytes()[..cut]);
        self.remaining -= cut.min(self.remaining);
        if cut == 0 {
            self.remaining = 0;
        }
    }
}

impl Read for GenLog {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            self.refill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn triage_log(c: &mut Criterion) {
    let mb: usize = std::env::var("TRIAGE_BENCH_LOG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let bytes = mb * 1024 * 1024;
    let rules = Rules::builtin();
    let (findings, entries, _) = scan_log_stream(
        &rules,
        BufReader::with_capacity(256 * 1024, GenLog::new(bytes)),
        "gen.log",
    );
    println!(
        "\ntriage of a generated {mb} MB log: {entries} entries, findings: {}",
        findings
            .iter()
            .map(|f| format!(
                "{} ×{}",
                f.known_issue.as_deref().unwrap_or("unknown burst"),
                f.count
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The generator alone (its text formatting is part of every measured iteration).
    let t = std::time::Instant::now();
    let n = std::io::copy(&mut GenLog::new(bytes), &mut std::io::sink()).unwrap_or(0);
    let gen_s = t.elapsed().as_secs_f64();
    println!(
        "  generator alone: {:.0} MiB/s ({n} bytes in {gen_s:.2} s)",
        n as f64 / 1048576.0 / gen_s
    );
    let mut group = c.benchmark_group("triage_log");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("{mb}MB"), |b| {
        b.iter(|| {
            let (f, n, _) = scan_log_stream(
                &rules,
                BufReader::with_capacity(256 * 1024, GenLog::new(bytes)),
                "gen.log",
            );
            (f.len(), n)
        })
    });
    group.finish();
}

fn gen_signatures(n: usize) -> Vec<Signature> {
    let mut rng = Rng(7);
    let bugs = (n / 20).max(1) as u64;
    (0..n)
        .map(|i| {
            let bug = rng.below(bugs);
            let mut frames: Vec<String> = Vec::new();
            if rng.below(4) == 0 {
                frames.push(format!("{}_inline", func(bug, 0)));
            }
            for d in 0..8 {
                frames.push(func(bug, d));
            }
            let kind = if i % 2 == 0 {
                ReportKind::Crash
            } else {
                ReportKind::Stack
            };
            let head = if kind == ReportKind::Crash {
                "EXC_BAD_ACCESS (SIGSEGV) | "
            } else {
                "stack: "
            };
            Signature {
                kind,
                text: format!("{head}{}", frames[..3].join(" | ")),
                exception: (kind == ReportKind::Crash).then(|| "EXC_BAD_ACCESS (SIGSEGV)".into()),
                template: None,
                subsystem: None,
                blocked_in: None,
                all_frames: frames.clone(),
                frames,
                skipped: Vec::new(),
                notes: Vec::new(),
            }
        })
        .collect()
}

fn clustering(c: &mut Criterion) {
    let mut group = c.benchmark_group("cluster");
    println!("\nclustering pass (near-linear: time per report should stay flat)");
    for n in [1_000usize, 10_000, 100_000] {
        let sigs = gen_signatures(n);
        let refs: Vec<&Signature> = sigs.iter().collect();
        let t = std::time::Instant::now();
        let cl = cluster::cluster(&refs);
        let e = t.elapsed();
        println!(
            "  {n:>7} reports -> {:>5} clusters in {:>8.2} ms ({:.2} µs/report, {:.2} similarity comparisons/report)",
            cl.clusters.len(),
            e.as_secs_f64() * 1e3,
            e.as_secs_f64() * 1e6 / n as f64,
            cl.comparisons as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            group.sample_size(10);
        }
        group.bench_function(format!("{}k", n / 1000), |b| {
            b.iter_batched(
                || refs.clone(),
                |r| cluster::cluster(black_box(&r)).clusters.len(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, triage_reports, triage_log, clustering);
criterion_main!(benches);

//! Malformed input never panics: every entry point on mutated windows of every sample, and
//! hostile shapes (deep JSON, deep call graphs, huge lines). A smoke test for the fuzz
//! campaign, kept small enough for the normal test run.

use crashlog::parse::{self, Format, LogReader};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: [&[u8]; 14] = [
    b"panic(cpu ",
    b"Thread 0 Crashed:\n",
    b"0x",
    b"{",
    b"}",
    b"[",
    b"\n",
    b" + ",
    b"\"bug_type\":\"309\"",
    b"Binary Images:\n",
    b"2023-07-19 08:22:51.916784+0300 ",
    b" -> ",
    b"\xff\xfe",
    b"Call graph:\n",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let start = rng.below(input.len());
    let len = 1 + rng.below(4096);
    let mut v = input[start.min(input.len())..(start + len).min(input.len())].to_vec();
    if rng.below(4) == 0 {
        // Keep the start of the file (headers) sometimes.
        v = input[..len.min(input.len())].to_vec();
    }
    for _ in 0..rng.below(6) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(i..i, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            _ if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                let chunk = v[a..b].to_vec();
                v.extend_from_slice(&chunk);
            }
            _ => {}
        }
    }
    v
}

fn every_entry_point(bytes: &[u8]) {
    for f in Format::ALL {
        let _ = parse::parse(bytes, f);
    }
    let _ = parse::detect(bytes);
    for e in LogReader::new(bytes).take(10_000) {
        let _ = e;
    }
}

fn samples() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in [
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/apple-crash-report-parser/tests/fixtures"
        ),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/pycrashreport/tests"
        ),
    ] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out
}

#[test]
fn mutated_samples_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for s in samples() {
        every_entry_point(&s);
        for _ in 0..25 {
            let m = mutate(&mut rng, &s);
            every_entry_point(&m);
        }
    }
}

#[test]
fn hostile_shapes() {
    // Deep JSON: serde's recursion limit turns it into an error, not a stack overflow.
    let mut deep = b"{\"bug_type\":\"309\"}\n{\"threads\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    assert_eq!(parse::parse_auto(&deep).unwrap_err().name(), "invalid_json");
    let mut deep_log = vec![b'{'; 200_000];
    deep_log.push(b'\n');
    every_entry_point(&deep_log);

    // A call graph 4,200 levels deep: more levels than frames kept.
    let mut graph = String::from("Call graph:\n    1 Thread_1\n");
    for i in 0..4_200 {
        graph.push_str(&" ".repeat(4 + i));
        graph.push_str("+ 1 f  (in X) + 1  [0x1]\n");
    }
    let r = parse::parse_spindump(graph.as_bytes()).unwrap();
    assert!(r.threads[0].frames.len() <= 4096);

    // One enormous frame-less line and many tiny threads.
    every_entry_point(&vec![b'A'; 1 << 18]);
    let mut threads = String::new();
    for i in 0..5_000 {
        threads.push_str(&format!("Thread {i}:\n0 libx.dylib 0x{i:x} f + 1\n\n"));
    }
    let r = parse::parse_crash(threads.as_bytes()).unwrap();
    assert!(r.threads.len() <= 4096);
}

//! `crashlog_parse_<family>` and `crashlog_parse_auto`: any bytes into one parser entry
//! point. Oracles (beyond "did not panic"):
//!
//! * **bounded output**: every list the model holds (threads, frames, images, kexts, log
//!   entries, warnings, registers) has at most one element per input byte (plus a small
//!   constant), and the model's strings stay within a constant factor of the input;
//! * **renderable**: the readable summary and the JSON document render without error,
//!   and the JSON document is valid JSON;
//! * **streaming is chunking-invariant** (log family): [`LogReader`] over a reader that
//!   hands out 1–13 bytes at a time yields the same entries as over the whole slice.

use std::io::BufReader;

use crashlog::Report;
use crashlog::parse::{self, LogReader};
use crashlog::render::{JsonWriter, write_text};
use serde_json::Value;

/// A parser entry point of `crashlog::parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// [`parse::parse_auto`].
    Auto,
    /// [`parse::parse_ips`].
    Ips,
    /// [`parse::parse_panic`].
    Panic,
    /// [`parse::parse_crash`].
    Crash,
    /// [`parse::parse_stack`].
    Stack,
    /// [`parse::parse_spindump`].
    Spindump,
    /// [`parse::parse_log`].
    Log,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 7] = [
        Family::Auto,
        Family::Ips,
        Family::Panic,
        Family::Crash,
        Family::Stack,
        Family::Spindump,
        Family::Log,
    ];

    /// The suffix of the target name (`crashlog_parse_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Auto => "auto",
            Family::Ips => "ips",
            Family::Panic => "panic",
            Family::Crash => "crash",
            Family::Stack => "stack",
            Family::Spindump => "spindump",
            Family::Log => "log",
        }
    }

    /// Runs the family's parser on `data`.
    pub fn parse(self, data: &[u8]) -> Vec<Report> {
        let one = |r: Result<Report, crashlog::ParseError>| r.into_iter().collect::<Vec<_>>();
        match self {
            Family::Auto => parse::parse_auto(data).unwrap_or_default(),
            Family::Ips => one(parse::parse_ips(data)),
            Family::Panic => one(parse::parse_panic(data)),
            Family::Crash => one(parse::parse_crash(data)),
            Family::Stack => one(parse::parse_stack(data)),
            Family::Spindump => one(parse::parse_spindump(data)),
            Family::Log => one(parse::parse_log(data)),
        }
    }
}

/// Elements allowed per input byte in all of a report's lists together, plus this slack.
const ELEMENT_SLACK: usize = 64;
/// Model string bytes allowed per input byte (lossy UTF-8 turns one byte into three),
/// plus [`STRING_SLACK`].
const STRING_FACTOR: usize = 64;
/// Constant part of the string bound (fixed labels such as format names).
const STRING_SLACK: usize = 1 << 20;

/// Sizes of a report's JSON value: array/map elements and string bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ModelSize {
    /// Elements of every array (and entries of every map below the top level).
    pub elements: usize,
    /// Bytes of every string value and map key.
    pub string_bytes: usize,
}

/// Measures a report's serialized model.
pub fn model_size(r: &Report) -> ModelSize {
    fn walk(v: &Value, s: &mut ModelSize, depth: usize) {
        match v {
            Value::String(x) => s.string_bytes += x.len(),
            Value::Array(a) => {
                s.elements += a.len();
                a.iter().for_each(|x| walk(x, s, depth + 1));
            }
            Value::Object(m) => {
                if depth > 0 {
                    s.elements += m.len().saturating_sub(32);
                }
                for (k, x) in m {
                    s.string_bytes += k.len();
                    walk(x, s, depth + 1);
                }
            }
            _ => {}
        }
    }
    let mut s = ModelSize::default();
    let v = serde_json::to_value(r).unwrap_or(Value::Null);
    walk(&v, &mut s, 0);
    s
}

/// The harness body of `crashlog_parse_<family>`.
///
/// # Panics
/// When an oracle fails (that is the finding).
pub fn run(family: Family, data: &[u8]) {
    let reports = family.parse(data);
    assert!(
        reports.len() <= data.len() + 1,
        "{} reports from {} bytes",
        reports.len(),
        data.len()
    );
    for r in &reports {
        check_bounded(family, data.len(), r);
        check_renders(r);
    }
    if family == Family::Log {
        check_log_chunking(data);
    }
}

fn check_bounded(family: Family, len: usize, r: &Report) {
    let size = model_size(r);
    assert!(
        size.elements <= len + ELEMENT_SLACK,
        "{}: {} list elements from {len} input bytes",
        family.name(),
        size.elements
    );
    // Field names count too: a report has a few hundred bytes of keys per frame at most.
    let bound = STRING_FACTOR
        .saturating_mul(len)
        .saturating_add(STRING_SLACK);
    assert!(
        size.string_bytes <= bound,
        "{}: {} string bytes in the model from {len} input bytes (bound {bound})",
        family.name(),
        size.string_bytes
    );
}

fn check_renders(r: &Report) {
    let mut text = Vec::new();
    write_text(&mut text, "fuzz", r).expect("the summary renders into a Vec");
    let mut json = JsonWriter::new(Vec::new()).expect("JSON writer opens");
    json.report("fuzz", r).expect("the JSON document renders");
    let bytes = json.finish().expect("the JSON document closes");
    if let Err(e) = serde_json::from_slice::<Value>(&bytes) {
        panic!(
            "render::JsonWriter wrote invalid JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

fn check_log_chunking(data: &[u8]) {
    let whole = collect_log(LogReader::new(data));
    let cap = 1 + data.len() % 13;
    let chunked = collect_log(LogReader::new(BufReader::with_capacity(cap, data)));
    assert_eq!(
        whole, chunked,
        "LogReader gives different entries when the reader hands out {cap} bytes at a time"
    );
}

fn collect_log<R: std::io::BufRead>(
    reader: LogReader<R>,
) -> Vec<Result<crashlog::LogEntry, String>> {
    reader.map(|r| r.map_err(|e| e.to_string())).collect()
}

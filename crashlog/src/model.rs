//! The report model: one shape for every format crashlog reads.
//!
//! A [`Report`] is what one input yields: a kernel panic, an app crash, a hang, a pasted
//! stack or a log excerpt. Every field is optional because every format carries a
//! different subset; parsers fill what their input states and leave the rest `None`.
//! Addresses are `u64` here and hex strings (`"0x1a2b"`) in JSON (see the JSON contract in
//! [`crate::json_schema`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of problem a report describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A kernel panic (panic text, `.panic`, bug_type 210/110/151/409).
    Panic,
    /// A user-space crash (`.ips` 309/308/385/327, bug_type 109, legacy `.crash`).
    Crash,
    /// A hang or spin report (spindump, `sample`).
    Hang,
    /// A stack pasted on its own (forum post, chat, bug tracker).
    Stack,
    /// A unified-log (or syslog/ASL) excerpt.
    Log,
}

impl ReportKind {
    /// The stable lower-case name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Crash => "crash",
            Self::Hang => "hang",
            Self::Stack => "stack",
            Self::Log => "log",
        }
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The concrete input layout a report was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Plain panic text (`panic(cpu …)`), optionally inside `*** Panic Report ***`.
    PanicText,
    /// `.ips`/`.panic` JSON with the panic text in the body.
    IpsPanic,
    /// `.ips` JSON app crash (bug_type 309 and relatives).
    IpsCrash,
    /// bug_type 109: a JSON header line followed by a legacy text report.
    IpsLegacyText,
    /// Console's "Translated Report (Full Report Below)" wrapper.
    TranslatedReport,
    /// Legacy `.crash` text.
    CrashText,
    /// A pasted stack.
    PastedStack,
    /// A spindump or `sample` call graph.
    Spindump,
    /// Log text (see [`LogEntry::style`] for the style of each line).
    LogText,
}

/// Operating system identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// Name: `macOS`, `iPhone OS`, `Mac OS X`, `iOS`, `watchOS`…
    pub name: Option<String>,
    /// Marketing version: `14.5.1`, `26.3`.
    pub version: Option<String>,
    /// Build: `18E212`, `25D2128`.
    pub build: Option<String>,
    /// Release type: `User`, `Internal`, `Restore`…
    pub release_type: Option<String>,
    /// The string as written in the report, e.g. `iPhone OS 14.5.1 (18E212)`.
    pub raw: Option<String>,
}

impl Os {
    /// Split `iPhone OS 14.5.1 (18E212)` / `macOS 12.1 (21C52)` into name, version, build.
    pub fn from_raw(raw: &str) -> Os {
        let raw = raw.trim();
        let mut os = Os {
            raw: Some(raw.to_string()),
            ..Os::default()
        };
        let (head, build) = match (raw.rfind('('), raw.ends_with(')')) {
            (Some(open), true) => (
                raw[..open].trim(),
                Some(raw[open + 1..raw.len() - 1].trim()),
            ),
            _ => (raw, None),
        };
        os.build = build.filter(|b| !b.is_empty()).map(str::to_string);
        match head.rfind(' ') {
            Some(sp) if head[sp + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
                os.name = Some(head[..sp].trim().to_string()).filter(|s| !s.is_empty());
                os.version = Some(head[sp + 1..].to_string());
            }
            _ if is_build(head) && os.build.is_none() => os.build = Some(head.to_string()),
            _ if head.starts_with(|c: char| c.is_ascii_digit()) => {
                os.version = Some(head.to_string());
            }
            _ if !head.is_empty() => os.name = Some(head.to_string()),
            _ => {}
        }
        os
    }
}

/// `25D2128`, `18E212`, `20C65`: digits, one or two letters, digits (optional suffix letter).
fn is_build(s: &str) -> bool {
    let b = s.as_bytes();
    let d1 = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let l = b[d1..]
        .iter()
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    let d2 = b[d1 + l..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let rest = &b[d1 + l + d2..];
    (1..=2).contains(&d1)
        && (1..=2).contains(&l)
        && d2 >= 1
        && rest.len() <= 1
        && rest.iter().all(u8::is_ascii_lowercase)
}

/// The process a report is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process name.
    pub name: Option<String>,
    /// Process id.
    pub pid: Option<u32>,
    /// Executable path.
    pub path: Option<String>,
    /// Parent process name.
    pub parent: Option<String>,
    /// Parent process id.
    pub parent_pid: Option<u32>,
    /// Responsible process (macOS), e.g. the app that launched a helper.
    pub responsible: Option<String>,
    /// Bundle identifier (`Identifier:` / `bundleInfo.CFBundleIdentifier`).
    pub bundle_id: Option<String>,
    /// App version as written (`1 (3.0)`, `4.21.1`).
    pub version: Option<String>,
    /// Code type / CPU (`ARM-64`, `X86-64 (Native)`).
    pub code_type: Option<String>,
    /// Coalition name.
    pub coalition: Option<String>,
}

/// The exception that stopped a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Mach exception type, e.g. `EXC_BAD_ACCESS`, `EXC_CRASH (SIGABRT)`, `SIGSEGV`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Signal name, e.g. `SIGSEGV`.
    pub signal: Option<String>,
    /// Exception codes as written.
    pub codes: Option<String>,
    /// Subtype, e.g. `KERN_INVALID_ADDRESS at 0x0000000000000000`.
    pub subtype: Option<String>,
    /// Exception message or note (`EXC_CORPSE_NOTIFY`).
    pub message: Option<String>,
}

/// How the process was terminated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// Namespace, e.g. `SIGNAL`, `CODESIGNING`.
    pub namespace: Option<String>,
    /// Code within the namespace.
    pub code: Option<String>,
    /// Human indicator, e.g. `Segmentation fault: 11`, `Abort trap: 6`.
    pub indicator: Option<String>,
    /// Free-form reason text.
    pub reason: Option<String>,
    /// Who terminated it (`exc handler`, `launchd [1]`).
    pub by_process: Option<String>,
}

/// The task (process) that was running when the kernel panicked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanickedTask {
    /// Task pointer.
    #[serde(with = "hex_opt")]
    pub address: Option<u64>,
    /// Resident pages.
    pub pages: Option<u64>,
    /// Thread count.
    pub threads: Option<u64>,
    /// Process id.
    pub pid: Option<u32>,
    /// Process name (possibly truncated by the kernel).
    pub name: Option<String>,
}

/// The thread that panicked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanickedThread {
    /// Thread pointer.
    #[serde(with = "hex_opt")]
    pub address: Option<u64>,
    /// Backtrace pointer (arm64 layout).
    #[serde(with = "hex_opt")]
    pub backtrace: Option<u64>,
    /// Thread id.
    pub tid: Option<u64>,
}

/// A kernel extension named in a panic's backtrace section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kext {
    /// Bundle id, e.g. `com.apple.driver.AppleM68Buttons`.
    pub name: String,
    /// Version, e.g. `1.0d1`.
    pub version: Option<String>,
    /// UUID, upper-case dashed as written.
    pub uuid: Option<String>,
    /// Load address.
    #[serde(with = "hex_opt")]
    pub start: Option<u64>,
    /// Last address.
    #[serde(with = "hex_opt")]
    pub end: Option<u64>,
    /// True for a `dependency:` line (a kext the previous one depends on).
    pub dependency: bool,
}

/// A loaded kext from the `loaded kexts:` list (name and version only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedKext {
    /// Bundle id.
    pub name: String,
    /// Version.
    pub version: Option<String>,
}

/// Everything a kernel panic states beyond threads and images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicInfo {
    /// The panic message after `panic(cpu N caller 0x…): `.
    pub message: Option<String>,
    /// Panicking CPU.
    pub cpu: Option<u32>,
    /// Caller address.
    #[serde(with = "hex_opt")]
    pub caller: Option<u64>,
    /// `Debugger message:`.
    pub debugger_message: Option<String>,
    /// `Kernel version:` line (Darwin version with the xnu build).
    pub kernel_version: Option<String>,
    /// `Paniclog version:`.
    pub paniclog_version: Option<u32>,
    /// `Kernel slide:`.
    #[serde(with = "hex_opt")]
    pub kernel_slide: Option<u64>,
    /// `Kernel text base:`.
    #[serde(with = "hex_opt")]
    pub kernel_text_base: Option<u64>,
    /// `Kernel UUID:`.
    pub kernel_uuid: Option<String>,
    /// Process name of the current thread (`Process name corresponding to current thread`).
    pub process_name: Option<String>,
    /// `Panicked task …` line.
    pub panicked_task: Option<PanickedTask>,
    /// `Panicked thread: …` line.
    pub panicked_thread: Option<PanickedThread>,
    /// Kexts named in the backtrace (`Kernel Extensions in backtrace:`).
    pub kexts: Vec<Kext>,
    /// `last started kext at …` line.
    pub last_started_kext: Option<String>,
    /// `loaded kexts:` list.
    pub loaded_kexts: Vec<LoadedKext>,
}

/// Summary of a hang report (spindump / sample).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HangInfo {
    /// `Event:` line, e.g. `hang`, `cpu usage`.
    pub event: Option<String>,
    /// `Duration:` as written, e.g. `4.12s`.
    pub duration: Option<String>,
    /// `Steps:` as written.
    pub steps: Option<String>,
    /// Total samples of the sampled process (`sample` header or heaviest thread).
    pub samples: Option<u64>,
}

/// One stack frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Position in the thread, 0 = innermost.
    pub index: u32,
    /// Image (module) name, `None` for `???`.
    pub image: Option<String>,
    /// UUID of the image (lower-case dashed), when known from the image list.
    pub image_uuid: Option<String>,
    /// Index into [`Report::binary_images`], when resolved.
    pub image_index: Option<usize>,
    /// Architecture of the image (`arm64e`, `x86_64`), from the image list or, failing
    /// that, from the report's code type / kernel build.
    pub arch: Option<String>,
    /// Absolute instruction address.
    #[serde(with = "hex_opt")]
    pub address: Option<u64>,
    /// Load address of the image this frame is in.
    #[serde(with = "hex_opt")]
    pub image_base: Option<u64>,
    /// Offset of `address` from `image_base`.
    #[serde(with = "hex_opt")]
    pub image_offset: Option<u64>,
    /// Symbol (function) name.
    pub symbol: Option<String>,
    /// Offset from the symbol start (bytes).
    pub symbol_offset: Option<u64>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// True for an inlined frame (`.ips` `inline`).
    pub inline: bool,
    /// Samples attributed to this frame (call graphs only).
    pub samples: Option<u64>,
    /// Depth in a call graph (0 = outermost); `None` outside call graphs.
    pub depth: Option<u32>,
}

/// One thread with its frames.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// Thread number in the report (`Thread 5`), or its position.
    pub index: u32,
    /// Kernel thread id, when stated.
    pub id: Option<u64>,
    /// Thread name.
    pub name: Option<String>,
    /// Dispatch queue.
    pub queue: Option<String>,
    /// True for the crashed / triggered / panicked thread.
    pub crashed: bool,
    /// Frames, innermost first (call graphs: outermost first, see [`Frame::depth`]).
    pub frames: Vec<Frame>,
    /// Register values of the crashed thread, by register name.
    #[serde(with = "hex_map")]
    pub registers: BTreeMap<String, u64>,
}

/// A loaded binary image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryImage {
    /// Image name (`libsystem_kernel.dylib`, `App Namespace`).
    pub name: Option<String>,
    /// Full path.
    pub path: Option<String>,
    /// UUID, normalised to lower-case dashed form.
    pub uuid: Option<String>,
    /// Load address.
    #[serde(with = "hex_opt")]
    pub base: Option<u64>,
    /// Size in bytes (`end - start + 1` for text reports).
    pub size: Option<u64>,
    /// Architecture (`arm64e`, `x86_64`).
    pub arch: Option<String>,
    /// Version as written (`400.9.4 - 1.0.0`).
    pub version: Option<String>,
    /// True when the report marks the image as not part of the OS (`+` prefix).
    pub app: bool,
    /// `.ips` image source code (P, S, C, K, U, T, A).
    pub source: Option<String>,
}

/// Log entry type: the unified-log message type or ASL level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogType {
    /// `Default` (`Df`).
    Default,
    /// `Info` (`I`).
    Info,
    /// `Debug` (`Db`).
    Debug,
    /// `Error` (`E`).
    Error,
    /// `Fault` (`F`, `Fa`).
    Fault,
    /// Activity create events.
    Activity,
    /// Signposts.
    Signpost,
    /// ASL / syslog `<Notice>`.
    Notice,
    /// ASL / syslog `<Warning>`.
    Warning,
    /// Anything else, as written.
    Other(String),
}

impl LogType {
    /// Map a written type (`Default`, `Df`, `<Notice>`, `Fault`, `error`) to a type.
    pub fn parse(s: &str) -> LogType {
        let s = s
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim_end_matches(':');
        match s {
            "Default" | "Df" | "default" | "Dflt" => LogType::Default,
            "Info" | "I" | "info" | "Inf" => LogType::Info,
            "Debug" | "Db" | "debug" | "D" => LogType::Debug,
            "Error" | "E" | "error" | "Err" | "Er" => LogType::Error,
            "Fault" | "F" | "Fa" | "fault" | "Flt" => LogType::Fault,
            "Activity" | "A" | "Ac" | "activityCreateEvent" => LogType::Activity,
            "Signpost" | "Sp" | "signpostEvent" => LogType::Signpost,
            "Notice" | "notice" | "N" => LogType::Notice,
            "Warning" | "warning" | "W" => LogType::Warning,
            other => LogType::Other(other.to_string()),
        }
    }

    /// Canonical name.
    pub fn as_str(&self) -> &str {
        match self {
            LogType::Default => "Default",
            LogType::Info => "Info",
            LogType::Debug => "Debug",
            LogType::Error => "Error",
            LogType::Fault => "Fault",
            LogType::Activity => "Activity",
            LogType::Signpost => "Signpost",
            LogType::Notice => "Notice",
            LogType::Warning => "Warning",
            LogType::Other(s) => s,
        }
    }
}

impl Serialize for LogType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(LogType::parse(&s))
    }
}

/// Which text style a log line was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStyle {
    /// `log show` default style.
    Default,
    /// `log show --style compact`.
    Compact,
    /// `log show --style syslog`.
    Syslog,
    /// `log show --style json` (array of objects).
    Json,
    /// `log show --style ndjson`.
    Ndjson,
    /// Xcode console: `2024-… App[pid:tid] message`.
    Xcode,
    /// idevicesyslog / pre-Sierra ASL: `Oct 11 09:21:10 host proc[pid] <Notice>: msg`.
    Asl,
    /// Console.app copy: tab-separated columns.
    Console,
}

/// A log timestamp with its zone. Years are 0 and zones `None` where the style omits them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogTime {
    /// Year (0 when the style has none, e.g. ASL `Oct 11 09:21:10`).
    pub year: u16,
    /// Month 1-12 (0 when unknown).
    pub month: u8,
    /// Day 1-31 (0 when unknown).
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Nanoseconds.
    pub nanos: u32,
    /// Offset from UTC in minutes, when the style carries a zone.
    pub offset_minutes: Option<i16>,
}

impl LogTime {
    /// Seconds since the Unix epoch (UTC) as a float, when date and zone are known.
    /// Without a zone the local time is treated as UTC; without a date, `None`.
    pub fn unix_seconds(&self) -> Option<f64> {
        if self.year == 0 || self.month == 0 || self.day == 0 {
            return None;
        }
        let days = days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        );
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes.unwrap_or(0)) * 60;
        Some(secs as f64 + f64::from(self.nanos) / 1e9)
    }

    /// Seconds since midnight (local), for styles without a date.
    pub fn seconds_of_day(&self) -> f64 {
        f64::from(self.hour) * 3600.0
            + f64::from(self.minute) * 60.0
            + f64::from(self.second)
            + f64::from(self.nanos) / 1e9
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for LogTime {
    /// ISO-8601-like: `2023-07-19T08:22:51.916784+03:00`; `--10-11T09:21:10` without a year;
    /// `T17:11:52.481498+02:00` without a date.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.month != 0 {
            if self.year != 0 {
                write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)?;
            } else {
                write!(f, "--{:02}-{:02}", self.month, self.day)?;
            }
        }
        write!(f, "T{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        if self.nanos != 0 {
            let mut frac = format!("{:09}", self.nanos);
            while frac.len() > 3 && frac.ends_with("000") {
                frac.truncate(frac.len() - 3);
            }
            write!(f, ".{frac}")?;
        }
        if let Some(off) = self.offset_minutes {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", a / 60, a % 60)?;
        }
        Ok(())
    }
}

impl Serialize for LogTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::parse::time::parse_iso(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}")))
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// 1-based line of the input where the entry starts.
    pub line: u64,
    /// Style the entry was written in.
    pub style: LogStyle,
    /// Timestamp with zone where the style has one.
    pub timestamp: Option<LogTime>,
    /// Thread id.
    #[serde(with = "hex_opt")]
    pub thread: Option<u64>,
    /// Message type / level.
    #[serde(rename = "type")]
    pub log_type: Option<LogType>,
    /// Activity id.
    #[serde(with = "hex_opt")]
    pub activity: Option<u64>,
    /// Process id.
    pub pid: Option<u32>,
    /// Process name.
    pub process: Option<String>,
    /// Sender image (library or kext that logged), when it differs from the process.
    pub sender: Option<String>,
    /// Host name (syslog/ASL styles).
    pub host: Option<String>,
    /// Subsystem, e.g. `com.apple.network`.
    pub subsystem: Option<String>,
    /// Category, e.g. `connection`.
    pub category: Option<String>,
    /// Message; continuation lines are joined with `\n`.
    pub message: String,
    /// Number of physical lines the entry spans (1 + continuation lines).
    pub lines: u32,
}

impl LogEntry {
    /// An entry with only a style, line and message.
    pub fn new(style: LogStyle, line: u64, message: String) -> LogEntry {
        LogEntry {
            line,
            style,
            timestamp: None,
            thread: None,
            log_type: None,
            activity: None,
            pid: None,
            process: None,
            sender: None,
            host: None,
            subsystem: None,
            category: None,
            message,
            lines: 1,
        }
    }
}

/// A problem a parser noticed but worked around (the report is still usable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// 1-based line of the input, when known.
    pub line: Option<u64>,
    /// What was wrong.
    pub message: String,
}

/// One normalized report. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// What kind of problem this is.
    pub kind: ReportKind,
    /// The layout it was read from.
    pub format: SourceFormat,
    /// `.ips` bug_type, as a string (`"309"`).
    pub bug_type: Option<String>,
    /// Incident identifier (upper-case UUID as written).
    pub incident_id: Option<String>,
    /// Report date/time as written.
    pub timestamp: Option<String>,
    /// Operating system.
    pub os: Os,
    /// Hardware model (`MacBookPro18,2`, `iPhone11,8`).
    pub device: Option<String>,
    /// The process (crashes, hangs) or the panicked task's process (panics).
    pub process: Process,
    /// Exception.
    pub exception: Option<Exception>,
    /// Termination.
    pub termination: Option<Termination>,
    /// Application Specific Information / `asi` text.
    pub application_specific: Option<String>,
    /// Index of the crashed/triggered thread (`Thread N` number or `faultingThread`).
    pub crashed_thread: Option<u32>,
    /// Panic details (panics only).
    pub panic: Option<PanicInfo>,
    /// Hang details (hangs only).
    pub hang: Option<HangInfo>,
    /// Threads with frames.
    pub threads: Vec<Thread>,
    /// The backtrace of the last Objective-C/Swift exception (`Last Exception Backtrace`,
    /// `.ips` `lastExceptionBacktrace`), innermost first.
    pub last_exception_backtrace: Option<Thread>,
    /// Binary images.
    pub binary_images: Vec<BinaryImage>,
    /// Problems worked around while parsing.
    pub warnings: Vec<Warning>,
    /// Log entries (log excerpts). Kept last: the CLI streams it.
    pub log: Vec<LogEntry>,
}

impl Report {
    /// An empty report of a kind and format.
    pub fn new(kind: ReportKind, format: SourceFormat) -> Report {
        Report {
            kind,
            format,
            bug_type: None,
            incident_id: None,
            timestamp: None,
            os: Os::default(),
            device: None,
            process: Process::default(),
            exception: None,
            termination: None,
            application_specific: None,
            crashed_thread: None,
            panic: None,
            hang: None,
            threads: Vec::new(),
            last_exception_backtrace: None,
            binary_images: Vec::new(),
            warnings: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The crashed (or triggered / panicked) thread, if any.
    pub fn crashed_thread(&self) -> Option<&Thread> {
        self.threads.iter().find(|t| t.crashed).or_else(|| {
            let idx = self.crashed_thread?;
            self.threads.iter().find(|t| t.index == idx)
        })
    }

    /// The report time parsed from [`Report::timestamp`] (`2026-02-11 17:22:41.3817 +0100`,
    /// `2022-01-06 15:09:22.00 +0200`, ISO forms), for first/last-seen computations.
    pub fn time(&self) -> Option<LogTime> {
        let ts = self.timestamp.as_deref()?.trim();
        let (mut t, end) = crate::parse::time::datetime(ts.as_bytes())?;
        if t.offset_minutes.is_none() {
            // `… 17:22:41.3817 +0100`: the zone after a space.
            let rest = ts.get(end..).unwrap_or("").trim_start();
            if let Some((z, _)) =
                crate::parse::time::datetime(format!("2000-01-01 00:00:00{rest}").as_bytes())
            {
                t.offset_minutes = z.offset_minutes;
            }
        }
        Some(t)
    }

    /// The architecture every frame defaults to: from the code type (`ARM-64` → `arm64`,
    /// `X86-64` → `x86_64`) or a panic's kernel build (`RELEASE_ARM64_…`, `RELEASE_X86_64`).
    pub fn default_arch(&self) -> Option<String> {
        let ct = self
            .process
            .code_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_uppercase();
        let kv = self
            .panic
            .as_ref()
            .and_then(|p| p.kernel_version.as_deref())
            .unwrap_or("");
        if ct.starts_with("ARM-64") || ct.starts_with("ARM64") || kv.contains("_ARM64") {
            Some("arm64".into())
        } else if ct.starts_with("X86-64") || ct.starts_with("X86_64") || kv.contains("_X86_64") {
            Some("x86_64".into())
        } else {
            None
        }
    }

    /// Total number of frames over all threads.
    pub fn frame_count(&self) -> usize {
        self.threads.iter().map(|t| t.frames.len()).sum()
    }

    pub(crate) fn warn(&mut self, line: Option<u64>, message: impl Into<String>) {
        // Bounded: a hostile input cannot make the warning list grow without limit.
        const MAX_WARNINGS: usize = 200;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Warning {
                line,
                message: message.into(),
            });
        }
    }

    /// Fill in what frames and images imply about each other: the image index, UUID and
    /// base of each frame from the image list (by name, then by address range), and
    /// `address = base + offset` / `offset = address - base` where one side is missing.
    pub fn resolve_frames(&mut self) {
        let default_arch = self.default_arch();
        let index = ImageIndex::new(&self.binary_images);
        let images = &self.binary_images;
        for thread in self
            .threads
            .iter_mut()
            .chain(self.last_exception_backtrace.as_mut())
        {
            for frame in &mut thread.frames {
                if frame.image_index.is_none() {
                    frame.image_index = index.find(images, frame);
                }
                if let Some(img) = frame.image_index.and_then(|i| images.get(i)) {
                    if frame.image_uuid.is_none() {
                        frame.image_uuid.clone_from(&img.uuid);
                    }
                    if frame.image_base.is_none() {
                        frame.image_base = img.base;
                    }
                    if frame.image.is_none() {
                        frame.image.clone_from(&img.name);
                    }
                    if frame.arch.is_none() {
                        frame.arch.clone_from(&img.arch);
                    }
                }
                if frame.arch.is_none() {
                    frame.arch.clone_from(&default_arch);
                }
                match (frame.address, frame.image_base, frame.image_offset) {
                    (None, Some(base), Some(off)) => frame.address = base.checked_add(off),
                    (Some(addr), Some(base), None) if addr >= base => {
                        frame.image_offset = Some(addr - base);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Lookup of images by name and by address (sorted ranges), so resolving N frames
/// against M images costs O(N log M), whatever the input.
struct ImageIndex<'a> {
    by_name: std::collections::HashMap<&'a str, usize>,
    /// (base, end exclusive, index), sorted by base.
    ranges: Vec<(u64, u64, usize)>,
}

impl<'a> ImageIndex<'a> {
    fn new(images: &'a [BinaryImage]) -> Self {
        let mut by_name = std::collections::HashMap::with_capacity(images.len());
        let mut ranges = Vec::with_capacity(images.len());
        for (i, img) in images.iter().enumerate() {
            if let Some(n) = img.name.as_deref() {
                by_name.entry(n).or_insert(i);
            }
            if let (Some(base), Some(size)) = (img.base, img.size)
                && size > 0
            {
                ranges.push((base, base.saturating_add(size), i));
            }
        }
        ranges.sort_unstable();
        ImageIndex { by_name, ranges }
    }

    fn find(&self, images: &[BinaryImage], frame: &Frame) -> Option<usize> {
        if let Some(i) = frame.image.as_deref().and_then(|n| self.by_name.get(n)) {
            return Some(*i);
        }
        let addr = frame.address?;
        // The range with the highest base at or below addr.
        let pos = self.ranges.partition_point(|r| r.0 <= addr);
        let (_, end, i) = *self.ranges.get(pos.checked_sub(1)?)?;
        (addr < end && i < images.len()).then_some(i)
    }
}

/// Normalise a UUID: 32 hex digits with or without dashes → lower-case dashed 8-4-4-4-12.
/// Anything else is returned lower-cased as written.
pub fn normalize_uuid(raw: &str) -> String {
    let hex: String = raw.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let h = hex.to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    } else {
        raw.to_ascii_lowercase()
    }
}

/// Serde helpers: `Option<u64>` as `"0x…"` or `null`.
pub(crate) mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(&format_args!("{v:#x}")),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => super::parse_hex_str(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid hex {s:?}"))),
        }
    }
}

/// Serde helpers: register maps with hex string values.
pub(crate) mod hex_map {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &BTreeMap<String, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, val) in v {
            m.serialize_entry(k, &format!("{val:#x}"))?;
        }
        m.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, u64>, D::Error> {
        let m: BTreeMap<String, String> = BTreeMap::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| match super::parse_hex_str(&v) {
                Some(x) => Ok((k, x)),
                None => Err(serde::de::Error::custom(format!("invalid hex {v:?}"))),
            })
            .collect()
    }
}

/// Parse `0x1f` / `1f` as hex.
pub(crate) fn parse_hex_str(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_from_raw_splits_name_version_build() {
        let os = Os::from_raw("iPhone OS 14.5.1 (18E212)");
        assert_eq!(os.name.as_deref(), Some("iPhone OS"));
        assert_eq!(os.version.as_deref(), Some("14.5.1"));
        assert_eq!(os.build.as_deref(), Some("18E212"));
        let os = Os::from_raw("Mac OS X 10.14.0 (18A391)");
        assert_eq!(os.name.as_deref(), Some("Mac OS X"));
        assert_eq!(os.version.as_deref(), Some("10.14.0"));
        let os = Os::from_raw("25D2128");
        assert_eq!(os.build.as_deref(), Some("25D2128"));
        assert_eq!(os.name, None);
    }

    #[test]
    fn uuid_normalisation() {
        assert_eq!(
            normalize_uuid("2d903291397d3d14bfca52c7fb8c5e00"),
            "2d903291-397d-3d14-bfca-52c7fb8c5e00"
        );
        assert_eq!(
            normalize_uuid("7B639009-221F-3815-A7A3-657098146F8A"),
            "7b639009-221f-3815-a7a3-657098146f8a"
        );
        assert_eq!(normalize_uuid("zz"), "zz");
    }

    #[test]
    fn logtime_unix_and_display() {
        let t = LogTime {
            year: 2023,
            month: 7,
            day: 19,
            hour: 8,
            minute: 22,
            second: 51,
            nanos: 916_784_000,
            offset_minutes: Some(180),
        };
        assert_eq!(t.to_string(), "2023-07-19T08:22:51.916784+03:00");
        // 2023-07-19T05:22:51Z
        assert_eq!(
            t.unix_seconds().map(|s| s.floor() as i64),
            Some(1_689_744_171)
        );
    }

    #[test]
    fn report_time_with_spaced_zone() {
        let mut r = Report::new(ReportKind::Crash, SourceFormat::CrashText);
        r.timestamp = Some("2026-02-11 17:22:41.3817 +0100".into());
        let t = r.time().unwrap();
        assert_eq!(
            (t.hour, t.nanos, t.offset_minutes),
            (17, 381_700_000, Some(60))
        );
        r.timestamp = Some("not a date".into());
        assert_eq!(r.time(), None);
    }

    #[test]
    fn resolve_fills_offset_and_uuid() {
        let mut r = Report::new(ReportKind::Crash, SourceFormat::CrashText);
        r.binary_images.push(BinaryImage {
            name: Some("libfoo.dylib".into()),
            uuid: Some("u".into()),
            base: Some(0x1000),
            size: Some(0x1000),
            ..BinaryImage::default()
        });
        r.threads.push(Thread {
            frames: vec![Frame {
                address: Some(0x1010),
                ..Frame::default()
            }],
            ..Thread::default()
        });
        r.resolve_frames();
        let f = &r.threads[0].frames[0];
        assert_eq!(f.image_index, Some(0));
        assert_eq!(f.image_offset, Some(0x10));
        assert_eq!(f.image.as_deref(), Some("libfoo.dylib"));
        assert_eq!(f.image_uuid.as_deref(), Some("u"));
    }
}

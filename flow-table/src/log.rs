//! Unified-log records and their `log show` default-style rendering, plus the simulated
//! clock they are stamped with.
//!
//! Rows look like `log show`'s default style:
//!
//! ```text
//! Timestamp                       Thread     Type        Activity             PID    TTL
//! 2026-11-21 07:30:22.481498+0000 0x1a2b     Default     0x0                  0      0    kernel: (402262746): No more valid control units, disabling flow divert
//! ```
//!
//! (`process: (sender) [subsystem:category] message`; the sender is omitted when it is
//! the process itself, the brackets when there is no subsystem.)

use std::fmt::Write as _;

use crate::sync::{AtomicU64, Mutex, Ordering};

/// `os_log` message types, rendered as `log show` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogType {
    /// `OS_LOG_TYPE_DEFAULT` (kernel `LOG_NOTICE`).
    Default,
    /// `OS_LOG_TYPE_INFO`.
    Info,
    /// `OS_LOG_TYPE_DEBUG`.
    Debug,
    /// `OS_LOG_TYPE_ERROR`.
    Error,
    /// `OS_LOG_TYPE_FAULT`.
    Fault,
}

impl LogType {
    /// The word `log show` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Default => "Default",
            LogType::Info => "Info",
            LogType::Debug => "Debug",
            LogType::Error => "Error",
            LogType::Fault => "Fault",
        }
    }
}

/// Who logged: process name and pid, plus the sender image and subsystem/category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    /// Process name (`kernel` for pid 0).
    pub process: String,
    /// Process id.
    pub pid: u32,
    /// Sender image when it differs from the process (`Network`, `libnetwork.dylib`…).
    pub sender: Option<String>,
    /// `subsystem:category`, if any.
    pub subsystem: Option<String>,
}

impl LogSource {
    /// The kernel (pid 0, no subsystem): where `FDLOG` and `SK_*` lines land.
    pub fn kernel() -> Self {
        LogSource {
            process: "kernel".into(),
            pid: 0,
            sender: None,
            subsystem: None,
        }
    }

    /// A user process.
    pub fn process(name: &str, pid: u32) -> Self {
        LogSource {
            process: name.into(),
            pid,
            sender: None,
            subsystem: None,
        }
    }

    /// With a sender image.
    pub fn sender(mut self, image: &str) -> Self {
        self.sender = Some(image.into());
        self
    }

    /// With `subsystem:category`.
    pub fn subsystem(mut self, subsystem: &str, category: &str) -> Self {
        self.subsystem = Some(format!("{subsystem}:{category}"));
        self
    }
}

/// One unified-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Microseconds since the Unix epoch (UTC).
    pub time_us: u64,
    /// Thread id.
    pub thread: u64,
    /// Message type.
    pub kind: LogType,
    /// Who logged.
    pub source: LogSource,
    /// The formatted message.
    pub message: String,
}

/// A simulated clock in microseconds since the Unix epoch (deterministic runs).
#[derive(Debug)]
pub struct Clock {
    now_us: AtomicU64,
}

impl Clock {
    /// A clock starting at `start_us`.
    pub fn new(start_us: u64) -> Self {
        Clock {
            now_us: AtomicU64::new(start_us),
        }
    }

    /// Current time.
    pub fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::Relaxed)
    }

    /// Advances by `us`, returning the new time.
    pub fn advance(&self, us: u64) -> u64 {
        self.now_us.fetch_add(us, Ordering::Relaxed) + us
    }

    /// Current time in milliseconds (the kernel's `net_uptime_ms` stand-in).
    pub fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }
}

/// A thread-safe collector of log records.
pub struct LogSink {
    records: Mutex<Vec<LogRecord>>,
    clock: crate::sync::Arc<Clock>,
    enabled: bool,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("records", &self.records.lock().len())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl LogSink {
    /// A sink stamping records with `clock`.
    pub fn new(clock: crate::sync::Arc<Clock>) -> Self {
        LogSink {
            records: Mutex::new(Vec::new()),
            clock,
            enabled: true,
        }
    }

    /// A sink that drops everything (benchmarks).
    pub fn disabled(clock: crate::sync::Arc<Clock>) -> Self {
        LogSink {
            records: Mutex::new(Vec::new()),
            clock,
            enabled: false,
        }
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Appends a record stamped now (the clock ticks 7 µs per record so order is visible).
    pub fn log(&self, source: &LogSource, thread: u64, kind: LogType, message: String) {
        if !self.enabled {
            return;
        }
        let time_us = self.clock.advance(7);
        self.records.lock().push(LogRecord {
            time_us,
            thread,
            kind,
            source: source.clone(),
            message,
        });
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().clone()
    }

    /// Records whose message contains `needle`.
    pub fn count_containing(&self, needle: &str) -> usize {
        self.records
            .lock()
            .iter()
            .filter(|r| r.message.contains(needle))
            .count()
    }
}

/// Header line of `log show --style default`.
pub const LOG_SHOW_HEADER: &str =
    "Timestamp                       Thread     Type        Activity             PID    TTL  ";

/// Formats `time_us` as `YYYY-MM-DD HH:MM:SS.uuuuuu+0000`.
pub fn format_timestamp(time_us: u64) -> String {
    let secs = time_us / 1_000_000;
    let micros = time_us % 1_000_000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Renders one record as a default-style row.
pub fn render_row(r: &LogRecord) -> String {
    let mut line = String::with_capacity(160);
    let _ = write!(
        line,
        "{:<31} {:<10} {:<11} {:<20} {:<6} {:<4} {}: ",
        format_timestamp(r.time_us),
        format!("{:#x}", r.thread),
        r.kind.as_str(),
        "0x0",
        r.source.pid,
        0,
        r.source.process
    );
    if let Some(s) = r.source.sender.as_ref().filter(|s| **s != r.source.process) {
        let _ = write!(line, "({s}) ");
    }
    if let Some(sub) = &r.source.subsystem {
        let _ = write!(line, "[{sub}] ");
    }
    line.push_str(&r.message);
    line
}

/// Renders records (sorted by time) as `log show` default-style text, with the header and
/// the completion line.
pub fn render_log_show(records: &[LogRecord]) -> String {
    let mut sorted: Vec<&LogRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.time_us);
    let mut out = String::new();
    out.push_str(LOG_SHOW_HEADER);
    out.push('\n');
    for r in &sorted {
        out.push_str(&render_row(r));
        out.push('\n');
    }
    let _ = writeln!(out, "** Processed {} entries, done. **", sorted.len());
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn timestamp_and_row_layout() {
        // 2026-11-21 07:30:22.481498 UTC
        let t = 1_795_246_222_481_498u64;
        assert_eq!(format_timestamp(t), "2026-11-21 07:30:22.481498+0000");
        let r = LogRecord {
            time_us: t,
            thread: 0x3058,
            kind: LogType::Info,
            source: LogSource::process("remotepairingd", 599)
                .sender("RemotePairing")
                .subsystem("com.apple.dt.remotepairing", "networktunnelmanager"),
            message: "message".into(),
        };
        assert_eq!(
            render_row(&r),
            "2026-11-21 07:30:22.481498+0000 0x3058     Info        0x0                  599    0    remotepairingd: (RemotePairing) [com.apple.dt.remotepairing:networktunnelmanager] message"
        );
        let k = LogRecord {
            source: LogSource::kernel(),
            kind: LogType::Default,
            message: "(42): Moving from 1 to 2".into(),
            ..r
        };
        assert!(render_row(&k).ends_with("0      0    kernel: (42): Moving from 1 to 2"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}

//! Streaming log parser: `log show` default, compact, syslog, json and ndjson styles, the
//! Xcode console, idevicesyslog / ASL and Console.app copies.
//!
//! [`LogReader`] reads a [`BufRead`] line by line in bounded memory: lines longer than
//! [`LogLimits::max_line`] are cut, a message never grows past
//! [`LogLimits::max_message`], and a JSON object is never buffered past
//! [`LogLimits::max_json_object`]. Headers, preambles and footers are skipped; lines
//! without a timestamp continue the previous entry's message.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

use serde::Deserialize;

use crate::error::ParseError;
use crate::model::{LogEntry, LogStyle, LogTime, LogType};
use crate::parse::time;

/// Bounds that keep the log parser's memory fixed whatever the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Longest physical line kept; the rest of a longer line is dropped (default 64 KiB).
    pub max_line: usize,
    /// Longest message after joining continuation lines (default 1 MiB).
    pub max_message: usize,
    /// Largest JSON object of the json/ndjson styles (default 1 MiB); a larger one is an error.
    pub max_json_object: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_line: 64 * 1024,
            max_message: 1024 * 1024,
            max_json_object: 1024 * 1024,
        }
    }
}

/// Counters a [`LogReader`] keeps while it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Physical lines read.
    pub lines: u64,
    /// Entries produced.
    pub entries: u64,
    /// Lines that were neither an entry, a continuation nor a known header/footer.
    pub skipped_lines: u64,
    /// Lines cut at [`LogLimits::max_line`].
    pub truncated_lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Iterator over the log entries of a reader. See the module docs.
///
/// ```
/// use crashlog::parse::LogReader;
/// let text = "2023-07-19 08:22:51.916784+0300 0x3058     Error       0x0                  599    0    nesessionmanager: (NetworkExtension) [com.apple.networkextension:vpn] status changed\n";
/// let entries: Vec<_> = LogReader::new(text.as_bytes()).collect::<Result<_, _>>().unwrap();
/// assert_eq!(entries[0].process.as_deref(), Some("nesessionmanager"));
/// assert_eq!(entries[0].subsystem.as_deref(), Some("com.apple.networkextension"));
/// ```
#[derive(Debug)]
pub struct LogReader<R> {
    reader: R,
    st: State,
}

/// Everything but the reader, so a line can be parsed straight out of the reader's
/// buffer while the state is updated (no copy on the common path).
#[derive(Debug)]
struct State {
    limits: LogLimits,
    /// Lines that straddle the reader's buffer (or are cut) are assembled here.
    buf: Vec<u8>,
    line_no: u64,
    pending: Option<LogEntry>,
    /// Blank lines seen after the pending entry, appended only if text follows.
    pending_blanks: u32,
    ready: VecDeque<Result<LogEntry, ParseError>>,
    json: JsonScanner,
    done: bool,
    stats: LogStats,
    blank_ends_entry: bool,
}

impl<R: BufRead> LogReader<R> {
    /// A reader with default [`LogLimits`].
    pub fn new(reader: R) -> Self {
        Self::with_limits(reader, LogLimits::default())
    }

    /// A reader with explicit limits.
    pub fn with_limits(reader: R, limits: LogLimits) -> Self {
        LogReader {
            reader,
            st: State {
                limits,
                buf: Vec::with_capacity(1024),
                line_no: 0,
                pending: None,
                pending_blanks: 0,
                ready: VecDeque::new(),
                json: JsonScanner::default(),
                done: false,
                stats: LogStats::default(),
                blank_ends_entry: false,
            },
        }
    }

    /// Read the input as a paste (forum post, chat, bug tracker) rather than `log show`
    /// output: a blank line or an unindented line without a timestamp (prose around the
    /// excerpt) ends the current entry; only indented lines continue its message.
    /// Default false (`log show` continues messages on unindented lines and prints blank
    /// lines inside them).
    pub fn pasted(mut self, yes: bool) -> Self {
        self.st.blank_ends_entry = yes;
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> LogStats {
        self.st.stats
    }

    /// Parse the next line in place when it lies whole in the reader's buffer.
    /// Returns false when the slow path must assemble the line.
    fn fast_line(&mut self) -> bool {
        let Ok(chunk) = self.reader.fill_buf() else {
            return false;
        };
        let Some(i) = memchr::memchr(b'\n', chunk) else {
            return false;
        };
        if i > self.st.limits.max_line {
            return false;
        }
        let line = chunk[..i].strip_suffix(b"\r").unwrap_or(&chunk[..i]);
        self.st.line_no += 1;
        self.st.stats.lines += 1;
        self.st.stats.bytes += i as u64 + 1;
        self.st.handle_line(line);
        self.reader.consume(i + 1);
        true
    }

    /// Read one line (without its terminator) into `buf`, keeping at most `max_line`
    /// bytes. Returns false at end of input.
    fn read_line(&mut self) -> std::io::Result<bool> {
        let st = &mut self.st;
        st.buf.clear();
        let mut any = false;
        let mut truncated = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = st.limits.max_line.saturating_sub(st.buf.len());
            if take > room {
                truncated = true;
            }
            st.buf.extend_from_slice(&chunk[..take.min(room)]);
            let consumed = if found { take + 1 } else { take };
            st.stats.bytes += consumed as u64;
            self.reader.consume(consumed);
            if found {
                break;
            }
        }
        if !any {
            return Ok(false);
        }
        if st.buf.last() == Some(&b'\r') {
            st.buf.pop();
        }
        st.line_no += 1;
        st.stats.lines += 1;
        if truncated {
            st.stats.truncated_lines += 1;
        }
        Ok(true)
    }
}

impl State {
    fn emit(&mut self, entry: LogEntry) {
        self.pending_blanks = 0;
        if let Some(prev) = self.pending.replace(entry) {
            self.stats.entries += 1;
            self.ready.push_back(Ok(prev));
        }
    }

    fn flush_pending(&mut self) {
        if let Some(prev) = self.pending.take() {
            self.stats.entries += 1;
            self.ready.push_back(Ok(prev));
        }
        self.pending_blanks = 0;
    }

    fn continuation(&mut self, text: &str) {
        let max = self.limits.max_message;
        let blanks = std::mem::take(&mut self.pending_blanks);
        match self.pending.as_mut() {
            Some(p) => {
                p.lines = p.lines.saturating_add(1 + blanks);
                if p.message.len() + text.len() + 1 + blanks as usize <= max {
                    for _ in 0..blanks {
                        p.message.push('\n');
                    }
                    p.message.push('\n');
                    p.message.push_str(text);
                }
            }
            None => self.stats.skipped_lines += 1,
        }
    }

    /// The slow path's assembled line.
    fn handle_buffered(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.handle_line(&buf);
        self.buf = buf;
    }

    fn handle_line(&mut self, buf: &[u8]) {
        let line_no = self.line_no;
        let first = buf.iter().position(|b| !b.is_ascii_whitespace());
        // ndjson fast path: a whole object on one line goes straight to serde.
        if !self.json.active()
            && let Some(i) = first
        {
            let t = buf[i..].trim_ascii_end();
            if t.first() == Some(&b'{') && t.last() == Some(&b'}') {
                match json_entry(t, line_no, LogStyle::Ndjson) {
                    Ok(Some(e)) => self.emit(e),
                    Ok(None) => {}
                    Err(e) => {
                        self.flush_pending();
                        self.ready.push_back(Err(e));
                    }
                }
                return;
            }
        }
        if self.json.active() || matches!(first.and_then(|i| buf.get(i)), Some(b'{' | b'[')) {
            let mut objects = Vec::new();
            let res = self
                .json
                .feed(buf, line_no, self.limits.max_json_object, &mut objects);
            for (obj, start, style) in objects {
                match json_entry(&obj, start, style) {
                    Ok(Some(e)) => self.emit(e),
                    Ok(None) => {}
                    Err(e) => {
                        self.flush_pending();
                        self.ready.push_back(Err(e));
                    }
                }
            }
            if let Err(e) = res {
                self.flush_pending();
                self.ready.push_back(Err(e));
            }
            return;
        }
        let owned;
        let s: &str = match std::str::from_utf8(buf) {
            Ok(s) => s,
            Err(_) => {
                owned = String::from_utf8_lossy(buf).into_owned();
                &owned
            }
        };
        match classify(s, line_no) {
            Line::Entry(e) => self.emit(e),
            Line::Skip => {}
            Line::Footer => self.flush_pending(),
            Line::Blank if self.blank_ends_entry => self.flush_pending(),
            Line::Blank => {
                if self.pending.is_some() {
                    self.pending_blanks = self.pending_blanks.saturating_add(1);
                }
            }
            Line::Text if self.blank_ends_entry && !s.starts_with([' ', '\t']) => {
                self.flush_pending();
                self.stats.skipped_lines += 1;
            }
            Line::Text => self.continuation(s.trim_end()),
        }
    }
}

impl<R: BufRead> Iterator for LogReader<R> {
    type Item = Result<LogEntry, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.st.ready.pop_front() {
                return Some(x);
            }
            if self.st.done {
                return None;
            }
            if self.fast_line() {
                continue;
            }
            match self.read_line() {
                Ok(true) => self.st.handle_buffered(),
                Ok(false) => {
                    let st = &mut self.st;
                    st.done = true;
                    st.flush_pending();
                    if st.json.depth > 0 {
                        st.ready.push_back(Err(ParseError::Malformed {
                            line: st.json.start_line.max(1),
                            message: "log JSON object is not closed: truncated input".into(),
                        }));
                    }
                }
                Err(e) => {
                    let st = &mut self.st;
                    st.done = true;
                    st.flush_pending();
                    st.ready.push_back(Err(ParseError::Io {
                        line: st.line_no + 1,
                        source: e,
                    }));
                }
            }
        }
    }
}

/// Collects `{…}` objects across lines (json array style, ndjson), string-aware.
#[derive(Debug, Default)]
struct JsonScanner {
    depth: u32,
    in_str: bool,
    esc: bool,
    /// Inside a `[` … `]` array (json style) even between objects.
    array: bool,
    obj: Vec<u8>,
    start_line: u64,
    /// Skipping the rest of an oversized object.
    overflow: bool,
}

impl JsonScanner {
    fn active(&self) -> bool {
        self.depth > 0 || self.array
    }

    fn feed(
        &mut self,
        line: &[u8],
        line_no: u64,
        max: usize,
        out: &mut Vec<(Vec<u8>, u64, LogStyle)>,
    ) -> Result<(), ParseError> {
        let mut err = None;
        let n = line.len();
        let mut i = 0;
        // Start of the part of `line` that belongs to the current object and is not yet
        // copied into `obj`.
        let mut seg = 0;
        while i < n {
            if self.depth == 0 {
                match line[i] {
                    b'{' => {
                        self.depth = 1;
                        self.obj.clear();
                        self.start_line = line_no;
                        self.overflow = false;
                        seg = i;
                    }
                    b'[' => self.array = true,
                    b']' => self.array = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &line[i..]) {
                    None => i = n,
                    Some(k) => {
                        if line[i + k] == b'\\' {
                            self.esc = true;
                        } else {
                            self.in_str = false;
                        }
                        i += k + 1;
                    }
                }
                continue;
            }
            // Inside an object only braces count for depth (brackets nest inside them).
            match memchr::memchr3(b'"', b'{', b'}', &line[i..]) {
                None => i = n,
                Some(k) => {
                    let p = i + k;
                    match line[p] {
                        b'"' => self.in_str = true,
                        b'{' => self.depth = self.depth.saturating_add(1),
                        _ => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                self.append(&line[seg..=p], max, &mut err);
                                if !self.overflow {
                                    // Inside `[…]`: the json style; a bare object: ndjson.
                                    let style = if self.array {
                                        LogStyle::Json
                                    } else {
                                        LogStyle::Ndjson
                                    };
                                    out.push((
                                        std::mem::take(&mut self.obj),
                                        self.start_line,
                                        style,
                                    ));
                                }
                            }
                        }
                    }
                    i = p + 1;
                }
            }
        }
        if self.depth > 0 {
            self.append(&line[seg.min(n)..], max, &mut err);
            // Keep line structure for error positions.
            self.append(b"\n", max, &mut err);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Copy part of the current object, or give up on it past `max` bytes.
    fn append(&mut self, bytes: &[u8], max: usize, err: &mut Option<ParseError>) {
        if self.overflow {
            return;
        }
        if self.obj.len() + bytes.len() > max {
            self.overflow = true;
            self.obj = Vec::new();
            *err = Some(ParseError::TooLarge {
                line: self.start_line,
                what: "log JSON object",
                limit: max as u64,
            });
        } else {
            self.obj.extend_from_slice(bytes);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    process_image_path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sender_image_path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subsystem: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(default, rename = "processID")]
    process_id: Option<serde_json::Value>,
    #[serde(default, rename = "threadID")]
    thread_id: Option<serde_json::Value>,
    #[serde(default)]
    activity_identifier: Option<serde_json::Value>,
}

fn json_num(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok().or_else(|| crate::model::parse_hex_str(s)),
        _ => None,
    }
}

fn basename(p: &str) -> Option<String> {
    p.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn json_entry(obj: &[u8], line: u64, style: LogStyle) -> Result<Option<LogEntry>, ParseError> {
    let j: JsonLine<'_> =
        serde_json::from_slice(obj).map_err(|e| ParseError::json("log entry", line, &e))?;
    // The ndjson footer `{"count":…,"finished":1}`, and objects that are not log entries.
    if j.event_message.is_none() && j.timestamp.is_none() {
        return Ok(None);
    }
    let mut e = LogEntry::new(
        style,
        line,
        j.event_message.map(Cow::into_owned).unwrap_or_default(),
    );
    e.lines = e.message.lines().count().max(1) as u32;
    e.timestamp = j
        .timestamp
        .as_deref()
        .and_then(|t| time::datetime(t.as_bytes()))
        .map(|(t, _)| t);
    e.log_type = match (j.message_type.as_deref(), j.event_type.as_deref()) {
        (Some(m), _) => Some(LogType::parse(m)),
        (None, Some(ev)) if ev != "logEvent" => Some(LogType::parse(ev)),
        _ => None,
    };
    e.process = j.process_image_path.as_deref().and_then(basename);
    e.sender = j
        .sender_image_path
        .as_deref()
        .and_then(basename)
        .filter(|s| Some(s) != e.process.as_ref());
    e.subsystem = j.subsystem.map(Cow::into_owned).filter(|s| !s.is_empty());
    e.category = j.category.map(Cow::into_owned).filter(|s| !s.is_empty());
    e.pid = json_num(j.process_id.as_ref()).and_then(|p| u32::try_from(p).ok());
    e.thread = json_num(j.thread_id.as_ref());
    e.activity = json_num(j.activity_identifier.as_ref());
    Ok(Some(e))
}

/// What one text line is (a short-lived return value, so the size spread is fine).
#[allow(clippy::large_enum_variant)]
enum Line {
    Entry(LogEntry),
    /// Header, preamble: ignore.
    Skip,
    /// `** Processed N entries, done. **`: ends the pending entry.
    Footer,
    Blank,
    /// No timestamp: continues the previous entry.
    Text,
}

fn classify(s: &str, line: u64) -> Line {
    let t = s.trim_start();
    if t.is_empty() {
        return Line::Blank;
    }
    let b = t.as_bytes();
    match b[0] {
        b'0'..=b'9' => {
            if let Some((ts, end)) = time::datetime(b) {
                if let Some(e) = parse_dated(t, ts, end, line) {
                    return Line::Entry(e);
                }
            } else if let Some((ts, end)) = time::time_only(b) {
                return Line::Entry(console_or_bare(t, ts, end, line));
            }
        }
        b'A'..=b'Z' => {
            if let Some((ts, end)) = time::bsd(b)
                && let Some(e) = parse_asl(t, ts, end, line)
            {
                return Line::Entry(e);
            }
            if t.starts_with("Timestamp ") || t == "Timestamp" {
                return Line::Skip;
            }
            if t.starts_with("Filtering the log data") || t.starts_with("Skipping ") {
                return Line::Skip;
            }
        }
        b'*' if t.starts_with("** Processed") => return Line::Footer,
        b'-' if t.len() >= 10 && t.bytes().all(|c| c == b'-') => return Line::Skip,
        _ => {}
    }
    if memchr::memchr(b'\t', b).is_some()
        && let Some(e) = parse_console(t, line)
    {
        return Line::Entry(e);
    }
    Line::Text
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if *c != b' ' && *c != b'\t' {
            break;
        }
        i += 1;
    }
    i
}

#[inline]
fn token_end(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if *c == b' ' || *c == b'\t' {
            break;
        }
        i += 1;
    }
    i
}

fn hex_tok(s: &str) -> Option<u64> {
    crate::parse::text::hex0x(s)
}

fn dec_tok(s: &str) -> Option<u64> {
    crate::parse::text::dec(s)
}

fn some_str(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A line that starts with `YYYY-MM-DD HH:MM:SS…`.
fn parse_dated(t: &str, ts: LogTime, end: usize, line: u64) -> Option<LogEntry> {
    let b = t.as_bytes();
    let i = skip_ws(b, end);
    if b.get(i) == Some(&b'0') && b.get(i + 1) == Some(&b'x') {
        return parse_default(t, ts, i, line);
    }
    let tok_end = token_end(b, i);
    let tok = &t[i..tok_end];
    if ts.offset_minutes.is_none()
        && !tok.is_empty()
        && tok.len() <= 2
        && tok.bytes().all(|c| c.is_ascii_alphabetic())
        && let Some(e) = parse_compact(t, ts, i, tok, line)
    {
        return Some(e);
    }
    if let Some(e) = parse_bracket_proc(t, ts, i, line) {
        return Some(e);
    }
    // A dated line of unknown shape: keep it as a bare entry.
    let mut e = LogEntry::new(LogStyle::Default, line, t[i..].trim_end().to_string());
    e.timestamp = Some(ts);
    Some(e)
}

/// Default style after the timestamp: `0x3058  Info  0x0  599  0  proc: (sender) [sub:cat] msg`.
fn parse_default(t: &str, ts: LogTime, mut i: usize, line: u64) -> Option<LogEntry> {
    let b = t.as_bytes();
    let mut e = LogEntry::new(LogStyle::Default, line, String::new());
    e.timestamp = Some(ts);
    let te = token_end(b, i);
    e.thread = hex_tok(&t[i..te]);
    i = skip_ws(b, te);
    let te = token_end(b, i);
    let ty = &t[i..te];
    if !ty.is_empty() && ty.bytes().all(|c| c.is_ascii_alphabetic()) {
        e.log_type = Some(LogType::parse(ty));
        i = skip_ws(b, te);
    }
    let te = token_end(b, i);
    if let Some(a) = hex_tok(&t[i..te]) {
        e.activity = Some(a);
        i = skip_ws(b, te);
    }
    let te = token_end(b, i);
    if let Some(pid) = dec_tok(&t[i..te]) {
        e.pid = u32::try_from(pid).ok();
        i = skip_ws(b, te);
        // TTL column (absent in older `log show` output).
        let te2 = token_end(b, i);
        if te2 > i && te2 - i <= 3 && dec_tok(&t[i..te2]).is_some() {
            i = skip_ws(b, te2);
        }
    }
    let tail = &t[i..];
    // `process: …` — the process name ends at the first ": ".
    let (process, rest) = match find_colon_space(tail.as_bytes()) {
        Some(p) if p > 0 => (Some(&tail[..p]), &tail[p + 2..]),
        _ => match tail.strip_suffix(':') {
            Some(p) => (Some(p), ""),
            None => (None, tail),
        },
    };
    e.process = process.and_then(some_str);
    fill_tail(&mut e, rest);
    Some(e)
}

/// Position of the first `": "` (a `memchr` loop: cheaper than building a memmem
/// searcher per line).
fn find_colon_space(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', b.get(from..)?) {
        let at = from + i;
        if b.get(at + 1) == Some(&b' ') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `(sender) [subsystem:category] message` — both prefixes optional.
fn fill_tail(e: &mut LogEntry, mut rest: &str) {
    if let Some(inner_rest) = rest.strip_prefix('(')
        && let Some(close) = inner_rest.find(')')
    {
        let name = &inner_rest[..close];
        let after = &inner_rest[close + 1..];
        if !name.is_empty()
            && !name.contains(':')
            && !name.bytes().all(|c| c.is_ascii_digit())
            && (after.is_empty() || after.starts_with(' '))
        {
            e.sender = Some(name.to_string());
            rest = after.trim_start_matches(' ');
        }
    }
    if let Some(inner_rest) = rest.strip_prefix('[')
        && let Some(close) = inner_rest.find(']')
    {
        let inner = &inner_rest[..close];
        if let Some((sub, cat)) = inner.split_once(':')
            && !sub.is_empty()
            && sub
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            && !cat.is_empty()
        {
            e.subsystem = Some(sub.to_string());
            e.category = Some(cat.to_string());
            rest = inner_rest[close + 1..].trim_start_matches(' ');
        }
    }
    e.message = rest.trim_end().to_string();
}

/// Find `[digits]` or `[digits:hex]` in `s`; returns (open, close, pid, tid).
fn find_pid_bracket(s: &str) -> Option<(usize, usize, u32, Option<u64>)> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(off) = b.get(from..).and_then(|rest| memchr::memchr(b'[', rest)) {
        let open = from + off;
        from = open + 1;
        let Some(close_off) = memchr::memchr(b']', &b[open..]) else {
            break;
        };
        let close = open + close_off;
        let inner = &s[open + 1..close];
        let (pid, tid) = match inner.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (inner, None),
        };
        let Some(pid) = dec_tok(pid).and_then(|p| u32::try_from(p).ok()) else {
            continue;
        };
        let tid = match tid {
            Some(t) => {
                let t = t.trim_start_matches("0x");
                if t.is_empty() || t.len() > 16 {
                    continue;
                }
                match u64::from_str_radix(t, 16) {
                    Ok(v) => Some(v),
                    Err(_) => continue,
                }
            }
            None => None,
        };
        return Some((open, close, pid, tid));
    }
    None
}

/// Compact: `2026-10-06 10:41:02.207 Df tccd[75697:5a8b53a] [com.apple.TCC:access] msg`.
fn parse_compact(t: &str, ts: LogTime, i: usize, ty: &str, line: u64) -> Option<LogEntry> {
    let b = t.as_bytes();
    let j = skip_ws(b, i + ty.len());
    let rest = &t[j..];
    let (open, close, pid, tid) = find_pid_bracket(rest)?;
    tid?;
    let mut e = LogEntry::new(LogStyle::Compact, line, String::new());
    e.timestamp = Some(ts);
    e.log_type = Some(LogType::parse(ty));
    e.process = some_str(&rest[..open]);
    e.pid = Some(pid);
    e.thread = tid;
    fill_tail(&mut e, rest[close + 1..].trim_start_matches(' '));
    Some(e)
}

/// Xcode console (`App[pid:tid] msg`) and syslog style (`host proc[pid]: msg`).
fn parse_bracket_proc(t: &str, ts: LogTime, i: usize, line: u64) -> Option<LogEntry> {
    let rest = &t[i..];
    let (open, close, pid, tid) = find_pid_bracket(rest)?;
    let before = &rest[..open];
    let after = &rest[close + 1..];
    let mut e = LogEntry::new(LogStyle::Xcode, line, String::new());
    e.timestamp = Some(ts);
    e.pid = Some(pid);
    e.thread = tid;
    let mut proc_part = before;
    if tid.is_none() {
        // syslog: `localhost legacyScreenSaver[41737]: (Sender) msg`
        e.style = LogStyle::Syslog;
        if let Some((host, p)) = before.split_once(' ') {
            e.host = some_str(host);
            proc_part = p;
        }
    }
    split_proc_sender(&mut e, proc_part);
    let after = after
        .strip_prefix(':')
        .unwrap_or(after)
        .trim_start_matches(' ');
    fill_tail(&mut e, after);
    Some(e)
}

/// `App(libquic.dylib)` → process `App`, sender `libquic.dylib`.
fn split_proc_sender(e: &mut LogEntry, p: &str) {
    let p = p.trim();
    if let Some(open) = p.find('(')
        && let Some(inner) = p[open + 1..].strip_suffix(')')
    {
        e.process = some_str(&p[..open]);
        e.sender = some_str(inner);
        return;
    }
    e.process = some_str(p);
}

/// ASL / idevicesyslog: `Oct 11 09:21:10 [host] proc(sender)[pid] <Notice>: msg`.
fn parse_asl(t: &str, ts: LogTime, end: usize, line: u64) -> Option<LogEntry> {
    let rest = t[end..].trim_start();
    let mut e = LogEntry::new(LogStyle::Asl, line, String::new());
    e.timestamp = Some(ts);
    let after = match find_pid_bracket(rest) {
        Some((open, close, pid, tid)) => {
            let before = &rest[..open];
            e.pid = Some(pid);
            e.thread = tid;
            // A host is a first token before a process name that follows it.
            let proc_part = match before.split_once(' ') {
                Some((host, p)) if !host.contains('(') => {
                    e.host = some_str(host);
                    p
                }
                _ => before,
            };
            split_proc_sender(&mut e, proc_part);
            &rest[close + 1..]
        }
        None => {
            let (host, tail) = rest.split_once(' ')?;
            e.host = some_str(host);
            let (p, m) = tail.split_once(": ")?;
            split_proc_sender(&mut e, p);
            e.message = m.trim_end().to_string();
            return Some(e);
        }
    };
    let mut after = after.strip_prefix(':').unwrap_or(after).trim_start();
    if let Some(lv) = after.strip_prefix('<')
        && let Some(close) = lv.find('>')
    {
        e.log_type = Some(LogType::parse(&lv[..close]));
        after = lv[close + 1..]
            .strip_prefix(':')
            .unwrap_or(&lv[close + 1..])
            .trim_start();
    }
    fill_tail(&mut e, after);
    Some(e)
}

/// Console.app copy (tab-separated columns in the user's order) or a bare
/// `HH:MM:SS.ffffff+zone message` line.
fn console_or_bare(t: &str, ts: LogTime, end: usize, line: u64) -> LogEntry {
    if memchr::memchr(b'\t', t.as_bytes()).is_some()
        && let Some(e) = parse_console(t, line)
    {
        return e;
    }
    let mut e = LogEntry::new(LogStyle::Console, line, t[end..].trim().to_string());
    e.timestamp = Some(ts);
    e
}

fn is_reverse_dns(s: &str) -> bool {
    s.contains('.')
        && !s.contains(' ')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn parse_console(t: &str, line: u64) -> Option<LogEntry> {
    let fields: Vec<&str> = t.split('\t').map(str::trim).collect();
    let mut e = LogEntry::new(LogStyle::Console, line, String::new());
    let mut used = vec![false; fields.len()];
    for (k, f) in fields.iter().enumerate() {
        let b = f.as_bytes();
        let ts = time::datetime(b)
            .or_else(|| time::time_only(b))
            .or_else(|| time::bsd(b));
        if let Some((ts, end)) = ts
            && end == b.len()
        {
            e.timestamp = Some(ts);
            used[k] = true;
            break;
        }
    }
    e.timestamp?;
    for (k, f) in fields.iter().enumerate() {
        if used[k] || f.is_empty() {
            continue;
        }
        let lt = LogType::parse(f);
        if e.log_type.is_none() && !matches!(lt, LogType::Other(_)) && f.len() <= 8 {
            e.log_type = Some(lt);
            used[k] = true;
        } else if e.subsystem.is_none() && is_reverse_dns(f) {
            e.subsystem = Some((*f).to_string());
            used[k] = true;
        }
    }
    // The message is the longest remaining column; a short one-word column is the process.
    let msg_idx = (0..fields.len())
        .filter(|k| !used[*k])
        .max_by_key(|k| fields[*k].len())?;
    used[msg_idx] = true;
    e.message = fields[msg_idx].to_string();
    if let Some(k) =
        (0..fields.len()).find(|k| !used[*k] && !fields[*k].is_empty() && !fields[*k].contains(' '))
    {
        let (name, pid) = crate::parse::text::name_pid(fields[k]);
        e.process = name;
        e.pid = pid;
    }
    Some(e)
}

/// Whether a line looks like a log entry of any supported text style (for detection).
pub(crate) fn is_log_line(line: &str) -> bool {
    matches!(classify(line, 0), Line::Entry(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<LogEntry> {
        LogReader::new(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn default_style_fields() {
        let e = &parse(
            "2023-07-19 08:22:51.916784+0300 0x3058     Info        0x0                  599    0    remotepairingd: (RemotePairing) [com.apple.dt.remotepairing:networktunnelmanager] message here\n",
        )[0];
        assert_eq!(e.style, LogStyle::Default);
        assert_eq!(e.thread, Some(0x3058));
        assert_eq!(e.log_type, Some(LogType::Info));
        assert_eq!(e.activity, Some(0));
        assert_eq!(e.pid, Some(599));
        assert_eq!(e.process.as_deref(), Some("remotepairingd"));
        assert_eq!(e.sender.as_deref(), Some("RemotePairing"));
        assert_eq!(e.subsystem.as_deref(), Some("com.apple.dt.remotepairing"));
        assert_eq!(e.category.as_deref(), Some("networktunnelmanager"));
        assert_eq!(e.message, "message here");
    }

    #[test]
    fn kernel_hash_prefix_is_not_a_sender() {
        let e = &parse(
            "2026-03-30 14:11:21.780015+0300 0x1894     Default     0x0                  0      0    kernel: (402262746): No more valid control units, disabling flow divert\n",
        )[0];
        assert_eq!(e.process.as_deref(), Some("kernel"));
        assert_eq!(e.sender, None);
        assert_eq!(
            e.message,
            "(402262746): No more valid control units, disabling flow divert"
        );
    }

    #[test]
    fn continuation_and_footer() {
        let v = parse(
            "Filtering the log data using \"process == \\\"x\\\"\"\nTimestamp                       Thread     Type        Activity             PID    TTL  \n2023-07-19 08:22:51.916784+0300 0x1 Default 0x0 1 0 a: first\n  second line\n\n  third\n** Processed 1 entries, done. **\n",
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].message, "first\n  second line\n\n  third");
        assert_eq!(v[0].lines, 4);
    }

    #[test]
    fn json_array_and_ndjson() {
        let arr = "[{\n  \"timestamp\" : \"2026-05-07 19:48:34.701580-0500\",\n  \"eventMessage\" : \"hello {x}\",\n  \"processImagePath\" : \"/usr/libexec/wifip2pd\",\n  \"messageType\" : \"Error\",\n  \"processID\" : 42\n},{\n  \"eventMessage\" : \"two\"\n}]\n";
        let v = parse(arr);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].message, "hello {x}");
        assert_eq!(v[0].process.as_deref(), Some("wifip2pd"));
        assert_eq!(v[0].log_type, Some(LogType::Error));
        assert_eq!(v[0].line, 1);
        let nd = "{\"eventMessage\":\"a\",\"processID\":1}\n{\"count\":2,\"finished\":1}\n";
        let v = parse(nd);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn json_strings_hide_braces_and_objects_are_capped() {
        let text = "[{\n  \"eventMessage\" : \"a } \\\" { b\",\n  \"x\" : [1, {\"y\": 2}]\n},{\"eventMessage\":\"c\"}]\n";
        let v = parse(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].message, "a } \" { b");
        assert_eq!(v[1].message, "c");
        let big = format!(
            "[{{\n\"eventMessage\" : \"{}\"\n}},{{\"eventMessage\":\"ok\"}}]\n",
            "x".repeat(5000)
        );
        let limits = LogLimits {
            max_json_object: 1000,
            ..LogLimits::default()
        };
        let r: Vec<_> = LogReader::with_limits(big.as_bytes(), limits).collect();
        assert_eq!(r[0].as_ref().unwrap_err().name(), "too_large");
        assert_eq!(r[1].as_ref().unwrap().message, "ok");
    }

    #[test]
    fn truncated_json_is_an_error_with_line() {
        let r: Vec<_> =
            LogReader::new("{\"eventMessage\":\"a\"}\n{\"eventMessage\":\n".as_bytes()).collect();
        assert!(r[0].is_ok());
        let e = r[1].as_ref().unwrap_err();
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn long_lines_are_capped() {
        let long = format!(
            "2023-07-19 08:22:51.916784+0300 0x1 Default 0x0 1 0 a: {}\n",
            "x".repeat(10_000)
        );
        let limits = LogLimits {
            max_line: 100,
            ..LogLimits::default()
        };
        let mut r = LogReader::with_limits(long.as_bytes(), limits);
        let e = r.next().unwrap().unwrap();
        assert!(e.message.len() < 100);
        assert_eq!(r.stats().truncated_lines, 1);
    }

    #[test]
    fn other_styles() {
        let e = &parse(
            "2026-10-06 10:41:02.207 Df tccd[75697:5a8b53a] [com.apple.TCC:access] checking\n",
        )[0];
        assert_eq!(
            (e.style, e.pid, e.thread),
            (LogStyle::Compact, Some(75697), Some(0x5a8b53a))
        );
        assert_eq!(e.log_type, Some(LogType::Default));
        assert_eq!(e.subsystem.as_deref(), Some("com.apple.TCC"));
        let e = &parse(
            "2023-09-27 22:55:39.622369+0200  localhost legacyScreenSaver[41737]: (ScreenSaverExample) message\n",
        )[0];
        assert_eq!(e.style, LogStyle::Syslog);
        assert_eq!(e.host.as_deref(), Some("localhost"));
        assert_eq!(e.process.as_deref(), Some("legacyScreenSaver"));
        assert_eq!(e.sender.as_deref(), Some("ScreenSaverExample"));
        let e = &parse(
            "Oct 11 09:21:10 App(libquic.dylib)[2146] <Notice>: quic_conn_handle_error_inner x\n",
        )[0];
        assert_eq!(e.style, LogStyle::Asl);
        assert_eq!(e.process.as_deref(), Some("App"));
        assert_eq!(e.sender.as_deref(), Some("libquic.dylib"));
        assert_eq!(e.log_type, Some(LogType::Notice));
        assert_eq!(e.message, "quic_conn_handle_error_inner x");
        let e = &parse(
            "Jul 11 17:38:39 iPhone-4 nesessionmanager[190] <Notice>: NESMVPNSession[x]: status changed to connected\n",
        )[0];
        assert_eq!(e.host.as_deref(), Some("iPhone-4"));
        assert_eq!(e.process.as_deref(), Some("nesessionmanager"));
        assert_eq!(e.pid, Some(190));
        let e = &parse("2019-03-14 10:20:30.123456+0100 MyApp[1234:56789] hello\n")[0];
        assert_eq!((e.style, e.pid), (LogStyle::Xcode, Some(1234)));
        assert_eq!(e.message, "hello");
        let e = &parse(
            "17:11:52.481498+0200\tNESMVPNSession[Primary Tunnel]: got On Demand start message from pid 5454\tcom.apple.networkextension\n",
        )[0];
        assert_eq!(e.style, LogStyle::Console);
        assert_eq!(e.subsystem.as_deref(), Some("com.apple.networkextension"));
        assert!(e.message.starts_with("NESMVPNSession"));
    }
}

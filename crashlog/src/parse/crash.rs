//! Legacy text crash reports (`.crash`, the text body of bug_type 109, Console's
//! translated report): macOS and iOS layouts.

use std::collections::BTreeMap;

use crate::error::ParseError;
use crate::model::{
    BinaryImage, Exception, Os, Report, ReportKind, SourceFormat, Termination, Thread,
    normalize_uuid,
};
use crate::parse::text::{crash_frame, hex0x, key_value, leading_dec, name_pid, non_empty};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Header,
    AppSpecific,
    Thread,
    LastException,
    Registers,
    Images,
    Other,
}

/// Whether a line starts a legacy crash report header.
pub(crate) fn is_crash_anchor(line: &str) -> bool {
    // Only `Incident Identifier:` may be indented (pasted reports); the others must start
    // the line so that YAML/JSON renderings of a report are not mistaken for one.
    line.trim_start().starts_with("Incident Identifier:")
        || (line.starts_with("Process:") && line.contains('['))
        || line.starts_with("Exception Type:")
}

/// Parse a legacy text crash report. `first_line` is the 1-based line of `text` in its
/// file (for warnings). Fails when the text has none of the report's structure.
pub(crate) fn parse_crash_text(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let mut r = Report::new(ReportKind::Crash, SourceFormat::CrashText);
    let mut section = Section::Header;
    let mut current: Option<Thread> = None;
    let mut thread_names: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut app_specific: Vec<&str> = Vec::new();
    let mut recognised = 0usize;
    let mut reg_thread: Option<u32> = None;

    let finish_thread = |r: &mut Report, t: Option<Thread>| {
        if let Some(t) = t
            && r.threads.len() < super::MAX_THREADS
        {
            r.threads.push(t);
        }
    };

    for (i, raw) in text.lines().enumerate() {
        let lineno = first_line + i as u64;
        let line = raw.trim_end();
        let trimmed = line.trim_start();

        // Section starts, recognised anywhere.
        if let Some(t) = thread_header(trimmed) {
            finish_thread(&mut r, current.take());
            recognised += 1;
            match t {
                ThreadLine::Name(idx, name) => {
                    let (n, q) = split_queue(&name);
                    let e = thread_names.entry(idx).or_default();
                    if n.is_some() {
                        e.0 = n;
                    }
                    if q.is_some() {
                        e.1 = q;
                    }
                    section = Section::Other;
                }
                ThreadLine::Start(idx, crashed, name) => {
                    let (n, q) = name.as_deref().map(split_queue).unwrap_or((None, None));
                    current = Some(Thread {
                        index: idx,
                        crashed,
                        name: n,
                        queue: q,
                        ..Thread::default()
                    });
                    section = Section::Thread;
                }
                ThreadLine::State(idx) => {
                    section = Section::Registers;
                    reg_thread = Some(idx);
                    current = None;
                }
            }
            continue;
        }
        if trimmed.starts_with("Binary Images:") {
            finish_thread(&mut r, current.take());
            section = Section::Images;
            recognised += 1;
            continue;
        }
        if trimmed.starts_with("Last Exception Backtrace:") {
            finish_thread(&mut r, current.take());
            section = Section::LastException;
            r.last_exception_backtrace = Some(Thread {
                name: Some("Last Exception Backtrace".into()),
                ..Thread::default()
            });
            recognised += 1;
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Application Specific Information:") {
            section = Section::AppSpecific;
            let rest = rest.trim();
            if !rest.is_empty() {
                app_specific.push(rest);
            }
            continue;
        }

        match section {
            Section::Header => {
                if let Some((k, v)) = key_value(trimmed)
                    && header_field(&mut r, k, v)
                {
                    recognised += 1;
                }
            }
            Section::AppSpecific => {
                if trimmed.is_empty() {
                    section = Section::Header;
                } else {
                    app_specific.push(trimmed);
                }
            }
            Section::Thread | Section::LastException => {
                if trimmed.is_empty() {
                    if section == Section::Thread {
                        finish_thread(&mut r, current.take());
                    }
                    section = Section::Header;
                    continue;
                }
                match crash_frame(line) {
                    Some(f) => {
                        let target = if section == Section::Thread {
                            current.as_mut()
                        } else {
                            r.last_exception_backtrace.as_mut()
                        };
                        if let Some(t) = target
                            && t.frames.len() < super::MAX_FRAMES
                        {
                            t.frames.push(f);
                        }
                    }
                    None if section == Section::LastException && trimmed.starts_with('(') => {
                        // iOS ≤ 13 writes the backtrace as `(0x1a 0x1b …)`.
                        let t = r
                            .last_exception_backtrace
                            .get_or_insert_with(Thread::default);
                        for tok in trimmed
                            .trim_matches(|c| c == '(' || c == ')')
                            .split_whitespace()
                        {
                            if let Some(a) = hex0x(tok) {
                                let index = t.frames.len() as u32;
                                t.frames.push(crate::model::Frame {
                                    index,
                                    address: Some(a),
                                    ..Default::default()
                                });
                            }
                        }
                    }
                    None => {
                        r.warn(
                            Some(lineno),
                            format!("unparseable frame line: {}", clip(trimmed)),
                        );
                    }
                }
            }
            Section::Registers => {
                if trimmed.is_empty() {
                    section = Section::Header;
                    continue;
                }
                let regs = parse_registers(trimmed);
                if let Some(t) = r.threads.iter_mut().find(|t| Some(t.index) == reg_thread) {
                    t.registers.extend(regs);
                }
            }
            Section::Images => {
                if trimmed.is_empty() || trimmed == "EOF" {
                    continue;
                }
                match binary_image(trimmed) {
                    Some(img) => {
                        if r.binary_images.len() < super::MAX_IMAGES {
                            r.binary_images.push(img);
                        }
                    }
                    None if trimmed.starts_with("0x") => {
                        r.warn(
                            Some(lineno),
                            format!("unparseable binary image line: {}", clip(trimmed)),
                        );
                    }
                    None => section = Section::Other,
                }
            }
            Section::Other => {
                if let Some((k, v)) = key_value(trimmed) {
                    header_field(&mut r, k, v);
                }
            }
        }
    }
    finish_thread(&mut r, current.take());

    if recognised == 0 {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "crash",
            hint: "no crash report header, thread or binary image section".into(),
        });
    }
    if !app_specific.is_empty() {
        r.application_specific = Some(app_specific.join("\n"));
    }
    for (idx, (name, queue)) in thread_names {
        if let Some(t) = r.threads.iter_mut().find(|t| t.index == idx) {
            if t.name.is_none() {
                t.name = name;
            }
            if t.queue.is_none() {
                t.queue = queue;
            }
        }
    }
    // A thread marked `Crashed` in its own header wins over the `Crashed Thread:` field.
    let marked = r.threads.iter().find(|t| t.crashed).map(|t| t.index);
    if let (Some(m), Some(h)) = (marked, r.crashed_thread)
        && m != h
    {
        r.warn(
            None,
            format!("header names crashed thread {h} but thread {m} is marked Crashed; using {m}"),
        );
        r.crashed_thread = Some(m);
    }
    if r.threads.is_empty() {
        r.warn(None, "report has no thread backtraces (truncated?)");
    }
    if let Some(idx) = r.crashed_thread {
        let has_threads = !r.threads.is_empty();
        match r.threads.iter_mut().find(|t| t.index == idx) {
            Some(t) => t.crashed = true,
            None if has_threads => {
                r.warn(None, format!("crashed thread {idx} is not in the report"));
            }
            None => {}
        }
    } else if let Some(t) = r.threads.iter().find(|t| t.crashed) {
        r.crashed_thread = Some(t.index);
    }
    r.resolve_frames();
    Ok(r)
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Apply one header field; returns whether the key is a known crash-report key.
fn header_field(r: &mut Report, k: &str, v: &str) -> bool {
    let val = || non_empty(v);
    match k {
        "Incident Identifier" => r.incident_id = val(),
        "Hardware Model" => r.device = val(),
        "Model" if r.device.is_none() => {
            r.device = val().map(|m| m.split(',').take(2).collect::<Vec<_>>().join(","))
        }
        "Process" | "Command" => {
            let (n, p) = name_pid(v);
            r.process.name = n;
            if p.is_some() {
                r.process.pid = p;
            }
        }
        "PID" => r.process.pid = leading_dec(v).and_then(|p| u32::try_from(p).ok()),
        "Path" => r.process.path = val(),
        "Identifier" => r.process.bundle_id = val(),
        "Version" => r.process.version = val().filter(|v| v != "???" && v != "??? (???)"),
        "Code Type" => r.process.code_type = val(),
        "Parent Process" | "Parent" => {
            let (n, p) = name_pid(v);
            r.process.parent = n;
            r.process.parent_pid = p;
        }
        "Responsible Process" | "Responsible" => r.process.responsible = name_pid(v).0,
        "Coalition" => r.process.coalition = name_pid(v).0,
        "Date/Time" => r.timestamp = val(),
        "OS Version" => {
            let rel = r.os.release_type.take();
            r.os = Os::from_raw(v);
            r.os.release_type = rel;
        }
        "Release Type" => r.os.release_type = val(),
        "Exception Type" => {
            let e = r.exception.get_or_insert_with(Exception::default);
            e.kind = val();
            if let (Some(o), Some(c)) = (v.find('('), v.rfind(')')) {
                let inner = v.get(o + 1..c).unwrap_or("");
                if inner.starts_with("SIG") {
                    e.signal = Some(inner.to_string());
                }
            } else if v.starts_with("SIG") {
                e.signal = val();
            }
        }
        "Exception Codes" => {
            // macOS writes two lines: `KERN_INVALID_ADDRESS at 0x18`, then the raw codes.
            let e = r.exception.get_or_insert_with(Exception::default);
            match e.codes.take() {
                Some(prev) if !prev.starts_with("0x") && e.subtype.is_none() => {
                    e.subtype = Some(prev);
                    e.codes = val();
                }
                Some(prev) => e.codes = Some(prev),
                None => e.codes = val(),
            }
        }
        "Exception Subtype" => r.exception.get_or_insert_with(Exception::default).subtype = val(),
        "Exception Note" | "Exception Message" | "Exception Reason" => {
            let e = r.exception.get_or_insert_with(Exception::default);
            e.message = match e.message.take() {
                Some(m) => Some(format!("{m}; {v}")),
                None => val(),
            };
        }
        "Termination Signal" => {
            r.termination
                .get_or_insert_with(Termination::default)
                .indicator = val()
        }
        "Termination Reason" => {
            let t = r.termination.get_or_insert_with(Termination::default);
            t.reason = val();
            // `Namespace SIGNAL, Code 0x6 Abort trap: 6` (macOS) / `SIGNAL 11 Segmentation fault: 11` (iOS)
            let rest = v.strip_prefix("Namespace ").unwrap_or(v);
            let mut toks = rest.split_whitespace();
            t.namespace = toks.next().map(|n| n.trim_end_matches(',').to_string());
            let mut code = toks.next();
            if code == Some("Code") {
                code = toks.next();
            }
            t.code = code.map(|c| c.trim_end_matches(',').to_string());
            let indicator = toks.collect::<Vec<_>>().join(" ");
            if t.indicator.is_none() && !indicator.is_empty() {
                t.indicator = Some(indicator);
            }
        }
        "Terminating Process" => {
            r.termination
                .get_or_insert_with(Termination::default)
                .by_process = val()
        }
        "Triggered by Thread" | "Crashed Thread" => {
            r.crashed_thread = leading_dec(v).and_then(|t| u32::try_from(t).ok());
        }
        "CrashReporter Key"
        | "Launch Time"
        | "Report Version"
        | "Role"
        | "Anonymous UUID"
        | "Baseband Version"
        | "Device Model"
        | "UDID"
        | "Sleep/Wake UUID"
        | "Time Awake Since Boot"
        | "System Integrity Protection"
        | "Crashed Thread Name"
        | "Framework Version" => {}
        _ => return false,
    }
    true
}

enum ThreadLine {
    /// `Thread 0 name:  Dispatch queue: com.apple.main-thread`
    Name(u32, String),
    /// `Thread 5 Crashed:` / `Thread 0:: Dispatch queue: …` / `Thread 1 Crashed: name`
    Start(u32, bool, Option<String>),
    /// `Thread 5 crashed with X86-64 Thread State:`
    State(u32),
}

fn thread_header(line: &str) -> Option<ThreadLine> {
    let rest = line.strip_prefix("Thread ")?;
    let num_end = rest.bytes().position(|b| !b.is_ascii_digit())?;
    if num_end == 0 || num_end > 6 {
        return None;
    }
    let idx = u32::try_from(leading_dec(&rest[..num_end])?).ok()?;
    let tail = &rest[num_end..];
    if let Some(name) = tail.strip_prefix(" name:") {
        return Some(ThreadLine::Name(idx, name.trim().to_string()));
    }
    if tail.starts_with(" crashed with ") && tail.trim_end().ends_with(':') {
        return Some(ThreadLine::State(idx));
    }
    let (crashed, after) = match tail.strip_prefix(" Crashed") {
        Some(a) => (true, a),
        None => (false, tail),
    };
    let after = after.strip_prefix(':')?;
    let after = after.strip_prefix(':').unwrap_or(after).trim();
    Some(ThreadLine::Start(idx, crashed, non_empty(after)))
}

/// `Dispatch queue: com.apple.main-thread` → (None, Some(queue)); `name` → (Some(name), None).
fn split_queue(s: &str) -> (Option<String>, Option<String>) {
    match s.trim().strip_prefix("Dispatch queue:") {
        Some(q) => (None, non_empty(q)),
        None => (non_empty(s), None),
    }
}

fn parse_registers(line: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut toks = line.split_whitespace().peekable();
    while let Some(tok) = toks.next() {
        if let Some(name) = tok.strip_suffix(':')
            && let Some(v) = toks.peek().and_then(|t| hex0x(t))
        {
            toks.next();
            if !name.is_empty() && name.len() <= 8 {
                out.push((name.to_string(), v));
            }
        }
    }
    out
}

fn is_arch(s: &str) -> bool {
    let s = s.trim_matches(|c| c == '(' || c == ')');
    matches!(s, "???" | "i386" | "ppc" | "ppc64") || s.starts_with("arm") || s.starts_with("x86")
}

/// `0xSTART - 0xEND [+]name arch [(version)] <uuid> /path`
pub(crate) fn binary_image(line: &str) -> Option<BinaryImage> {
    let (start_s, rest) = line.trim().split_once('-')?;
    let start = hex0x(start_s.trim())?;
    let rest = rest.trim_start();
    let end_len = rest.find(char::is_whitespace)?;
    let end = hex0x(&rest[..end_len])?;
    let rest = rest[end_len..].trim_start();
    let lt = rest.find('<')?;
    let gt = lt + rest[lt..].find('>')?;
    let uuid_raw = &rest[lt + 1..gt];
    if uuid_raw.is_empty() || !uuid_raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return None;
    }
    let path = rest[gt + 1..].trim();
    let mut desc = rest[..lt].trim();
    let app = desc.starts_with('+');
    desc = desc.trim_start_matches('+').trim();
    let mut img = BinaryImage {
        base: Some(start),
        size: end.checked_sub(start).and_then(|s| s.checked_add(1)),
        uuid: Some(normalize_uuid(uuid_raw)),
        path: non_empty(path),
        app,
        ..BinaryImage::default()
    };
    // name arch (version) | name (arch) | name arch
    let (mut head, paren) = match (desc.ends_with(')'), desc.rfind(" (")) {
        (true, Some(open)) => (desc[..open].trim(), Some(&desc[open + 2..desc.len() - 1])),
        _ => (desc, None),
    };
    let last_tok = head.rsplit(char::is_whitespace).next().unwrap_or("");
    if let Some(p) = paren {
        if head.contains(char::is_whitespace) && is_arch(last_tok) {
            img.arch = Some(last_tok.to_string());
            img.version = non_empty(p);
            head = head[..head.len() - last_tok.len()].trim();
        } else if is_arch(p) {
            img.arch = Some(p.to_string());
        } else {
            img.version = non_empty(p);
        }
    } else if head.contains(char::is_whitespace) && is_arch(last_tok) {
        img.arch = Some(last_tok.to_string());
        head = head[..head.len() - last_tok.len()].trim();
    }
    img.name = non_empty(head).filter(|n| n != "???");
    if img.name.is_none() {
        img.name = img
            .path
            .as_deref()
            .and_then(|p| p.rsplit('/').next())
            .and_then(non_empty)
            .filter(|n| n != "???");
    }
    Some(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_line_layouts() {
        let img = binary_image("0x10864e000 -        0x10ee0ffff +YetAnotherMac x86_64 (400.9.4 - 1.0.0) <2d903291397d3d14bfca52c7fb8c5e00> /Users/bruno/Documents/Unreal Projects/YetAnotherMac/YetAnotherMac").unwrap();
        assert_eq!(img.name.as_deref(), Some("YetAnotherMac"));
        assert_eq!(img.arch.as_deref(), Some("x86_64"));
        assert_eq!(img.version.as_deref(), Some("400.9.4 - 1.0.0"));
        assert_eq!(
            img.uuid.as_deref(),
            Some("2d903291-397d-3d14-bfca-52c7fb8c5e00")
        );
        assert_eq!(img.size, Some(0x10ee0ffff - 0x10864e000 + 1));
        assert!(img.app);
        assert_eq!(
            img.path.as_deref(),
            Some("/Users/bruno/Documents/Unreal Projects/YetAnotherMac/YetAnotherMac")
        );

        let img = binary_image("0x1018b6000 -        0x1018c2fff  ch.pitaya.xcdyoutubekit (x86_64)  <31136917-6868-3472-B768-EB12D00E37E9> /Users/x/XCDYouTubeKit").unwrap();
        assert_eq!(img.name.as_deref(), Some("ch.pitaya.xcdyoutubekit"));
        assert_eq!(img.arch.as_deref(), Some("x86_64"));
        assert_eq!(img.version, None);

        let img = binary_image("0x10211c000 -        0x1024b3fff App Namespace arm64  <debeff4e26534f38e59bc9de7b8daade> /private/var/App Namespace Some.app/App Namespace").unwrap();
        assert_eq!(img.name.as_deref(), Some("App Namespace"));
        assert_eq!(img.arch.as_deref(), Some("arm64"));

        let img = binary_image(
            "0x0 - 0xffffffffffffffff ??? (*) <00000000-0000-0000-0000-000000000000> ???",
        )
        .unwrap();
        assert_eq!(img.name, None);
        assert!(binary_image("0x1 - garbage").is_none());
    }

    #[test]
    fn thread_headers() {
        assert!(matches!(
            thread_header("Thread 0 Crashed:: Dispatch queue: com.apple.main-thread"),
            Some(ThreadLine::Start(0, true, Some(_)))
        ));
        assert!(matches!(
            thread_header("Thread 12:"),
            Some(ThreadLine::Start(12, false, None))
        ));
        assert!(matches!(
            thread_header("Thread 1 Crashed: Test Thread Name"),
            Some(ThreadLine::Start(1, true, Some(_)))
        ));
        assert!(matches!(
            thread_header("Thread 0 name:  Dispatch queue: x"),
            Some(ThreadLine::Name(0, _))
        ));
        assert!(matches!(
            thread_header("Thread 5 crashed with X86-64 Thread State:"),
            Some(ThreadLine::State(5))
        ));
        assert!(thread_header("Thread pool exhausted").is_none());
    }
}

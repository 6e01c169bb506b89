//! `.ips` / `.panic` containers: a one-line JSON metadata header, then a second JSON
//! document (app crashes 309/308/385/327, panics 210/110/151/409) or a text report
//! (bug_type 109). Every body field is optional and read leniently from a
//! `serde_json::Value`, so schema drift (changed or unknown fields) never fails a parse.

use serde_json::{Map, Value};

use crate::error::ParseError;
use crate::model::{
    BinaryImage, Exception, Frame, Os, Report, ReportKind, SourceFormat, Termination, Thread,
    normalize_uuid,
};
use crate::parse::{crash, panic};

/// Whether `line` (the first non-blank line) is an `.ips` metadata header.
pub(crate) fn is_ips_header(line: &str) -> bool {
    let l = line.trim();
    l.starts_with('{') && l.ends_with('}') && l.contains("\"bug_type\"")
}

fn s(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn u(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s
            .trim()
            .parse()
            .ok()
            .or_else(|| crate::model::parse_hex_str(s)),
        _ => None,
    }
}

fn u32_(v: Option<&Value>) -> Option<u32> {
    u(v).and_then(|x| u32::try_from(x).ok())
}

/// Whether a text that starts with `{` is an `.ips` body pasted without its header line.
pub(crate) fn is_headerless_body(text: &str) -> bool {
    let mut end = text.len().min(64 * 1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    [
        "\"usedImages\"",
        "\"panicString\"",
        "\"macOSPanicString\"",
        "\"procName\"",
        "\"faultingThread\"",
    ]
    .iter()
    .any(|k| head.contains(k))
}

/// Parse an `.ips` body pasted without its metadata line. `first_line` is the body's line.
pub(crate) fn parse_ips_body(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let v: Value = serde_json::from_str(text.trim_start()).map_err(|e| {
        let lead = text.len() - text.trim_start().len();
        ParseError::json(
            ".ips body",
            first_line + text[..lead].matches('\n').count() as u64,
            &e,
        )
    })?;
    let Value::Object(body) = v else {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "ips",
            hint: "not a JSON object".into(),
        });
    };
    let header = Map::new();
    let mut r = body_report(&header, &body, first_line)?;
    if r.bug_type.is_none() {
        r.bug_type = s(body.get("bug_type"));
    }
    Ok(r)
}

/// Parse a whole `.ips` file (header line + body). `first_line` is the header's line.
pub(crate) fn parse_ips(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let (header_line, body) = text.split_once('\n').unwrap_or((text, ""));
    let header: Value = serde_json::from_str(header_line.trim())
        .map_err(|e| ParseError::json(".ips header", first_line, &e))?;
    let Value::Object(header) = header else {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "ips",
            hint: "first line is JSON but not an object".into(),
        });
    };
    let bug_type = s(header.get("bug_type"));
    let body_line = first_line + 1;
    let body_trim = body.trim_start();
    let mut report = if body_trim.starts_with('{') {
        let skipped = (body.len() - body_trim.len()) as u64;
        let lead_lines = body[..skipped as usize].matches('\n').count() as u64;
        let v: Value = serde_json::from_str(body_trim)
            .map_err(|e| ParseError::json(".ips body", body_line + lead_lines, &e))?;
        let Value::Object(body) = v else {
            return Err(ParseError::Malformed {
                line: body_line,
                message: ".ips body is not a JSON object".into(),
            });
        };
        body_report(&header, &body, body_line)?
    } else if body_trim.is_empty() {
        // A lone header (some .panic files keep everything in one document).
        if let Some(r) = panic_from_object(&header, body_line, &header)? {
            r
        } else {
            return Err(ParseError::Malformed {
                line: first_line,
                message: format!(
                    ".ips header (bug_type {}) without a report body: file truncated?",
                    bug_type.as_deref().unwrap_or("?")
                ),
            });
        }
    } else {
        // bug_type 109 and other legacy containers: JSON header + text report.
        let mut r = if body_trim.lines().take(400).any(panic::is_panic_anchor) {
            panic::parse_panic_text(body, body_line)?
        } else {
            crash::parse_crash_text(body, body_line)?
        };
        r.format = SourceFormat::IpsLegacyText;
        r
    };
    report.bug_type = bug_type.or(report.bug_type.take());
    apply_header(&mut report, &header);
    Ok(report)
}

fn apply_header(r: &mut Report, h: &Map<String, Value>) {
    if r.incident_id.is_none() {
        r.incident_id = s(h.get("incident_id"));
    }
    if r.timestamp.is_none() {
        r.timestamp = s(h.get("timestamp"));
    }
    if r.os.raw.is_none()
        && r.os.build.is_none()
        && let Some(os) = s(h.get("os_version"))
    {
        r.os = Os::from_raw(&os);
    }
    if r.kind != ReportKind::Panic {
        if r.process.name.is_none() {
            r.process.name = s(h.get("app_name")).or_else(|| s(h.get("name")));
        }
        if r.process.bundle_id.is_none() {
            r.process.bundle_id = s(h.get("bundleID"));
        }
        if r.process.version.is_none() {
            r.process.version = s(h.get("app_version"));
        }
    }
}

fn body_report(
    h: &Map<String, Value>,
    b: &Map<String, Value>,
    body_line: u64,
) -> Result<Report, ParseError> {
    if let Some(r) = panic_from_object(b, body_line, h)? {
        return Ok(r);
    }
    let is_crash = [
        "threads",
        "exception",
        "usedImages",
        "faultingThread",
        "procName",
    ]
    .iter()
    .any(|k| b.contains_key(*k));
    if !is_crash {
        let bug = s(h.get("bug_type")).unwrap_or_else(|| "?".into());
        return Err(ParseError::Unsupported {
            line: body_line,
            what: format!(
                "bug_type {bug} ({}): neither a crash nor a panic report",
                bug_type_name(&bug)
            ),
        });
    }
    Ok(app_crash(b))
}

/// OSAnalytics names of the bug types (`submissionConfig.plist`).
fn bug_type_name(bug: &str) -> &'static str {
    match bug {
        "109" | "309" | "9" => "Crash",
        "110" | "210" | "10" => "Panic",
        "151" => "ForceReset",
        "185" | "385" => "ExcResource",
        "288" => "Stackshot",
        "298" => "Jetsam",
        "308" => "OSFault",
        "327" => "ExcResourceThreads",
        "409" => "SystemWatchdogCrash",
        "410" => "AutomationPanic",
        "509" => "TerminatingStackshot",
        "11" => "Spin",
        "12" => "Hang",
        _ => "unknown",
    }
}

/// The panic string of a body, if it has a usable one.
fn panic_string(b: &Map<String, Value>) -> Option<&str> {
    ["panicString", "macOSPanicString", "string"]
        .iter()
        .find_map(|k| match b.get(*k) {
            Some(Value::String(s))
                if s.contains("panic(") || (s.len() > 8 && s != "not yet set") =>
            {
                Some(s.as_str())
            }
            _ => None,
        })
}

fn panic_from_object(
    b: &Map<String, Value>,
    body_line: u64,
    h: &Map<String, Value>,
) -> Result<Option<Report>, ParseError> {
    let Some(text) = panic_string(b) else {
        return Ok(None);
    };
    let mut r = match panic::parse_panic_text(text, body_line) {
        Ok(r) => r,
        Err(_) => {
            // A panic string without `panic(cpu …)` (e.g. watchdog text): keep it as the message.
            let mut r = Report::new(ReportKind::Panic, SourceFormat::IpsPanic);
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            r.panic = Some(crate::model::PanicInfo {
                message: Some(first.trim().to_string()),
                ..Default::default()
            });
            r
        }
    };
    r.format = SourceFormat::IpsPanic;
    // Line numbers inside the JSON string are not file lines.
    for w in &mut r.warnings {
        w.line = Some(body_line);
    }
    r.incident_id = s(b.get("incident")).or_else(|| s(h.get("incident_id")));
    r.timestamp = s(b.get("date")).or_else(|| s(h.get("timestamp")));
    if let Some(build) = s(b.get("build")) {
        let mut os = Os::from_raw(&build);
        os.release_type = r.os.release_type.take();
        if os.build.is_none() {
            os.build = r.os.build.take();
        }
        r.os = os;
    }
    if r.device.is_none() {
        r.device = s(b.get("product"));
    }
    if let Some(p) = r.panic.as_mut()
        && p.kernel_version.is_none()
    {
        p.kernel_version = s(b.get("kernel"));
    }
    stackshot_threads(&mut r, b);
    Ok(Some(r))
}

/// Attach the panicked thread's stackshot frames (`processByPid`) and the stackshot image
/// list (`binaryImages` as `[uuid, base, source]`), when present.
fn stackshot_threads(r: &mut Report, b: &Map<String, Value>) {
    if let Some(Value::Array(imgs)) = b.get("binaryImages") {
        for img in imgs.iter().take(super::MAX_IMAGES) {
            if let Some(bi) = image_from_value(img) {
                r.binary_images.push(bi);
            }
        }
    }
    let Some(p) = r.panic.as_ref() else { return };
    let pid = p.panicked_task.as_ref().and_then(|t| t.pid);
    let tid = p.panicked_thread.as_ref().and_then(|t| t.tid);
    let (Some(pid), Some(tid)) = (pid, tid) else {
        return;
    };
    let Some(th) = b
        .get("processByPid")
        .and_then(|v| v.get(pid.to_string()))
        .and_then(|v| v.get("threadById"))
        .and_then(|v| v.get(tid.to_string()))
    else {
        return;
    };
    let mut thread = Thread {
        index: r.threads.len() as u32,
        id: Some(tid),
        name: s(th.get("name"))
            .map(|n| format!("{n} (stackshot)"))
            .or_else(|| Some("stackshot".into())),
        ..Thread::default()
    };
    for key in ["kernelFrames", "userFrames"] {
        if let Some(Value::Array(frames)) = th.get(key) {
            for f in frames.iter().take(super::MAX_FRAMES) {
                let (idx, off) = match f {
                    Value::Array(a) => (u(a.first()), u(a.get(1))),
                    Value::Object(o) => (u(o.get("imageIndex")), u(o.get("imageOffset"))),
                    _ => continue,
                };
                let image_index = idx
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < r.binary_images.len());
                thread.frames.push(Frame {
                    index: thread.frames.len() as u32,
                    image_index,
                    image_offset: off,
                    ..Frame::default()
                });
            }
        }
    }
    if !thread.frames.is_empty() {
        r.threads.push(thread);
        r.resolve_frames();
    }
}

fn image_from_value(v: &Value) -> Option<BinaryImage> {
    match v {
        Value::Array(a) => Some(BinaryImage {
            uuid: s(a.first()).map(|u| normalize_uuid(&u)),
            base: u(a.get(1)),
            source: s(a.get(2)),
            ..BinaryImage::default()
        }),
        Value::Object(o) => {
            let path = s(o.get("path"));
            let name = s(o.get("name")).or_else(|| {
                path.as_deref()
                    .and_then(|p| p.rsplit('/').next())
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
            });
            Some(BinaryImage {
                name,
                path,
                uuid: s(o.get("uuid")).map(|u| normalize_uuid(&u)),
                base: u(o.get("base")),
                size: u(o.get("size")),
                arch: s(o.get("arch")),
                version: s(o.get("CFBundleShortVersionString")),
                app: matches!(o.get("source").and_then(Value::as_str), Some("P"))
                    && s(o.get("path"))
                        .is_some_and(|p| !p.starts_with("/System/") && !p.starts_with("/usr/")),
                source: s(o.get("source")),
            })
        }
        _ => None,
    }
}

fn frames_from(v: Option<&Value>, images: &[BinaryImage]) -> Vec<Frame> {
    let Some(Value::Array(frames)) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(frames.len().min(super::MAX_FRAMES));
    for f in frames.iter().take(super::MAX_FRAMES) {
        let Value::Object(o) = f else { continue };
        let image_index = u(o.get("imageIndex"))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < images.len());
        let mut frame = Frame {
            index: out.len() as u32,
            image_index,
            image_offset: u(o.get("imageOffset")),
            symbol: s(o.get("symbol")),
            symbol_offset: u(o.get("symbolLocation")),
            file: s(o.get("sourceFile")),
            line: u32_(o.get("sourceLine")),
            inline: matches!(o.get("inline"), Some(Value::Bool(true))),
            ..Frame::default()
        };
        if let Some(img) = image_index.and_then(|i| images.get(i)) {
            frame.image.clone_from(&img.name);
        }
        out.push(frame);
    }
    out
}

fn app_crash(b: &Map<String, Value>) -> Report {
    let mut r = Report::new(ReportKind::Crash, SourceFormat::IpsCrash);
    r.bug_type = s(b.get("bug_type"));
    r.incident_id = s(b.get("incident"));
    r.timestamp = s(b.get("captureTime"));
    r.device = s(b.get("modelCode"));
    if let Some(Value::Object(os)) = b.get("osVersion") {
        if let Some(train) = s(os.get("train")) {
            r.os = Os::from_raw(&train);
        }
        r.os.build = s(os.get("build")).or(r.os.build.take());
        r.os.release_type = s(os.get("releaseType"));
        let raw = match (&r.os.raw, &r.os.build) {
            (Some(t), Some(b)) => Some(format!("{t} ({b})")),
            (t, _) => t.clone(),
        };
        r.os.raw = raw;
    }
    let p = &mut r.process;
    p.name = s(b.get("procName"));
    p.pid = u32_(b.get("pid"));
    p.path = s(b.get("procPath"));
    p.parent = s(b.get("parentProc"));
    p.parent_pid = u32_(b.get("parentPid"));
    p.responsible = s(b.get("responsibleProc"));
    p.code_type = s(b.get("cpuType"));
    p.coalition = s(b.get("coalitionName"));
    if let Some(Value::Object(bi)) = b.get("bundleInfo") {
        p.bundle_id = s(bi.get("CFBundleIdentifier"));
        p.version = match (
            s(bi.get("CFBundleShortVersionString")),
            s(bi.get("CFBundleVersion")),
        ) {
            (Some(a), Some(v)) => Some(format!("{a} ({v})")),
            (a, v) => a.or(v),
        };
    }
    if let Some(Value::Object(e)) = b.get("exception") {
        r.exception = Some(Exception {
            kind: s(e.get("type")),
            signal: s(e.get("signal")),
            codes: s(e.get("codes")),
            subtype: s(e.get("subtype")),
            message: s(e.get("message")),
        });
    }
    if let Some(Value::Object(t)) = b.get("termination") {
        let reason = match t.get("reasons") {
            Some(Value::Array(a)) => {
                let v: Vec<String> = a.iter().filter_map(|x| s(Some(x))).collect();
                (!v.is_empty()).then(|| v.join("; "))
            }
            other => s(other),
        };
        r.termination = Some(Termination {
            namespace: s(t.get("namespace")),
            code: s(t.get("code")),
            indicator: s(t.get("indicator")),
            reason,
            by_process: s(t.get("byProc")),
        });
    }
    r.application_specific = asi_text(b.get("asi"));
    if let Some(Value::Array(imgs)) = b.get("usedImages") {
        r.binary_images = imgs
            .iter()
            .take(super::MAX_IMAGES)
            .filter_map(image_from_value)
            .collect();
    }
    let faulting = u32_(b.get("faultingThread"));
    r.crashed_thread = faulting;
    if let Some(Value::Array(threads)) = b.get("threads") {
        for (i, t) in threads.iter().enumerate().take(super::MAX_THREADS) {
            let Value::Object(o) = t else { continue };
            let index = i as u32;
            let mut th = Thread {
                index,
                id: u(o.get("id")),
                name: s(o.get("name")),
                queue: s(o.get("queue")),
                crashed: matches!(o.get("triggered"), Some(Value::Bool(true)))
                    || faulting == Some(index),
                frames: frames_from(o.get("frames"), &r.binary_images),
                ..Thread::default()
            };
            if let Some(Value::Object(state)) = o.get("threadState") {
                registers(state, &mut th);
            }
            r.threads.push(th);
        }
    }
    if r.crashed_thread.is_none() {
        r.crashed_thread = r.threads.iter().find(|t| t.crashed).map(|t| t.index);
    }
    if let Some(leb) = b.get("lastExceptionBacktrace") {
        let frames = frames_from(Some(leb), &r.binary_images);
        if !frames.is_empty() {
            r.last_exception_backtrace = Some(Thread {
                name: Some("Last Exception Backtrace".into()),
                frames,
                ..Thread::default()
            });
        }
    }
    r.resolve_frames();
    r
}

fn registers(state: &Map<String, Value>, th: &mut Thread) {
    for (k, v) in state {
        match v {
            Value::Object(o) => {
                if let Some(x) = u(o.get("value")) {
                    th.registers.insert(k.clone(), x);
                }
            }
            Value::Array(a) if k == "x" => {
                for (i, r) in a.iter().enumerate().take(32) {
                    if let Some(x) = u(r.get("value")) {
                        th.registers.insert(format!("x{i}"), x);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `asi` is `{image: [strings]}` (or drifted to a string / list): flatten to text.
fn asi_text(v: Option<&Value>) -> Option<String> {
    let mut out = Vec::new();
    match v? {
        Value::Object(m) => {
            for (img, lines) in m {
                match lines {
                    Value::Array(a) => {
                        for l in a {
                            if let Some(l) = s(Some(l)) {
                                out.push(format!("{img}: {l}"));
                            }
                        }
                    }
                    other => {
                        if let Some(l) = s(Some(other)) {
                            out.push(format!("{img}: {l}"));
                        }
                    }
                }
            }
        }
        Value::Array(a) => out.extend(a.iter().filter_map(|x| s(Some(x)))),
        other => out.extend(s(Some(other))),
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifted_fields_do_not_fail() {
        let text = r#"{"bug_type":"309","incident_id":"X"}
{
  "procName" : 5,
  "threads" : "not an array",
  "usedImages" : [[1,2,3], {"base": "oops"}],
  "trialInfo" : {"rollouts":[{"factorPackIds":["a","b"]}]},
  "exception" : {"type" : "EXC_BAD_ACCESS", "codes" : ["0x1"]},
  "faultingThread" : -1
}"#;
        let r = parse_ips(text, 1).unwrap();
        assert_eq!(r.kind, ReportKind::Crash);
        assert_eq!(r.incident_id.as_deref(), Some("X"));
        assert_eq!(r.process.name.as_deref(), Some("5"));
        assert_eq!(r.exception.unwrap().kind.as_deref(), Some("EXC_BAD_ACCESS"));
        assert_eq!(r.binary_images.len(), 2);
    }

    #[test]
    fn truncated_body_names_line() {
        let text = "{\"bug_type\":\"309\"}\n{\n  \"procName\" : \"x\",\n  \"threads\" : [";
        let e = parse_ips(text, 1).unwrap_err();
        assert_eq!(e.name(), "invalid_json");
        assert_eq!(e.line(), Some(4));
    }

    #[test]
    fn jetsam_is_unsupported_not_an_empty_crash() {
        let e = parse_ips(
            "{\"bug_type\":\"298\"}\n{\"largestProcess\" : \"x\", \"processes\" : []}\n",
            1,
        )
        .unwrap_err();
        assert_eq!(e.name(), "unsupported");
        assert!(e.to_string().contains("bug_type 298 (Jetsam)"), "{e}");
    }

    #[test]
    fn header_without_body() {
        let e = parse_ips("{\"bug_type\":\"309\"}\n", 1).unwrap_err();
        assert_eq!(e.name(), "malformed");
    }
}

//! Kernel panic text: arm64 and x86_64 layouts, alone, inside `*** Panic Report ***`, or
//! as the `panicString`/`macOSPanicString`/`string` of a `.ips`/`.panic` JSON body.

use crate::error::ParseError;
use crate::model::{
    Frame, Kext, LoadedKext, PanicInfo, PanickedTask, PanickedThread, Report, ReportKind,
    SourceFormat, Thread,
};
use crate::parse::text::{dec, hex0x, key_value, leading_dec, non_empty};

/// Whether a line starts a panic (`panic(cpu 0 caller 0x…): …`).
pub(crate) fn is_panic_anchor(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("panic(cpu ") || l.starts_with("*** Panic Report ***")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Body,
    Kexts,
    Loaded,
    /// A `Key:` line whose value is on the next line (x86 `Mac OS version:`).
    ValueNext,
}

/// Parse panic text. `first_line` is the 1-based line of `text` in its file.
pub(crate) fn parse_panic_text(text: &str, first_line: u64) -> Result<Report, ParseError> {
    let mut r = Report::new(ReportKind::Panic, SourceFormat::PanicText);
    let mut p = PanicInfo::default();
    let mut thread = Thread {
        crashed: true,
        ..Thread::default()
    };
    let mut section = Section::Body;
    let mut pending_key: Option<&str> = None;
    let mut saw_panic = false;

    for (i, raw) in text.lines().enumerate() {
        let lineno = first_line + i as u64;
        let line = raw.trim_end();
        let t = line.trim_start();

        if section == Section::ValueNext {
            if t.is_empty() {
                continue;
            }
            if let Some(k) = pending_key.take() {
                apply_key(&mut r, &mut p, k, t);
            }
            section = Section::Body;
            continue;
        }

        if let Some(rest) = t.strip_prefix("panic(cpu ") {
            if saw_panic {
                // A nested panic: keep the first message, note the second.
                r.warn(Some(lineno), format!("nested panic: {}", t));
                continue;
            }
            saw_panic = true;
            let close = rest.find(')').unwrap_or(rest.len());
            let inside = &rest[..close];
            p.cpu = leading_dec(inside).and_then(|c| u32::try_from(c).ok());
            if let Some(c) = inside.split(" caller ").nth(1) {
                p.caller = hex0x(c.trim());
            }
            let msg = rest
                .get(close + 1..)
                .unwrap_or("")
                .trim_start_matches(':')
                .trim();
            p.message = non_empty(msg);
            continue;
        }
        if t.is_empty() {
            if section == Section::Loaded {
                section = Section::Body;
            }
            continue;
        }
        match section {
            Section::Kexts => {
                if let Some(k) = kext_line(t) {
                    if p.kexts.len() < super::MAX_IMAGES {
                        p.kexts.push(k);
                    }
                    continue;
                }
                section = Section::Body;
            }
            Section::Loaded => {
                let mut parts = t.split_whitespace();
                if let Some(name) = parts.next()
                    && name.contains('.')
                    && !name.ends_with(':')
                {
                    if p.loaded_kexts.len() < super::MAX_IMAGES {
                        p.loaded_kexts.push(LoadedKext {
                            name: name.to_string(),
                            version: parts.next().map(str::to_string),
                        });
                    }
                    continue;
                }
                section = Section::Body;
            }
            _ => {}
        }

        // arm64 frame: `lr: 0xfffffff02cfc6ba8  fp: 0xffffffecfb44f820`
        if let Some(rest) = t.strip_prefix("lr: ")
            && let Some(a) = rest.split_whitespace().next().and_then(hex0x)
        {
            push_frame(
                &mut thread,
                Frame {
                    address: Some(a),
                    ..Frame::default()
                },
            );
            continue;
        }
        // x86_64 frame: `0xffffff80e6d1b900 : 0xffffff800a1ee6b1 [mach_kernel : _sym + 0x…]`
        if t.starts_with("0x")
            && let Some(f) = x86_frame(t)
        {
            push_frame(&mut thread, f);
            continue;
        }
        if t.starts_with("Backtrace (CPU") {
            if let Some(th) = t.split("panicked thread: ").nth(1) {
                let addr = th
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .next()
                    .and_then(hex0x);
                p.panicked_thread
                    .get_or_insert_with(PanickedThread::default)
                    .address = addr;
            }
            continue;
        }
        if t.starts_with("Kernel Extensions in backtrace") {
            section = Section::Kexts;
            continue;
        }
        if t.starts_with("loaded kexts:") {
            section = Section::Loaded;
            continue;
        }
        if let Some(rest) = t.strip_prefix("last started kext at ") {
            p.last_started_kext = rest
                .split_once(": ")
                .map(|(_, k)| k.split_whitespace().next().unwrap_or("").to_string())
                .filter(|s| !s.is_empty());
            continue;
        }
        if let Some(rest) = t.strip_prefix("Panicked task ") {
            p.panicked_task = Some(panicked_task(rest));
            continue;
        }
        if let Some(rest) = t.strip_prefix("Panicked thread: ") {
            let mut th = PanickedThread::default();
            for part in rest.split(',') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("backtrace: ") {
                    th.backtrace = hex0x(v.trim());
                } else if let Some(v) = part.strip_prefix("tid: ") {
                    th.tid = dec(v.trim());
                } else if th.address.is_none() {
                    th.address = hex0x(part);
                }
            }
            thread.id = th.tid;
            p.panicked_thread = Some(th);
            continue;
        }
        if let Some(rest) = t
            .strip_prefix("Process name corresponding to current thread")
            .or_else(|| t.strip_prefix("BSD process name corresponding to current thread"))
        {
            // `(0xffffff8…): name` or `: name`
            let name = rest
                .rsplit_once(": ")
                .map_or(rest.trim_start_matches(':'), |(_, n)| n);
            p.process_name = non_empty(name);
            continue;
        }
        if let Some((k, v)) = key_value(t) {
            if v.is_empty()
                && matches!(
                    k,
                    "Mac OS version" | "Kernel version" | "macOS version" | "OS version"
                )
            {
                pending_key = Some(k);
                section = Section::ValueNext;
                continue;
            }
            apply_key(&mut r, &mut p, k, v);
        }
    }

    if !saw_panic {
        return Err(ParseError::WrongFormat {
            line: first_line,
            format: "panic",
            hint: "no `panic(cpu …)` line".into(),
        });
    }
    // Attribute frames to kexts by address range.
    for f in &mut thread.frames {
        let Some(a) = f.address else { continue };
        if let Some(k) = p
            .kexts
            .iter()
            .find(|k| matches!((k.start, k.end), (Some(s), Some(e)) if a >= s && a <= e))
        {
            f.image = Some(k.name.clone());
            f.image_base = k.start;
            f.image_offset = k.start.map(|s| a - s);
            f.image_uuid = k.uuid.as_deref().map(crate::model::normalize_uuid);
        }
    }
    if let Some(task) = &p.panicked_task {
        r.process.name.clone_from(&task.name);
        r.process.pid = task.pid;
    }
    if r.process.name.is_none() {
        r.process.name.clone_from(&p.process_name);
    }
    if thread.frames.is_empty() && thread.id.is_none() {
        r.crashed_thread = None;
    } else {
        r.crashed_thread = Some(0);
        r.threads.push(thread);
    }
    r.panic = Some(p);
    r.resolve_frames();
    Ok(r)
}

fn push_frame(thread: &mut Thread, mut f: Frame) {
    if thread.frames.len() < super::MAX_FRAMES {
        f.index = thread.frames.len() as u32;
        thread.frames.push(f);
    }
}

fn apply_key(r: &mut Report, p: &mut PanicInfo, k: &str, v: &str) {
    match k {
        "Debugger message" => p.debugger_message = non_empty(v),
        "OS version" | "Mac OS version" if r.os.build.is_none() => r.os.build = non_empty(v),
        "macOS version" if r.os.version.is_none() => {
            r.os.version = non_empty(v);
            r.os.name.get_or_insert_with(|| "macOS".into());
        }
        "OS release type" => r.os.release_type = non_empty(v),
        "Kernel version" => {
            // The value ends with the build (`…/RELEASE_ARM64_T6050`); anything after it
            // is not part of it (flattened pastes).
            let v = match v.find("/RELEASE_").or_else(|| v.find("/DEVELOPMENT_")) {
                Some(i) => v[..i
                    + 1
                    + v[i + 1..]
                        .find(char::is_whitespace)
                        .unwrap_or(v.len() - i - 1)]
                    .trim(),
                None => v,
            };
            p.kernel_version = non_empty(v);
        }
        "Kernel UUID" => p.kernel_uuid = non_empty(v),
        "Kernel slide" => p.kernel_slide = hex0x(v),
        "Kernel text base" => p.kernel_text_base = hex0x(v),
        "Paniclog version" => {
            p.paniclog_version = leading_dec(v).and_then(|x| u32::try_from(x).ok())
        }
        "System model name" if r.device.is_none() => {
            r.device = v.split_whitespace().next().map(str::to_string);
        }
        _ => {}
    }
}

/// `0xffffffeadba39378: 0 pages, 263 threads: pid 0: kernel_task`
fn panicked_task(rest: &str) -> PanickedTask {
    let mut task = PanickedTask::default();
    let (addr, tail) = rest.split_once(':').unwrap_or((rest, ""));
    task.address = hex0x(addr.trim());
    for part in tail.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_suffix(" pages") {
            task.pages = dec(n.trim());
        } else if let Some(idx) = part.find(" threads") {
            task.threads = dec(part[..idx].trim());
            if let Some(pid_part) = part[idx..].split("pid ").nth(1) {
                let (pid, name) = pid_part.split_once(':').unwrap_or((pid_part, ""));
                task.pid = dec(pid.trim()).and_then(|p| u32::try_from(p).ok());
                task.name = non_empty(name);
            }
        }
    }
    task
}

/// `name(version)[UUID]@0xstart->0xend` or `dependency: …`.
fn kext_line(t: &str) -> Option<Kext> {
    let (dependency, t) = match t.strip_prefix("dependency:") {
        Some(rest) => (true, rest.trim()),
        None => (false, t),
    };
    let open = t.find('(')?;
    let close = open + t[open..].find(')')?;
    let name = t[..open].trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let mut k = Kext {
        name: name.to_string(),
        version: non_empty(&t[open + 1..close]),
        dependency,
        ..Kext::default()
    };
    let rest = &t[close + 1..];
    if let Some(r) = rest.strip_prefix('[')
        && let Some(end) = r.find(']')
    {
        k.uuid = non_empty(&r[..end]);
    }
    if let Some(at) = rest.find('@') {
        let range = &rest[at + 1..];
        let (s, e) = range.split_once("->").unwrap_or((range, ""));
        k.start = hex0x(s.trim());
        k.end = e.split_whitespace().next().and_then(hex0x);
    }
    Some(k)
}

/// `0xframe : 0xreturn [mach_kernel : _sym + 0x12]` / `[… _sym + 0x12 (in kernel) (f.c:1)]`.
fn x86_frame(t: &str) -> Option<Frame> {
    let (fp, rest) = t.split_once(" : ")?;
    hex0x(fp.trim())?;
    let rest = rest.trim();
    let ret_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let ret = hex0x(&rest[..ret_end])?;
    let mut f = Frame {
        address: Some(ret),
        ..Frame::default()
    };
    let sym = rest[ret_end..].trim();
    if !sym.is_empty() {
        let (image, sym) = match sym.split_once(" : ") {
            Some((img, s)) => (non_empty(img), s.trim()),
            None => (None, sym),
        };
        f.image = image;
        crate::parse::text::frame_rest(sym, &mut f);
        if let Some(s) = f.symbol.take() {
            // `_sym (in kernel)` → symbol `_sym`, image `kernel`.
            match s.split_once(" (in ") {
                Some((name, img)) => {
                    f.symbol = non_empty(name);
                    if f.image.is_none() {
                        f.image = non_empty(img.trim_end_matches(')'));
                    }
                }
                None => f.symbol = Some(s),
            }
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kext_lines() {
        let k = kext_line("com.apple.driver.AppleM68Buttons(1.0d1)[6AAC7152-26B3-355D-95F0-EC89EFA4152C]@0xfffffff02e13c800->0xfffffff02e156783").unwrap();
        assert_eq!(k.name, "com.apple.driver.AppleM68Buttons");
        assert_eq!(k.version.as_deref(), Some("1.0d1"));
        assert_eq!(k.start, Some(0xfffffff02e13c800));
        assert_eq!(k.end, Some(0xfffffff02e156783));
        assert!(!k.dependency);
        let k = kext_line("dependency: com.apple.iokit.IOHIDFamily(2.0.0)[85C878D0-D1D4-3B59-BCCC-5395DD64F937]@0xfffffff02ebed2a0->0xfffffff02ec4e1ff").unwrap();
        assert!(k.dependency);
        assert!(kext_line("not a kext").is_none());
    }

    #[test]
    fn task_line() {
        let t = panicked_task("0xffffffeadba39378: 0 pages, 263 threads: pid 0: kernel_task");
        assert_eq!(t.threads, Some(263));
        assert_eq!(t.pid, Some(0));
        assert_eq!(t.name.as_deref(), Some("kernel_task"));
        assert_eq!(t.address, Some(0xffffffeadba39378));
    }

    #[test]
    fn x86_frames() {
        let f = x86_frame(
            "0xffffff80e6d1b900 : 0xffffff800a1ee6b1 mach_kernel : _panic_trap_to_debugger + 0x1a1",
        )
        .unwrap();
        assert_eq!(f.address, Some(0xffffff800a1ee6b1));
        assert_eq!(f.image.as_deref(), Some("mach_kernel"));
        assert_eq!(f.symbol.as_deref(), Some("_panic_trap_to_debugger"));
        assert_eq!(f.symbol_offset, Some(0x1a1));
        let f = x86_frame("0xffffff80e6d1b900 : 0xffffff800a1ee6b1 ").unwrap();
        assert_eq!(f.symbol, None);
    }
}

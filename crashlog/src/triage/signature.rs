//! Signatures: what names a problem, per report.
//!
//! - **panic**: `panic: <template> [kext]` — the panic message reduced to its template
//!   (see [`super::template`]) plus the first non-dependency kext in the backtrace;
//! - **crash**: `<exception class> | f1 | f2 | f3` — the top meaningful frames of the
//!   crashed thread after the skip rules (machinery such as `__pthread_kill`, `abort`,
//!   `_sigtramp`, `_dispatch_*` is skipped anywhere in the stack, so two app bugs that
//!   both end in `abort()` keep their own frames);
//! - **hang**: `hang: blocked in <wait> | f1 | f2 | f3` — the blocked thread's wait
//!   primitive plus its callers;
//! - **stack** (a paste): `stack: [blocked in <wait> |] f1 | f2 | f3`.
//!
//! Besides the text, a signature keeps the meaningful frames (up to [`MAX_FRAMES`]) for
//! the near-duplicate pass of [`super::cluster`], and the reasons for each skipped frame.

use crate::model::{Frame, Report, ReportKind, Thread};

use super::rules::Rules;
use super::template::template;

/// Frames in the signature text (ClusterFuzz's crash state uses 3).
pub const SIGNATURE_FRAMES: usize = 3;
/// Meaningful frames kept for similarity.
pub const MAX_FRAMES: usize = 16;

/// A frame left out of the signature, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Frame index in the thread (0 = innermost).
    pub index: u32,
    /// The normalised frame name.
    pub frame: String,
    /// The rule's reason.
    pub reason: String,
}

/// A report's signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    /// Report kind.
    pub kind: ReportKind,
    /// The canonical signature text (the exact-bucket key).
    pub text: String,
    /// Exception class (`EXC_BAD_ACCESS`, `EXC_CRASH (SIGABRT)`), crashes only.
    pub exception: Option<String>,
    /// Panic template, panics only.
    pub template: Option<String>,
    /// Kext or subsystem of a panic.
    pub subsystem: Option<String>,
    /// The wait primitive a hang (or pasted stack) is blocked in.
    pub blocked_in: Option<String>,
    /// Meaningful frames, innermost first (the blocking primitive first when known).
    pub frames: Vec<String>,
    /// Every frame of the signature thread, normalised (for known-issue frame matchers).
    #[serde(skip)]
    pub all_frames: Vec<String>,
    /// Frames skipped and why.
    pub skipped: Vec<Skipped>,
    /// Notes (fallbacks taken).
    pub notes: Vec<String>,
}

/// Normalise a symbol: trims offsets (`+ 144`), `(in Image)`, `.cold.N`, the `.N` of
/// `_block_invoke.N`, and argument lists of demangled C++/Swift names are kept.
pub fn normalize_symbol(sym: &str) -> String {
    let mut s = sym.trim();
    if let Some(p) = s.find(" + ") {
        s = s[..p].trim_end();
    }
    if let Some(p) = s.find("  (in ") {
        s = s[..p].trim_end();
    }
    let mut s = s.to_string();
    if let Some(p) = s.find(".cold.")
        && s[p + 6..].bytes().all(|c| c.is_ascii_digit())
    {
        s.truncate(p);
    }
    if let Some(p) = s.rfind("_block_invoke") {
        let tail = &s[p + "_block_invoke".len()..];
        let tail_ok = tail.is_empty()
            || tail
                .trim_start_matches(['.', '_'])
                .bytes()
                .all(|c| c.is_ascii_digit());
        if tail_ok {
            s.truncate(p + "_block_invoke".len());
        }
    }
    s
}

/// A frame's name for signatures: the normalised symbol, else `image+0xoffset`, else
/// `image`, else `???`.
pub fn frame_name(f: &Frame) -> String {
    if let Some(sym) = f
        .symbol
        .as_deref()
        .filter(|s| !s.trim().is_empty() && *s != "???")
    {
        return normalize_symbol(sym);
    }
    match (f.image.as_deref().filter(|i| *i != "???"), f.image_offset) {
        (Some(img), Some(off)) => format!("{img}+0x{off:x}"),
        (Some(img), None) => img.to_string(),
        _ => "???".into(),
    }
}

/// The exception class: the Mach exception type plus its signal, one spelling for
/// every format (`.ips` keeps them apart, `.crash` writes `EXC_BAD_ACCESS (SIGSEGV)`).
pub fn exception_class(r: &Report) -> Option<String> {
    let e = r.exception.as_ref()?;
    let kind = e.kind.as_deref().map(str::trim).unwrap_or("");
    let (base, paren) = match kind.split_once(" (") {
        Some((b, rest)) => (b.trim(), Some(rest.trim_end_matches(')').trim())),
        None => (kind, None),
    };
    let signal = e
        .signal
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or(paren.filter(|p| p.starts_with("SIG")));
    match (base.is_empty(), signal) {
        (false, Some(sig)) => Some(format!("{base} ({sig})")),
        (false, None) => Some(base.to_string()),
        (true, Some(sig)) => Some(sig.to_string()),
        (true, None) => None,
    }
}

/// The thread a signature is taken from: crashed / triggered / blocked, else the first
/// thread with frames (pasted stacks).
pub fn signature_thread(r: &Report) -> Option<&Thread> {
    r.crashed_thread()
        .filter(|t| !t.frames.is_empty())
        .or_else(|| r.threads.iter().find(|t| !t.frames.is_empty()))
}

/// Compute a report's signature.
pub fn signature(r: &Report, rules: &Rules) -> Signature {
    let mut sig = Signature {
        kind: r.kind,
        text: String::new(),
        exception: None,
        template: None,
        subsystem: None,
        blocked_in: None,
        frames: Vec::new(),
        all_frames: Vec::new(),
        skipped: Vec::new(),
        notes: Vec::new(),
    };
    if let Some(t) = signature_thread(r) {
        walk_frames(t, rules, &mut sig);
    }
    match r.kind {
        ReportKind::Panic => panic_signature(r, &mut sig),
        ReportKind::Crash => {
            sig.exception = exception_class(r);
            let head = sig.exception.clone().unwrap_or_else(|| {
                sig.notes
                    .push("no exception type: signed by frames only".into());
                "crash".into()
            });
            sig.text = join_frames(&head, &sig);
        }
        ReportKind::Hang => sig.text = join_frames("hang", &sig),
        ReportKind::Stack => sig.text = join_frames("stack", &sig),
        ReportKind::Log => sig.text = "log".into(),
    }
    sig
}

fn panic_signature(r: &Report, sig: &mut Signature) {
    let msg = r
        .panic
        .as_ref()
        .and_then(|p| p.message.as_deref())
        .unwrap_or("");
    let tpl = template(msg);
    let kext = r.panic.as_ref().and_then(|p| {
        p.kexts
            .iter()
            .find(|k| !k.dependency)
            .map(|k| k.name.clone())
    });
    // The subsystem: the kext, else the function that panicked (`skmem_slab_free_locked:`).
    let subsystem = kext.or_else(|| {
        let head = tpl.split(':').next().unwrap_or("");
        (!head.is_empty() && head.len() < tpl.len())
            .then(|| head.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
            .filter(|ok| *ok)
            .map(|_| head.to_string())
    });
    sig.text = if tpl.is_empty() {
        sig.notes
            .push("panic without a message: signed by frames".into());
        join_frames("panic", sig)
    } else {
        match &subsystem {
            Some(s) if !tpl.starts_with(s.as_str()) => format!("panic: {tpl} [{s}]"),
            _ => format!("panic: {tpl}"),
        }
    };
    sig.template = Some(tpl).filter(|t| !t.is_empty());
    sig.subsystem = subsystem;
}

fn join_frames(head: &str, sig: &Signature) -> String {
    let mut s = String::from(head);
    let mut sep = if head.ends_with(':') { " " } else { ": " };
    if head != "hang" && head != "stack" && head != "panic" {
        sep = " | ";
    }
    let mut n = 0;
    if let Some(w) = &sig.blocked_in {
        s.push_str(sep);
        s.push_str("blocked in ");
        s.push_str(w);
        sep = " | ";
    }
    for f in sig
        .frames
        .iter()
        .skip(usize::from(sig.blocked_in.is_some()))
    {
        if n == SIGNATURE_FRAMES {
            break;
        }
        s.push_str(sep);
        s.push_str(f);
        sep = " | ";
        n += 1;
    }
    if n == 0 && sig.blocked_in.is_none() {
        s.push_str(sep);
        s.push_str("<no meaningful frames>");
    }
    s
}

/// Fill `frames`, `all_frames`, `skipped` and `blocked_in` from a thread.
fn walk_frames(t: &Thread, rules: &Rules, sig: &mut Signature) {
    let mut leading = true;
    let mut wait: Option<String> = None;
    for f in t.frames.iter().take(4096) {
        let name = frame_name(f);
        sig.all_frames.push(name.clone());
        match rules.skip_rule(&name) {
            Some(rule) => {
                if leading && rule.wait {
                    wait = Some(name.clone());
                }
                sig.skipped.push(Skipped {
                    index: f.index,
                    frame: name,
                    reason: rule.reason.clone(),
                });
            }
            None => {
                leading = false;
                if sig.frames.len() < MAX_FRAMES {
                    sig.frames.push(name);
                }
            }
        }
    }
    if let Some(w) = wait {
        sig.frames.insert(0, w.clone());
        sig.frames.truncate(MAX_FRAMES);
        sig.blocked_in = Some(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_auto;

    fn sig_of(text: &str) -> Signature {
        let r = parse_auto(text.as_bytes()).unwrap();
        signature(&r[0], &Rules::builtin())
    }

    #[test]
    fn symbols_normalise() {
        assert_eq!(normalize_symbol("foo + 144"), "foo");
        assert_eq!(normalize_symbol("foo.cold.1"), "foo");
        assert_eq!(
            normalize_symbol("__quic_migration_path_event_block_invoke.21"),
            "__quic_migration_path_event_block_invoke"
        );
        assert_eq!(
            normalize_symbol("__foo_block_invoke_2"),
            "__foo_block_invoke"
        );
    }

    #[test]
    fn abort_machinery_is_skipped_with_reasons() {
        let s = sig_of(
            "0 libsystem_kernel.dylib __pthread_kill + 8\n1 libsystem_pthread.dylib pthread_kill + 288\n2 libsystem_c.dylib abort + 128\n3 MyApp -[Store save:] + 40\n4 MyApp -[Controller tap:] + 12\n5 UIKitCore -[UIApplication sendAction:to:from:forEvent:] + 96\n",
        );
        assert_eq!(
            s.text,
            "stack: -[Store save:] | -[Controller tap:] | -[UIApplication sendAction:to:from:forEvent:]"
        );
        let reasons: Vec<_> = s
            .skipped
            .iter()
            .map(|k| (k.index, k.frame.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [(0, "__pthread_kill"), (1, "pthread_kill"), (2, "abort")]
        );
        assert!(s.skipped[2].reason.contains("abort"));
    }

    #[test]
    fn hang_is_blocked_in_its_wait() {
        let s = sig_of(
            "libSystem_atfork_prepare -> nw_path_prepare_fork -> _os_unfair_lock_lock_slow\n",
        );
        assert_eq!(
            s.text,
            "stack: blocked in _os_unfair_lock_lock_slow | nw_path_prepare_fork | libSystem_atfork_prepare"
        );
        assert_eq!(s.blocked_in.as_deref(), Some("_os_unfair_lock_lock_slow"));
    }

    #[test]
    fn panic_template_and_subsystem() {
        let s = sig_of(
            "panic(cpu 0 caller 0xfffffe003bb68224): skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646\nDebugger message: panic\n",
        );
        assert_eq!(
            s.text,
            "panic: skmem_slab_free_locked: attempt to free invalid or already-freed obj ADDR on skm ADDR @skmem_slab.c:LINE"
        );
        assert_eq!(s.subsystem.as_deref(), Some("skmem_slab_free_locked"));
    }
}

//! One test group per format, on the samples in `tests/data/` (written for this project
//! from the field reports in `../shared/seeds/` and `../shared/reference/field-failures.md`).

use crashlog::parse::{self, Format, LogReader};
use crashlog::{LogStyle, LogType, Report, ReportKind, SourceFormat};

fn data(name: &str) -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/").to_string() + name;
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn auto(name: &str) -> Vec<Report> {
    parse::parse_auto(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(name: &str) -> Report {
    let mut v = auto(name);
    assert_eq!(v.len(), 1, "{name}");
    v.remove(0)
}

fn symbols(r: &Report) -> Vec<String> {
    r.crashed_thread()
        .unwrap()
        .frames
        .iter()
        .map(|f| f.symbol.clone().unwrap_or_default())
        .collect()
}

// ---- panics -------------------------------------------------------------------------

#[test]
fn panic_text_arm64() {
    let r = one("panic-skmem-arm64.txt");
    assert_eq!(
        (r.kind, r.format),
        (ReportKind::Panic, SourceFormat::PanicText)
    );
    let p = r.panic.as_ref().unwrap();
    assert_eq!(
        p.message.as_deref(),
        Some(
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646"
        )
    );
    assert_eq!((p.cpu, p.caller), (Some(0), Some(0xfffffe003bb68224)));
    assert_eq!(p.debugger_message.as_deref(), Some("panic"));
    assert_eq!(r.os.build.as_deref(), Some("25D2128"));
    assert_eq!(r.os.version.as_deref(), Some("26.3"));
    assert_eq!(r.os.release_type.as_deref(), Some("User"));
    assert!(
        p.kernel_version
            .as_deref()
            .unwrap()
            .contains("xnu-12377.91.3~2/RELEASE_ARM64_T6050")
    );
    assert_eq!(p.kernel_slide, Some(0x34a68000));
    assert_eq!(p.paniclog_version, Some(14));
    let task = p.panicked_task.as_ref().unwrap();
    assert_eq!(
        (task.pid, task.threads, task.name.as_deref()),
        (Some(0), Some(612), Some("kernel_task"))
    );
    assert_eq!(p.panicked_thread.as_ref().unwrap().tid, Some(1894));
    // Kext list, with dependencies flagged, and the loaded kexts.
    assert_eq!(p.kexts.len(), 3);
    assert_eq!(p.kexts[0].name, "com.apple.iokit.IOSkywalkFamily");
    assert!(!p.kexts[0].dependency && p.kexts[1].dependency);
    assert_eq!(
        p.last_started_kext.as_deref(),
        Some("com.apple.filesystems.smbfs")
    );
    assert_eq!(p.loaded_kexts.len(), 6);
    assert_eq!(p.loaded_kexts[0].version.as_deref(), Some("2.4.1"));
    // lr frames, the two inside IOSkywalkFamily attributed to it with their offsets.
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.frames.len(), 11);
    assert_eq!(t.frames[0].address, Some(0xfffffe003bbd2f4c));
    let sk: Vec<_> = t
        .frames
        .iter()
        .filter(|f| f.image.as_deref() == Some("com.apple.iokit.IOSkywalkFamily"))
        .collect();
    assert_eq!(sk.len(), 2);
    assert_eq!(
        sk[0].image_offset,
        Some(0xfffffe003f0c2b84 - 0xfffffe003f0b8000)
    );
    assert_eq!(
        sk[0].image_uuid.as_deref(),
        Some("6e1f1a2b-3c4d-3e5f-8a9b-0c1d2e3f4a5b")
    );
    // The architecture comes from the kernel build (RELEASE_ARM64_T6050).
    assert_eq!(t.frames[0].arch.as_deref(), Some("arm64"));
}

#[test]
fn panic_text_x86_inside_panic_report() {
    let r = one("panic-classq-x86.panic");
    let p = r.panic.as_ref().unwrap();
    assert!(
        p.message
            .as_deref()
            .unwrap()
            .starts_with("\"fq_if_dequeue_classq_multi: assertion failed")
    );
    assert_eq!(p.cpu, Some(2));
    // `Mac OS version:` and `Kernel version:` carry their values on the next line.
    assert_eq!(r.os.build.as_deref(), Some("19H2"));
    assert!(
        p.kernel_version
            .as_deref()
            .unwrap()
            .starts_with("Darwin Kernel Version 19.6.0")
    );
    assert_eq!(p.process_name.as_deref(), Some("kernel_task"));
    assert_eq!(r.device.as_deref(), Some("Macmini8,1"));
    assert_eq!(
        p.panicked_thread.as_ref().unwrap().address,
        Some(0xffffff9a5c6e8540)
    );
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.frames.len(), 11);
    assert_eq!(t.frames[6].symbol.as_deref(), Some("_panic"));
    assert_eq!(t.frames[6].symbol_offset, Some(0x84));
    assert_eq!(t.frames[6].image.as_deref(), Some("mach_kernel"));
    // The frame inside the kext range is attributed to it.
    assert_eq!(
        t.frames[8].image.as_deref(),
        Some("com.realtek.driver.RTL8111")
    );
    assert_eq!(t.frames[8].image_offset, Some(0x7c3d));
}

#[test]
fn panic_ips_210_panic_string_and_stackshot() {
    let r = one("panic-skmem-210.ips");
    assert_eq!(
        (r.kind, r.format, r.bug_type.as_deref()),
        (ReportKind::Panic, SourceFormat::IpsPanic, Some("210"))
    );
    assert_eq!(
        r.incident_id.as_deref(),
        Some("E3A1C7B2-5D4F-4E6A-9B8C-7D6E5F4A3B2C")
    );
    assert_eq!(r.device.as_deref(), Some("Mac17,2"));
    assert_eq!(
        (
            r.os.name.as_deref(),
            r.os.version.as_deref(),
            r.os.build.as_deref()
        ),
        (Some("macOS"), Some("26.3"), Some("25D2128"))
    );
    assert!(
        r.panic
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .starts_with("skmem_slab_free_locked")
    );
    // Stackshot: the panicked thread's kernel frames as [imageIndex, offset] pairs.
    assert_eq!(r.binary_images.len(), 3);
    let ss = r
        .threads
        .iter()
        .find(|t| t.name.as_deref() == Some("skywalk_flowswitch (stackshot)"))
        .unwrap();
    assert_eq!(ss.frames.len(), 5);
    assert_eq!(
        ss.frames[3].image_uuid.as_deref(),
        Some("6e1f1a2b-3c4d-3e5f-8a9b-0c1d2e3f4a5b")
    );
    assert_eq!(ss.frames[3].address, Some(18446741876867006464 + 30368));
}

#[test]
fn panic_ips_110_macos_panic_string() {
    // `panicString` says "not yet set"; the text is under `macOSPanicString` (Intel).
    let r = one("panic-classq-110.ips");
    assert_eq!(
        (r.kind, r.bug_type.as_deref()),
        (ReportKind::Panic, Some("110"))
    );
    assert_eq!(r.crashed_thread().unwrap().frames.len(), 11);
    assert_eq!(r.os.build.as_deref(), Some("19H2"));
}

#[test]
fn panic_ips_409_watchdog() {
    let r = one("watchdog-409.ips");
    assert_eq!(
        (r.kind, r.bug_type.as_deref()),
        (ReportKind::Panic, Some("409"))
    );
    assert_eq!(r.process.name.as_deref(), Some("watchdogd"));
    assert!(
        r.panic
            .unwrap()
            .message
            .unwrap()
            .contains("no successful checkins from com.apple.nesessionmanager")
    );
}

#[test]
fn forced_panic_format_rejects_a_crash_ips() {
    let e = parse::parse_panic(&data("crash-quic-309.ips")).unwrap_err();
    assert_eq!(e.name(), "wrong_format");
}

// ---- .ips app crashes ---------------------------------------------------------------

#[test]
fn ips_309_frames_through_used_images_and_drift() {
    let r = one("crash-quic-309.ips");
    assert_eq!(
        (r.kind, r.format, r.bug_type.as_deref()),
        (ReportKind::Crash, SourceFormat::IpsCrash, Some("309"))
    );
    assert_eq!(r.crashed_thread, Some(7));
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.queue.as_deref(), Some("com.apple.network.connections"));
    assert_eq!(t.frames.len(), 21);
    let f3 = &t.frames[3];
    assert_eq!(
        (f3.image.as_deref(), f3.symbol.as_deref(), f3.symbol_offset),
        (
            Some("Network"),
            Some("nw_protocol_data_access_buffer"),
            Some(180)
        )
    );
    assert_eq!(f3.image_offset, Some(0x2d1f34));
    assert_eq!(f3.address, Some(0x18f3a0000 + 0x2d1f34));
    assert_eq!(
        f3.image_uuid.as_deref(),
        Some("1b2c3d4e-5f6a-3b7c-8d9e-0f1a2b3c4d5e")
    );
    assert_eq!(f3.image_index, Some(2));
    assert_eq!(f3.arch.as_deref(), Some("arm64e"));
    assert_eq!(r.binary_images[1].arch.as_deref(), Some("arm64e"));
    // Registers from threadState, the `x` array included.
    assert_eq!(t.registers.get("x1"), Some(&16));
    assert_eq!(t.registers.get("far"), Some(&16));
    assert_eq!(r.process.bundle_id.as_deref(), Some("com.example.courier"));
    assert_eq!(r.process.version.as_deref(), Some("4.2 (4217)"));
    assert_eq!(r.device.as_deref(), Some("iPhone17,1"));
    assert_eq!(r.os.raw.as_deref(), Some("iPhone OS 26.2 (23C55)"));
    let e = r.exception.as_ref().unwrap();
    assert_eq!(
        (e.kind.as_deref(), e.signal.as_deref()),
        (Some("EXC_BAD_ACCESS"), Some("SIGSEGV"))
    );
    assert_eq!(
        r.termination.as_ref().unwrap().by_process.as_deref(),
        Some("exc handler")
    );
}

#[test]
fn ips_308_385_327() {
    let r = one("osfault-308.ips");
    assert_eq!(
        (r.kind, r.bug_type.as_deref()),
        (ReportKind::Crash, Some("308"))
    );
    // Images without a name: named from the path when there is one.
    assert_eq!(r.binary_images[0].name, None);
    assert_eq!(r.binary_images[1].name.as_deref(), Some("Network"));
    let f = &r.crashed_thread().unwrap().frames[0];
    assert_eq!(
        f.image_uuid.as_deref(),
        Some("aa11bb22-cc33-3d44-8e55-ff6677889900")
    );
    assert_eq!(f.address, Some(6996934656 + 31044));
    assert_eq!(
        r.exception.unwrap().message.as_deref(),
        Some("CLOSE on file descriptor 24 (guarded with 0xfdc1a5b3)")
    );

    let r = one("excresource-385.ips");
    assert_eq!(
        (
            r.bug_type.as_deref(),
            r.exception.unwrap().subtype.as_deref()
        ),
        (Some("385"), Some("WAKEUPS"))
    );
    let r = one("excresource-threads-327.ips");
    assert_eq!(
        (
            r.bug_type.as_deref(),
            r.exception.unwrap().subtype.as_deref()
        ),
        (Some("327"), Some("THREADS"))
    );
}

#[test]
fn translated_report_reads_the_full_report() {
    let r = one("crash-getaddrinfo-translated.ips");
    assert_eq!(
        (r.format, r.bug_type.as_deref()),
        (SourceFormat::TranslatedReport, Some("309"))
    );
    assert_eq!(
        r.incident_id.as_deref(),
        Some("6C5D4E3F-2A1B-4C0D-9E8F-7A6B5C4D3E2F")
    );
    assert_eq!(
        symbols(&r)[..3],
        [
            "_os_log_preferences_refresh",
            "os_log_type_enabled",
            "nw_path_access_agent_cache"
        ]
    );
    assert_eq!(
        r.application_specific.as_deref(),
        Some("libsystem_trace.dylib: os_log preferences: refresh after fork")
    );
    assert_eq!(r.process.responsible.as_deref(), Some("Terminal"));
}

#[test]
fn ips_body_pasted_without_its_header() {
    let full = String::from_utf8(data("crash-quic-309.ips")).unwrap();
    let body = full.split_once('\n').unwrap().1;
    let with_header = one("crash-quic-309.ips");
    let mut v = parse::parse_auto(body.as_bytes()).unwrap();
    let r = v.remove(0);
    assert_eq!(
        (r.kind, r.format, r.bug_type.as_deref()),
        (ReportKind::Crash, SourceFormat::IpsCrash, Some("309"))
    );
    assert_eq!(r.threads, with_header.threads);
    assert_eq!(r.incident_id, with_header.incident_id);
    let r = parse::parse_ips(body.as_bytes()).unwrap();
    assert_eq!(r.crashed_thread, Some(7));
    // A panic body alone, too.
    let full = String::from_utf8(data("panic-skmem-210.ips")).unwrap();
    let r = parse::parse_panic(full.split_once('\n').unwrap().1.as_bytes()).unwrap();
    assert_eq!(r.panic.unwrap().panicked_thread.unwrap().tid, Some(1894));
}

#[test]
fn truncated_ips_names_the_line() {
    let e = parse::parse_auto(&data("malformed-truncated.ips")).unwrap_err();
    assert_eq!(e.name(), "invalid_json");
    assert_eq!(e.line(), Some(21));
    assert!(e.to_string().contains("EOF"), "{e}");
}

// ---- legacy .crash ------------------------------------------------------------------

#[test]
fn crash_text_macos_layout() {
    let r = one("crash-getaddrinfo-macos.crash");
    assert_eq!(
        (r.kind, r.format),
        (ReportKind::Crash, SourceFormat::CrashText)
    );
    assert_eq!(r.crashed_thread, Some(0));
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.queue.as_deref(), Some("com.apple.main-thread"));
    assert_eq!(t.frames.len(), 12);
    assert_eq!(symbols(&r)[7], "_gai_nat64_second_pass");
    // `ruby  0x1009e2d84 0x1009e0000 + 11652`: unsymbolicated, offset kept.
    assert_eq!(
        (t.frames[10].image_base, t.frames[10].image_offset),
        (Some(0x1009e0000), Some(11652))
    );
    assert_eq!(t.frames[11].image, None);
    // `Thread 2:: com.apple.NSEventThread`: name after the double colon.
    assert_eq!(
        r.threads[2].name.as_deref(),
        Some("com.apple.NSEventThread")
    );
    let e = r.exception.as_ref().unwrap();
    assert_eq!(
        e.subtype.as_deref(),
        Some("KERN_INVALID_ADDRESS at 0x0000000000000018")
    );
    assert_eq!(
        e.codes.as_deref(),
        Some("0x0000000000000001, 0x0000000000000018")
    );
    assert_eq!(e.signal.as_deref(), Some("SIGSEGV"));
    let term = r.termination.as_ref().unwrap();
    assert_eq!(
        (
            term.namespace.as_deref(),
            term.code.as_deref(),
            term.indicator.as_deref()
        ),
        (Some("SIGNAL"), Some("11"), Some("Segmentation fault: 11"))
    );
    // Dashed UUIDs, `(*)` versions, and the all-zero sentinel image.
    let net = r
        .binary_images
        .iter()
        .find(|i| i.name.as_deref() == Some("com.apple.Network"))
        .unwrap();
    assert_eq!(net.version.as_deref(), Some("1.0"));
    assert_eq!(
        net.uuid.as_deref(),
        Some("1b2c3d4e-5f6a-3b7c-8d9e-0f1a2b3c4d5e")
    );
    // Frames named `Network` resolve to `com.apple.Network` by address.
    assert_eq!(
        t.frames[2].image_uuid.as_deref(),
        Some("1b2c3d4e-5f6a-3b7c-8d9e-0f1a2b3c4d5e")
    );
    assert_eq!(t.registers.get("pc"), Some(&0x18c1a2f44));
    assert_eq!(r.process.responsible.as_deref(), Some("Terminal"));
}

#[test]
fn crash_text_ios_layout() {
    let r = one("crash-quic-ios.crash");
    assert_eq!(r.crashed_thread, Some(7));
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.queue.as_deref(), Some("com.apple.network.connections"));
    assert_eq!(t.frames.len(), 12);
    // Tabs between image and address; undashed UUIDs; offsets → image uuid for symbolication.
    let f = &t.frames[3];
    assert_eq!(
        (f.image.as_deref(), f.address, f.image_offset),
        (Some("Network"), Some(0x18f671f34), Some(2957108))
    );
    assert_eq!(
        f.image_uuid.as_deref(),
        Some("1b2c3d4e-5f6a-3b7c-8d9e-0f1a2b3c4d5e")
    );
    assert_eq!(r.binary_images[1].arch.as_deref(), Some("arm64e"));
    assert_eq!(r.process.coalition.as_deref(), Some("com.example.courier"));
    let term = r.termination.as_ref().unwrap();
    assert_eq!(
        (term.namespace.as_deref(), term.code.as_deref()),
        (Some("SIGNAL"), Some("11"))
    );
    assert_eq!(t.registers.get("esr"), Some(&0x92000006));
}

// ---- pasted stacks ------------------------------------------------------------------

#[test]
fn stack_one_frame_per_line_and_all_on_one_line_agree() {
    let lines = one("stack-quic-lines.txt");
    let oneline = one("stack-quic-oneline.txt");
    assert_eq!(lines.kind, ReportKind::Stack);
    assert_eq!(oneline.kind, ReportKind::Stack);
    let a = &lines.crashed_thread().unwrap().frames;
    let b = &oneline.crashed_thread().unwrap().frames;
    assert_eq!(a.len(), 13);
    assert_eq!(a, b);
    assert_eq!(
        a[3].symbol.as_deref(),
        Some("nw_protocol_data_access_buffer")
    );
    assert_eq!(a[3].symbol_offset, Some(180));
    assert_eq!(
        a[10].symbol.as_deref(),
        Some("__quic_migration_path_event_block_invoke.21")
    );
    assert_eq!(a[12].image.as_deref(), Some("Network"));
}

#[test]
fn stack_with_addresses_and_thread_header() {
    let r = one("stack-addresses.txt");
    assert_eq!(r.kind, ReportKind::Stack);
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.index, 7);
    assert_eq!(t.frames[0].image_offset, Some(238320));
    assert_eq!(
        t.frames[2].symbol.as_deref(),
        Some("nw_protocol_data_access_buffer")
    );
    assert_eq!(t.frames[3].image, None);
}

#[test]
fn stack_arrow_chains() {
    let r = one("stack-atfork-arrows.txt");
    assert_eq!(
        symbols(&r),
        [
            "_os_unfair_lock_lock_slow",
            "nw_path_prepare_fork",
            "libSystem_atfork_prepare"
        ]
    );
    let r = one("stack-getaddrinfo-arrows.txt");
    let s = symbols(&r);
    assert_eq!(
        s.first().map(String::as_str),
        Some("_os_log_preferences_refresh")
    );
    assert_eq!(s.last().map(String::as_str), Some("getaddrinfo"));
    assert_eq!(
        r.crashed_thread().unwrap().frames[5].image.as_deref(),
        Some("libsystem_info.dylib")
    );
}

#[test]
fn stack_lldb_bt() {
    let r = one("stack-lldb.txt");
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.frames.len(), 5);
    assert_eq!(t.frames[4].symbol.as_deref(), Some("main"));
    assert_eq!(
        (t.frames[4].file.as_deref(), t.frames[4].line),
        (Some("repro.c"), Some(21))
    );
    assert_eq!(t.frames[1].address, Some(0x18c1a2b10));
}

// ---- hangs --------------------------------------------------------------------------

#[test]
fn spindump_heaviest_stack_of_blocked_thread() {
    let r = one("hang-atfork.spindump.txt");
    assert_eq!(
        (r.kind, r.format),
        (ReportKind::Hang, SourceFormat::Spindump)
    );
    let h = r.hang.as_ref().unwrap();
    assert_eq!(
        (h.event.as_deref(), h.duration.as_deref(), h.samples),
        (Some("hang"), Some("4.12s"), Some(41))
    );
    assert_eq!(r.process.name.as_deref(), Some("unicorn"));
    assert_eq!(r.process.pid, Some(48190));
    assert_eq!(r.os.build.as_deref(), Some("25B78"));
    // Only the target process' threads (launchd's section is ignored).
    assert_eq!(r.threads.len(), 2);
    let t = r.crashed_thread().unwrap();
    assert_eq!(t.queue.as_deref(), Some("com.apple.main-thread"));
    let s = symbols(&r);
    assert_eq!(
        s[1..4],
        [
            "__ulock_wait",
            "_os_unfair_lock_lock_slow",
            "nw_path_prepare_fork"
        ]
    );
    assert_eq!(
        t.frames[2].image.as_deref(),
        Some("libsystem_platform.dylib")
    );
    assert_eq!(t.frames[2].image_offset, Some(9988));
    assert_eq!(t.frames[2].samples, Some(41));
    // The worker thread's heavier branch (40 vs 1 samples) is the one kept.
    assert_eq!(
        r.threads[1].frames[0].symbol.as_deref(),
        Some("__workq_kernreturn")
    );
}

#[test]
fn sample_call_graph() {
    let r = one("hang-atfork.sample.txt");
    assert_eq!(r.kind, ReportKind::Hang);
    assert_eq!(r.process.name.as_deref(), Some("unicorn"));
    let s = symbols(&r);
    assert_eq!(
        s[..3],
        [
            "__ulock_wait",
            "_os_unfair_lock_lock_slow",
            "nw_path_prepare_fork"
        ]
    );
    assert_eq!(r.crashed_thread().unwrap().frames[0].samples, Some(2511));
    assert_eq!(r.binary_images.len(), 2);
    assert!(r.binary_images[0].app);
}

// ---- logs ---------------------------------------------------------------------------

fn log(name: &str) -> Report {
    let r = one(name);
    assert_eq!(
        (r.kind, r.format),
        (ReportKind::Log, SourceFormat::LogText),
        "{name}"
    );
    r
}

#[test]
fn log_default_style_headers_footer_multiline() {
    let r = log("log-default-skmem.log");
    assert_eq!(r.log.len(), 11);
    assert!(r.log.iter().all(|e| e.style == LogStyle::Default));
    let e = &r.log[1];
    assert_eq!(
        e.message,
        "(402262746): No more valid control units, disabling flow divert"
    );
    assert_eq!(
        (e.process.as_deref(), e.pid, e.thread),
        (Some("kernel"), Some(0), Some(0x1894))
    );
    assert_eq!(e.timestamp.unwrap().offset_minutes, Some(180));
    // Multi-line message joined, line numbers kept.
    let ml = &r.log[6];
    assert_eq!(ml.lines, 2);
    assert!(ml.message.ends_with(":\nt8110dart <ptr> (dart-apcie0): invalid SID 2 TTBR access: level 1 table_index 0 page_offset 0x2"));
    assert_eq!(ml.line, 10);
    assert_eq!(r.log[7].line, 12);
    // Sender + subsystem/category; the footer and the dashes are not part of any message.
    assert_eq!(r.log[0].sender.as_deref(), Some("Network"));
    assert_eq!(
        (r.log[0].subsystem.as_deref(), r.log[0].category.as_deref()),
        (Some("com.apple.network"), Some("connection"))
    );
    assert_eq!(r.log[10].log_type, Some(LogType::Fault));
    assert!(!r.log[10].message.contains("--"));
}

#[test]
fn log_compact_style() {
    let r = log("log-compact-wifip2pd.log");
    assert_eq!(r.log.len(), 7);
    let e = &r.log[1];
    assert_eq!(
        (e.style, e.log_type.clone(), e.pid, e.thread),
        (
            LogStyle::Compact,
            Some(LogType::Error),
            Some(213),
            Some(0x1a2f3)
        )
    );
    assert_eq!(e.message, "Failed to create socket: Too many open files");
    assert_eq!(r.log[3].sender.as_deref(), Some("Network"));
    assert_eq!(r.log[6].log_type, Some(LogType::Info));
}

#[test]
fn log_syslog_style() {
    let r = log("log-syslog-nesm.log");
    assert_eq!(r.log.len(), 5);
    assert!(
        r.log
            .iter()
            .all(|e| e.style == LogStyle::Syslog && e.host.as_deref() == Some("localhost"))
    );
    assert_eq!(r.log[3].sender.as_deref(), Some("NetworkExtension"));
    assert_eq!(r.log[3].category.as_deref(), Some("session"));
    assert!(
        r.log[1]
            .message
            .starts_with("NESMVPNSession[Primary Tunnel:Secure DNS: Received a start command")
    );
}

#[test]
fn log_json_array_and_ndjson_agree() {
    let json = log("log-json-wifip2pd.json");
    let nd = log("log-ndjson-wifip2pd.ndjson");
    assert_eq!(json.log.len(), 4);
    assert_eq!(nd.log.len(), 3); // the `{"count":…,"finished":1}` footer is skipped
    assert!(json.log.iter().all(|e| e.style == LogStyle::Json));
    assert!(nd.log.iter().all(|e| e.style == LogStyle::Ndjson));
    for (a, b) in json.log.iter().zip(&nd.log) {
        assert_eq!(
            (
                &a.message,
                &a.process,
                &a.sender,
                &a.subsystem,
                a.pid,
                a.timestamp
            ),
            (
                &b.message,
                &b.process,
                &b.sender,
                &b.subsystem,
                b.pid,
                b.timestamp
            )
        );
    }
    let e = &json.log[1];
    assert_eq!(e.process.as_deref(), Some("wifip2pd"));
    assert_eq!(e.sender.as_deref(), Some("Network"));
    assert_eq!(
        e.timestamp.unwrap().to_string(),
        "2026-05-14T09:19:44.917002+02:00"
    );
    assert_eq!(json.log[2].lines, 2);
    assert_eq!(json.log[3].log_type, Some(LogType::Activity));
    assert_eq!(json.log[3].activity, Some(99123));
}

#[test]
fn log_xcode_idevicesyslog_asl_console() {
    let r = log("log-xcode-console.txt");
    assert!(
        r.log
            .iter()
            .all(|e| e.style == LogStyle::Xcode && e.pid == Some(2146))
    );
    assert!(
        r.log[1]
            .message
            .contains("Code=28 \"No space left on device\"")
    );
    let r = log("log-idevicesyslog.txt");
    assert_eq!(r.log[0].sender.as_deref(), Some("libquic.dylib"));
    assert_eq!(r.log[1].log_type, Some(LogType::Error));
    let r = log("log-asl-nesm.txt");
    assert_eq!(r.log.len(), 4);
    assert_eq!(
        (r.log[0].host.as_deref(), r.log[0].process.as_deref()),
        (Some("iPhone-4"), Some("nesessionmanager"))
    );
    let t = r.log[0].timestamp.unwrap();
    assert_eq!((t.year, t.month, t.day, t.hour), (0, 7, 11, 17));
    let r = log("log-console-copy.txt");
    assert_eq!(r.log.len(), 3);
    assert_eq!(r.log[2].log_type, Some(LogType::Error));
    assert_eq!(
        r.log[0].subsystem.as_deref(),
        Some("com.apple.networkextension")
    );
    assert_eq!(r.log[0].process.as_deref(), Some("nesessionmanager"));
}

#[test]
fn log_reader_streams_in_bounded_memory() {
    // A "log" that is one 10 MB line with no newline: the line is capped, nothing else.
    let mut big = b"2023-07-19 08:22:51.916784+0300 0x1 Default 0x0 1 0 a: ".to_vec();
    big.resize(10 * 1024 * 1024, b'x');
    let limits = parse::LogLimits {
        max_line: 4096,
        ..parse::LogLimits::default()
    };
    let mut reader = LogReader::with_limits(&big[..], limits);
    let e = reader.next().unwrap().unwrap();
    assert!(e.message.len() < 4096);
    assert!(reader.next().is_none());
    assert_eq!(reader.stats().truncated_lines, 1);
    // Continuations stop growing a message at max_message.
    let mut text = String::from("2023-07-19 08:22:51.916784+0300 0x1 Default 0x0 1 0 a: start\n");
    for _ in 0..10_000 {
        text.push_str("continuation continuation continuation\n");
    }
    let limits = parse::LogLimits {
        max_message: 10_000,
        ..parse::LogLimits::default()
    };
    let e = LogReader::with_limits(text.as_bytes(), limits)
        .next()
        .unwrap()
        .unwrap();
    assert!(e.message.len() <= 10_000);
    assert_eq!(e.lines, 10_001);
}

// ---- mixed and forced formats -------------------------------------------------------

#[test]
fn forum_post_mixing_panic_and_log_yields_both() {
    let v = auto("forum-skmem-mixed.txt");
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].kind, ReportKind::Panic);
    assert!(
        v[0].panic
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .starts_with("skmem_slab_free_locked")
    );
    assert_eq!(v[0].os.build.as_deref(), Some("25D2128"));
    assert_eq!(v[1].kind, ReportKind::Log);
    assert_eq!(v[1].log.len(), 4);
    assert_eq!(
        v[1].log[1].message,
        "(402262746): No more valid control units, disabling flow divert"
    );
    // The prose after the excerpt is not glued to the last entry.
    assert!(!v[1].log[3].message.contains("correlation"));
    assert_eq!(v[1].log[0].line, 14);
}

#[test]
fn flattened_forum_posts_are_split_back_into_lines() {
    // The seed posts as scraped: panic header and log excerpt run together on one line.
    let v = auto("forum-flattened-skmem.txt");
    assert_eq!(v.len(), 2);
    let p = v[0].panic.as_ref().unwrap();
    assert_eq!(
        p.message.as_deref(),
        Some(
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0xf2fffe29e15f2400 on skm 0xf6fffe2518aaa200 @skmem_slab.c:646"
        )
    );
    assert_eq!(v[0].os.build.as_deref(), Some("25D2128"));
    // The kernel version stops at the build, not at the end of the paragraph.
    assert!(
        p.kernel_version
            .as_deref()
            .unwrap()
            .ends_with("RELEASE_ARM64_T6050")
    );
    let log = &v[1].log;
    assert_eq!(log.len(), 19);
    assert_eq!(
        log[1].message,
        "(402262746): No more valid control units, disabling flow divert"
    );
    assert!(
        log.iter()
            .any(|e| e.message.contains("AppleT8110DART::_fatalException"))
    );
    // Storm lines with time-only stamps (Console copy), flattened.
    let r = one("forum-flattened-nesm.txt");
    assert_eq!(r.kind, ReportKind::Log);
    assert_eq!(r.log.len(), 26);
    assert!(r.log[0].message.starts_with(
        "NESMVPNSession[Primary Tunnel:Secure DNS: got On Demand start message from pid 5454"
    ));
    let t = r.log[0].timestamp.unwrap();
    assert_eq!(
        (t.hour, t.minute, t.second, t.offset_minutes),
        (17, 11, 52, Some(120))
    );
    assert_eq!(
        parse::detect(&data("forum-flattened-nesm.txt")),
        Format::Auto
    );
}

#[test]
fn detection_and_override() {
    assert_eq!(parse::detect(&data("log-default-skmem.log")), Format::Log);
    assert_eq!(parse::detect(&data("crash-quic-309.ips")), Format::Ips);
    assert_eq!(parse::detect(&data("panic-skmem-arm64.txt")), Format::Panic);
    assert_eq!(parse::detect(&data("crash-quic-ios.crash")), Format::Crash);
    assert_eq!(
        parse::detect(&data("hang-atfork.sample.txt")),
        Format::Spindump
    );
    assert_eq!(
        parse::detect(&data("stack-quic-oneline.txt")),
        Format::Stack
    );
    // Forcing a format reads the file as that format, or says why not.
    let r = parse::parse(&data("stack-addresses.txt"), Format::Crash).unwrap();
    assert_eq!(r[0].threads[0].frames.len(), 4);
    let e = parse::parse(&data("log-asl-nesm.txt"), Format::Spindump).unwrap_err();
    assert_eq!(e.name(), "wrong_format");
    assert_eq!(
        parse::parse(&data("forum-skmem-mixed.txt"), Format::Panic)
            .unwrap()
            .len(),
        1
    );
    let e = parse::parse_auto(&data("not-a-report.txt")).unwrap_err();
    assert_eq!((e.name(), e.line()), ("unrecognized", Some(1)));
}

#[test]
fn crlf_line_endings_read_the_same() {
    for name in [
        "crash-quic-ios.crash",
        "panic-classq-x86.panic",
        "log-default-skmem.log",
        "hang-atfork.sample.txt",
        "stack-quic-lines.txt",
    ] {
        let lf = auto(name);
        let crlf_bytes = String::from_utf8(data(name)).unwrap().replace('\n', "\r\n");
        let crlf = parse::parse_auto(crlf_bytes.as_bytes()).unwrap();
        assert_eq!(lf, crlf, "{name}");
    }
}

#[test]
fn every_sample_round_trips_through_json() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(reports) = parse::parse_auto(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        for r in reports {
            let json = serde_json::to_string(&r).unwrap();
            let back: Report =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(back, r, "{}", path.display());
        }
    }
}

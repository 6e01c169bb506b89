//! Misuse reports (in the kernel's wording), the policy that decides what happens to them,
//! and the crate's error types.

use std::fmt;

/// What a cache does when it detects misuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Panic with the report, like the kernel. The panic payload is a kernel panic line,
    /// `panic(cpu N caller 0x…): <message> @skmem_slab.c:626`, followed by the audit trail,
    /// so the same triage tools read both.
    #[default]
    Panic,
    /// Print the panic line and audit trail to stderr, then abort the process.
    Abort,
    /// Return the report as an error and leave the cache consistent: the offending call
    /// has no effect (used by fuzz oracles and tests).
    Report,
}

/// Which kind of misuse a [`Report`] describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// The object is already free: on a slab free list, or (audit mode) cached in a magazine.
    DoubleFree,
    /// The address is not an object of this cache.
    InvalidFree(InvalidReason),
    /// A free (poisoned) object was written to (`mcache_audit` wording).
    ModifiedAfterFree {
        /// Byte offset of the first modified 64-bit word.
        offset: usize,
        /// The word found there.
        found: u64,
        /// The pattern expected there.
        expected: u64,
    },
    /// The cache was destroyed with objects outstanding.
    NotEmpty {
        /// Objects still allocated from the slab layer after the purge.
        unfreed: u64,
    },
}

/// Why a freed address is not a valid object of the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not inside any slab of this cache (and not found in any other live cache).
    Foreign,
    /// Inside a slab of this cache, but not at the start of an object.
    Interior {
        /// Offset from the start of the object that contains the address.
        offset: usize,
    },
    /// An object of another cache.
    OtherCache {
        /// The other cache's name.
        name: String,
    },
    /// The object is live but owned by a [`crate::TypedObj`] handle; only the handle frees it.
    OwnedByHandle,
}

/// Whether a [`Transaction`] was an allocation or a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnKind {
    /// Handed out to a client.
    Alloc,
    /// Returned by a client.
    Free,
}

/// The last allocation or free of an object (audit mode), like `skmem_bufctl_audit`'s
/// `bc_thread`, `bc_timestamp` and `bc_stack`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Alloc or free.
    pub kind: TxnKind,
    /// The flowslab thread number of the thread (1-based, in order of first cache use;
    /// saturates at `u32::MAX`).
    pub thread: u64,
    /// The thread's audit transaction number (1-based, counts every audited alloc and free
    /// of that thread; the record keeps its low 32 bits): orders events of one thread
    /// without a clock read.
    pub seq: u64,
    /// Milliseconds of uptime (coarse monotonic clock, `bc_timestamp`'s unit) when
    /// [`crate::AuditOptions::timestamps`] is on; 0 otherwise.
    pub timestamp_ms: u64,
    /// A captured backtrace, when [`crate::AuditOptions::backtraces`] is on.
    pub backtrace: Option<String>,
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TxnKind::Alloc => "alloc",
            TxnKind::Free => "free",
        };
        write!(f, "last {what}: thread {} txn {}", self.thread, self.seq)?;
        if self.timestamp_ms != 0 {
            write!(f, " at {} ms", self.timestamp_ms)?;
        }
        if let Some(bt) = &self.backtrace {
            write!(f, "\n{bt}")?;
        }
        Ok(())
    }
}

/// A detected misuse. `message()` is the kernel's line, verbatim in format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What was detected.
    pub kind: ReportKind,
    /// The object (or freed) address.
    pub obj: usize,
    /// The cache (`skm`) address.
    pub skm: usize,
    /// The cache name (`skc.…`).
    pub cache: String,
    /// The object's last allocation, if known (audit mode).
    pub last_alloc: Option<Transaction>,
    /// The object's last free, if known (audit mode).
    pub last_free: Option<Transaction>,
}

impl Report {
    /// A stable identifier for logs and triage: `double-free`, `invalid-free`,
    /// `modified-after-free` or `not-empty`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ReportKind::DoubleFree => "double-free",
            ReportKind::InvalidFree(_) => "invalid-free",
            ReportKind::ModifiedAfterFree { .. } => "modified-after-free",
            ReportKind::NotEmpty { .. } => "not-empty",
        }
    }

    /// The kernel's message for this report:
    /// - `skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x… on skm 0x…`
    /// - `mcache_audit: buffer 0x… modified after free at offset 0x… (0x… instead of 0x…)`
    /// - `skmem_cache_destroy: '<name>' (0x…) not empty (N unfreed)`
    pub fn message(&self) -> String {
        match &self.kind {
            ReportKind::DoubleFree | ReportKind::InvalidFree(_) => format!(
                "skmem_slab_free_locked: attempt to free invalid or already-freed obj {:#x} on skm {:#x}",
                self.obj, self.skm
            ),
            ReportKind::ModifiedAfterFree {
                offset,
                found,
                expected,
            } => format!(
                "mcache_audit: buffer {:#x} modified after free at offset {:#x} ({:#x} instead of {:#x})",
                self.obj, offset, found, expected
            ),
            ReportKind::NotEmpty { unfreed } => format!(
                "skmem_cache_destroy: '{}' ({:#x}) not empty ({} unfreed)",
                self.cache, self.skm, unfreed
            ),
        }
    }

    /// The source location the kernel appends to this panic (`@file.c:line`, xnu-11417).
    pub fn location(&self) -> &'static str {
        match self.kind {
            ReportKind::DoubleFree | ReportKind::InvalidFree(_) => "skmem_slab.c:626",
            ReportKind::ModifiedAfterFree { .. } => "mcache.c:1737",
            ReportKind::NotEmpty { .. } => "skmem_cache.c:854",
        }
    }

    /// The report as a kernel panic line: `panic(cpu N caller 0x…): <message> @<file>:<line>`.
    pub fn panic_line(&self) -> String {
        format!(
            "panic(cpu {} caller {:#x}): {} @{}",
            current_cpu(),
            report_caller(),
            self.message(),
            self.location()
        )
    }

    /// Details beyond the kernel line: the reason and the audit trail, one item per line.
    pub fn details(&self) -> String {
        let mut out = format!("cache '{}': {}", self.cache, self.name());
        if let ReportKind::InvalidFree(reason) = &self.kind {
            let why = match reason {
                InvalidReason::Foreign => "not an object of this cache".to_string(),
                InvalidReason::Interior { offset } => {
                    format!("interior pointer, {offset:#x} bytes into an object")
                }
                InvalidReason::OtherCache { name } => format!("object of cache '{name}'"),
                InvalidReason::OwnedByHandle => "object owned by a TypedObj handle".to_string(),
            };
            out.push_str(&format!(" ({why})"));
        }
        for t in [&self.last_alloc, &self.last_free].into_iter().flatten() {
            out.push('\n');
            out.push_str(&t.to_string());
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.message(), self.details())
    }
}

impl std::error::Error for Report {}

/// The CPU the caller runs on (what `panic(cpu N …)` prints).
fn current_cpu() -> u32 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: sched_getcpu has no preconditions; it returns -1 on failure.
        let c = unsafe { libc::sched_getcpu() };
        u32::try_from(c).unwrap_or(0)
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        0
    }
}

/// The "caller" address printed in the panic line: the cache's report entry point.
fn report_caller() -> usize {
    let f: fn(&Report, Policy) -> Result<(), Box<Report>> = raise;
    f as usize
}

/// Applies `policy` to `report`: panics, aborts, or hands the report back.
pub(crate) fn raise(report: &Report, policy: Policy) -> Result<(), Box<Report>> {
    match policy {
        Policy::Report => Err(Box::new(report.clone())),
        Policy::Abort => {
            eprintln!("{}\n{}", report.panic_line(), report.details());
            std::process::abort();
        }
        Policy::Panic => panic!("{}\n{}", report.panic_line(), report.details()),
    }
}

/// A cache's name (`skc.…`) as carried by [`AllocError`]: one shared pointer, so that
/// making the error allocates nothing and `Result<NonNull<u8>, AllocError>` fits in two
/// registers (the allocation fast path then needs no stack frame).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheName(std::sync::Arc<String>);

impl CacheName {
    pub(crate) fn new(name: String) -> CacheName {
        CacheName(std::sync::Arc::new(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CacheName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CacheName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CacheName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The slab layer could not get memory.
    #[error("{cache}: out of memory")]
    OutOfMemory {
        /// Cache name.
        cache: CacheName,
    },
    /// The constructor refused the object (`skm_sl_alloc_fail` was incremented).
    #[error("{cache}: object constructor failed")]
    CtorFailed {
        /// Cache name.
        cache: CacheName,
    },
    /// Audit mode found the object modified after free (only with [`Policy::Report`]).
    #[error("{0}")]
    Audit(Box<Report>),
}

impl AllocError {
    /// A stable identifier: `out-of-memory`, `ctor-failed`, or the report's name.
    pub fn name(&self) -> &'static str {
        match self {
            AllocError::OutOfMemory { .. } => "out-of-memory",
            AllocError::CtorFailed { .. } => "ctor-failed",
            AllocError::Audit(r) => r.name(),
        }
    }
}

/// Why a checked free was refused.
#[derive(Debug, thiserror::Error)]
pub enum FreeError {
    /// `try_free` needs an AUDIT cache: only audit mode can validate an arbitrary pointer.
    #[error("{cache}: try_free needs an AUDIT cache")]
    NotAudited {
        /// Cache name.
        cache: String,
    },
    /// The free was misuse (only with [`Policy::Report`]; the cache is unchanged).
    #[error("{0}")]
    Audit(Box<Report>),
}

impl FreeError {
    /// A stable identifier: `not-audited` or the report's name.
    pub fn name(&self) -> &'static str {
        match self {
            FreeError::NotAudited { .. } => "not-audited",
            FreeError::Audit(r) => r.name(),
        }
    }
}

/// Why a cache configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Object size 0.
    #[error("cache '{0}': object size must be at least 1 byte")]
    ZeroSize(String),
    /// Alignment not a power of two.
    #[error("cache '{name}': alignment {align} is not a power of two")]
    BadAlign {
        /// Cache name.
        name: String,
        /// The rejected alignment.
        align: usize,
    },
    /// Size or slab size too large (slabs are at most 1 GiB and hold at most 2^24 objects).
    #[error("cache '{name}': object size {size} / slab size {slab} not supported")]
    TooLarge {
        /// Cache name.
        name: String,
        /// Object size.
        size: usize,
        /// Slab size.
        slab: usize,
    },
    /// Name longer than `skm_name[64]` allows (63 bytes with the `skc.` prefix).
    #[error("cache name '{0}' longer than 63 bytes")]
    NameTooLong(String),
    /// An empty or unordered custom magazine table.
    #[error("cache '{0}': magazine table must be non-empty with magsize >= 1")]
    BadMagTable(String),
}

impl ConfigError {
    /// A stable identifier for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigError::ZeroSize(_) => "zero-size",
            ConfigError::BadAlign { .. } => "bad-align",
            ConfigError::TooLarge { .. } => "too-large",
            ConfigError::NameTooLong(_) => "name-too-long",
            ConfigError::BadMagTable(_) => "bad-magtable",
        }
    }
}

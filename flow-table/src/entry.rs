//! Flow entries (`struct flow_entry`): refcounting, flags, teardown/destroy, parent and
//! child flows, and the `flow_entry_alloc` log line.

use std::fmt;

use crate::flags::*;
use crate::key::{FlowKey, FlowMask};
use crate::objcache::EntryCache;
use crate::panic::{PanicKind, PanicSink};
use crate::refcnt::OsRefcnt;
use crate::sync::{Arc, AtomicU32, AtomicU64, Mutex, Ordering};

/// `NEXUS_PORT_ANY`.
pub const NEXUS_PORT_ANY: u16 = u16::MAX;

/// Identity fields recorded at allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowIdentity {
    /// `fe_uuid` (the flow's UUID).
    pub uuid: u128,
    /// `fe_pid`.
    pub pid: u32,
    /// `fe_proc_name`.
    pub proc_name: String,
    /// `fe_nx_port`.
    pub nx_port: u16,
    /// `fe_flowid`.
    pub flowid: u32,
}

/// A flow entry. Always handled through [`FlowEntryRef`] (a counted reference) or the
/// table's and owner's internal references.
///
/// Layout: the first cache line holds what a lookup touches, the masked key words it
/// compares and the `os_refcnt` a retained lookup bumps (`repr(C)` keeps that order,
/// `align(64)` puts it on a line of its own).
#[repr(C, align(64))]
pub struct FlowEntry {
    masked: [u64; 6],
    refcnt: OsRefcnt,
    key: FlowKey,
    mask: FlowMask,
    key_hash: u32,
    flags: AtomicU32,
    id: FlowIdentity,
    /// `SK_KVA(fe)`: the object address from the `flow.entry` cache.
    addr: u64,
    /// Set once the object went back to the cache (a second free is the bug we model).
    cache: Arc<EntryCache>,
    panics: Arc<PanicSink>,
    linger_expire_ms: AtomicU64,
    children: Mutex<Vec<FlowEntryRef>>,
    parent_uuid: Option<u128>,
}

impl fmt::Debug for FlowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowEntry")
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("key", &self.key)
            .field("flags", &self.flags_string())
            .field("refcnt", &self.refcnt.get())
            .finish()
    }
}

impl FlowEntry {
    /// `fe_alloc`: takes an object from the cache and initialises the refcount to 1 (the
    /// caller's reference). `None` when the cache is exhausted.
    pub(crate) fn alloc(
        key: FlowKey,
        mask: FlowMask,
        flags: u32,
        id: FlowIdentity,
        parent_uuid: Option<u128>,
        cache: &Arc<EntryCache>,
        panics: &Arc<PanicSink>,
    ) -> Option<FlowEntryRef> {
        let addr = cache.alloc()?;
        let fe = Arc::new(FlowEntry {
            key,
            masked: key.masked_words(mask),
            mask,
            key_hash: key.hash(mask),
            flags: AtomicU32::new(flags | FLOWENTF_INITED),
            refcnt: OsRefcnt::new(addr),
            id,
            addr,
            cache: Arc::clone(cache),
            panics: Arc::clone(panics),
            linger_expire_ms: AtomicU64::new(0),
            children: Mutex::new(Vec::new()),
            parent_uuid,
        });
        Some(FlowEntryRef { fe, armed: true })
    }

    /// The key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The key's mask.
    pub fn mask(&self) -> FlowMask {
        self.mask
    }

    /// `fe_key_hash`.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// `__fe_cuckoo_cmp`: masked compare of `key` against this entry under its mask.
    pub fn matches(&self, key: &FlowKey) -> bool {
        key.masked_words(self.mask) == self.masked
    }

    /// Fast compare against pre-masked words. Word 0 carries the mask bits themselves, so
    /// equal words also mean the same mask.
    pub(crate) fn matches_words(&self, masked: &[u64; 6]) -> bool {
        // XOR-fold instead of `==` on the arrays, which compiles to an out-of-line
        // `memcmp` call (13 % of a lookup's profile).
        masked
            .iter()
            .zip(&self.masked)
            .fold(0u64, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// `fe_flags`.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// Sets flags, returning the previous value.
    pub(crate) fn set_flags(&self, f: u32) -> u32 {
        self.flags.fetch_or(f, Ordering::AcqRel)
    }

    /// Clears flags.
    pub(crate) fn clear_flags(&self, f: u32) {
        self.flags.fetch_and(!f, Ordering::AcqRel);
    }

    /// `0x%b` rendering of the flags with `FLOWENTF_BITS`.
    pub fn flags_string(&self) -> String {
        flowentf_string(self.flags())
    }

    /// The current reference count (diagnostics).
    pub fn refcnt(&self) -> u32 {
        self.refcnt.get()
    }

    /// Identity fields.
    pub fn identity(&self) -> &FlowIdentity {
        &self.id
    }

    /// The entry's object address (`SK_KVA(fe)`).
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The parent's UUID for a child flow.
    pub fn parent_uuid(&self) -> Option<u128> {
        self.parent_uuid
    }

    /// Linger expiry (ms), 0 when not lingering.
    pub fn linger_expire_ms(&self) -> u64 {
        self.linger_expire_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_linger_expire_ms(&self, ms: u64) {
        self.linger_expire_ms.store(ms, Ordering::Relaxed);
    }

    /// `fe_as_string`: `fe 0x%llx proc %s nx_port %d flow_uuid %s %s tp_proto=0x%02u`.
    pub fn as_string(&self) -> String {
        format!(
            "fe {:#x} proc {} nx_port {} flow_uuid {} {} tp_proto=0x{:02}",
            self.addr,
            self.id.proc_name,
            self.id.nx_port,
            format_uuid(self.id.uuid),
            self.key,
            self.key.proto
        )
    }

    /// Number of children (parent flows).
    pub fn child_count(&self) -> usize {
        self.children.lock().len()
    }

    pub(crate) fn add_child(&self, child: FlowEntryRef) {
        self.children.lock().push(child);
    }

    pub(crate) fn take_children(&self) -> Vec<FlowEntryRef> {
        std::mem::take(&mut *self.children.lock())
    }

    /// `fe_free`: returns the object to the cache. A second call is the double free the
    /// allocator catches.
    fn free(&self) {
        if let Err(report) = self.cache.free(self.addr) {
            self.panics
                .record(PanicKind::Allocator, report.message, report.location);
        }
    }
}

/// Formats a UUID like `uuid_unparse_upper`.
pub fn format_uuid(u: u128) -> String {
    let b = u.to_be_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A counted reference to a flow entry (`os_ref_retain`ed). Dropping it releases the
/// reference (`flow_entry_release`); the last release frees the entry's object.
pub struct FlowEntryRef {
    fe: Arc<FlowEntry>,
    /// False once the reference was released explicitly (drop then does nothing).
    armed: bool,
}

impl fmt::Debug for FlowEntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fe.fmt(f)
    }
}

impl std::ops::Deref for FlowEntryRef {
    type Target = FlowEntry;

    fn deref(&self) -> &FlowEntry {
        &self.fe
    }
}

impl Clone for FlowEntryRef {
    /// `flow_entry_retain`. A failed retain (resurrection/overflow) is recorded as a panic
    /// and yields a reference that does not release again.
    fn clone(&self) -> Self {
        FlowEntryRef::retain(&self.fe)
    }
}

impl FlowEntryRef {
    /// `flow_entry_retain` of an entry reached through a table or list.
    pub(crate) fn retain(fe: &Arc<FlowEntry>) -> FlowEntryRef {
        if let Err(e) = fe.refcnt.retain() {
            fe.panics
                .record(PanicKind::Refcnt, e.to_string(), "@refcnt.c:79");
        }
        FlowEntryRef {
            fe: Arc::clone(fe),
            armed: true,
        }
    }

    /// `flow_entry_retain` of an entry found by a lock-free table lookup: `None` when its
    /// count already reached 0 (a concurrent destroy released the last reference; the
    /// lookup reports a miss). An overflow is recorded like [`FlowEntryRef::retain`].
    pub(crate) fn try_retain(fe: &Arc<FlowEntry>) -> Option<FlowEntryRef> {
        match fe.refcnt.try_retain() {
            Ok(true) => Some(FlowEntryRef {
                fe: Arc::clone(fe),
                armed: true,
            }),
            Ok(false) => None,
            Err(e) => {
                fe.panics
                    .record(PanicKind::Refcnt, e.to_string(), "@refcnt.c:79");
                None
            }
        }
    }

    /// The shared entry (for tables and lists that hold it intrusively).
    pub(crate) fn arc(&self) -> &Arc<FlowEntry> {
        &self.fe
    }

    /// `flow_entry_release`: drops this reference, freeing the entry at 0. Returns the
    /// remaining count.
    pub fn release(mut self) -> u32 {
        self.armed = false;
        release_arc(&self.fe)
    }

    /// The field bug behind `skmem-slab-double-free`: the release is done as a decrement
    /// followed by a *separate* re-read of the count (`release_split` then
    /// [`SplitRelease::finish`]). If another release runs in between, both sides read 0
    /// and both free the object.
    pub fn release_split(mut self) -> SplitRelease {
        self.armed = false;
        if let Err(e) = self.fe.refcnt.release() {
            self.fe
                .panics
                .record(PanicKind::Refcnt, e.to_string(), "@refcnt.c:79");
        }
        SplitRelease {
            fe: Arc::clone(&self.fe),
        }
    }
}

fn release_arc(fe: &Arc<FlowEntry>) -> u32 {
    match fe.refcnt.release() {
        Ok(0) => {
            fe.free();
            0
        }
        Ok(n) => n,
        Err(e) => {
            fe.panics
                .record(PanicKind::Refcnt, e.to_string(), "@refcnt.c:79");
            0
        }
    }
}

impl Drop for FlowEntryRef {
    fn drop(&mut self) {
        if self.armed {
            release_arc(&self.fe);
        }
    }
}

/// The second half of a buggy split release (see [`FlowEntryRef::release_split`]).
#[derive(Debug)]
pub struct SplitRelease {
    fe: Arc<FlowEntry>,
}

impl SplitRelease {
    /// Re-reads the count and frees the entry if it reads 0: racing a proper release
    /// that already freed it, this is the double free.
    pub fn finish(self) {
        if self.fe.refcnt.get() == 0 {
            self.fe.free();
        }
    }
}

/// Takes the table's reference to `fe` (`__fe_cuckoo_retain`): the count only, the table
/// holds its own `Arc`.
pub(crate) fn retain_table_ref(fe: &Arc<FlowEntry>) {
    if let Err(e) = fe.refcnt.retain() {
        fe.panics
            .record(PanicKind::Refcnt, e.to_string(), "@refcnt.c:79");
    }
}

/// Releases the table's reference to `fe` (`__fe_cuckoo_release`).
pub(crate) fn release_table_ref(fe: &Arc<FlowEntry>) {
    release_arc(fe);
}

/// A reference that was never retained: releasing it is an over-release (tests only).
#[cfg(all(test, not(loom)))]
pub(crate) fn forge_extra_ref(fe: &FlowEntryRef) -> FlowEntryRef {
    FlowEntryRef {
        fe: Arc::clone(&fe.fe),
        armed: true,
    }
}

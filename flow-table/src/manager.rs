//! The flow manager (`struct flow_mgr`): the flow table, per-mask counters, owner buckets,
//! `flow_entry_alloc` / `flow_entry_destroy`, lookup by key and the linger list.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::cuckoo::{CuckooError, CuckooTable, ReadGuard};
use crate::entry::{FlowEntry, FlowEntryRef, FlowIdentity, format_uuid};
use crate::error::FlowError;
use crate::fault::FaultSet;
use crate::flags::*;
use crate::key::{FlowKey, FlowMask};
use crate::log::{LogSink, LogSource, LogType};
use crate::objcache::{EntryCache, EntryCacheStats};
use crate::owner::{Admission, FlowOwner, OpenMode, WaitTicket};
use crate::panic::{PanicPolicy, PanicRecord, PanicSink};
use crate::sync::{Arc, AtomicU32, AtomicUsize, Mutex, Ordering};

/// `SK_VERB_FLOW`.
pub const SK_VERB_FLOW: u64 = 0x1000_0000;
/// `SK_VERB_MEM`.
pub const SK_VERB_MEM: u64 = 0x10;

/// Flow manager settings.
#[derive(Debug, Clone)]
pub struct FlowManagerConfig {
    /// Initial flow table capacity (`fe_cnt`).
    pub capacity: usize,
    /// Number of owner buckets (`fm_owner_buckets_cnt`).
    pub owner_buckets: usize,
    /// Per-owner flow limit.
    pub flow_limit: usize,
    /// Per-owner descriptor limit (`RLIMIT_NOFILE`).
    pub fd_limit: usize,
    /// Linger time for `WAIT_CLOSE` flows (ms).
    pub linger_ms: u64,
    /// `sk_verbose` bits (`SK_VERB_FLOW` logs every allocation).
    pub sk_verbose: u64,
    /// Injected faults.
    pub faults: FaultSet,
    /// What a caught misuse does.
    pub panic_policy: PanicPolicy,
    /// Number of CPUs printed in `SK[n]`.
    pub ncpu: u32,
}

impl Default for FlowManagerConfig {
    fn default() -> Self {
        FlowManagerConfig {
            capacity: 1024,
            owner_buckets: 8,
            flow_limit: 512,
            fd_limit: 256,
            linger_ms: 2000,
            sk_verbose: 0,
            faults: FaultSet::none(),
            panic_policy: PanicPolicy::Record,
            ncpu: 10,
        }
    }
}

/// A flow open request (`struct nx_flow_req`, the parts the model uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRequest {
    /// IP protocol.
    pub proto: u8,
    /// Local address (None or unspecified: not part of the key).
    pub local: Option<IpAddr>,
    /// Local port (0: not part of the key).
    pub local_port: u16,
    /// Remote address.
    pub remote: Option<IpAddr>,
    /// Remote port.
    pub remote_port: u16,
    /// The flow's UUID (`nfr_flow_uuid`).
    pub uuid: u128,
    /// A listener rather than a connected flow.
    pub listener: bool,
    /// Defer the final free after close (`WAIT_CLOSE`, linger).
    pub wait_close: bool,
    /// Create a parent flow that can hold children.
    pub parent: bool,
    /// Create a child of the parent flow with this UUID (`nfr_parent_flow_uuid`).
    pub parent_uuid: Option<u128>,
    /// `NOWAKEFROMSLEEP`.
    pub no_wake_from_sleep: bool,
}

impl FlowRequest {
    /// A connected TCP flow.
    pub fn tcp(uuid: u128, local: IpAddr, lport: u16, remote: IpAddr, rport: u16) -> Self {
        FlowRequest {
            proto: 6,
            local: Some(local),
            local_port: lport,
            remote: Some(remote),
            remote_port: rport,
            uuid,
            listener: false,
            wait_close: false,
            parent: false,
            parent_uuid: None,
            no_wake_from_sleep: false,
        }
    }
}

/// Result of [`FlowManager::open`].
#[derive(Debug)]
pub enum OpenResult {
    /// The flow is open; the reference is the caller's.
    Opened(FlowEntryRef),
    /// Queued behind the owner's limit; complete it with [`FlowManager::complete_open`].
    Waiting(WaitTicket),
}

/// Counters for tests and the simulator's end-of-run check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowManagerStats {
    /// Entries in the flow table.
    pub table_entries: usize,
    /// Table capacity.
    pub table_capacity: usize,
    /// Lingering entries.
    pub lingering: usize,
    /// The `flow.entry` cache.
    pub cache: EntryCacheStats,
}

/// `struct flow_owner_bucket`: owners by pid.
type OwnerBucket = Mutex<BTreeMap<u32, Arc<FlowOwner>>>;

/// The flow manager.
pub struct FlowManager {
    cfg: FlowManagerConfig,
    table: CuckooTable<FlowEntry>,
    mask_counts: [AtomicUsize; 7],
    owner_buckets: Box<[OwnerBucket]>,
    cache: Arc<EntryCache>,
    panics: Arc<PanicSink>,
    log: Arc<LogSink>,
    linger: Mutex<Vec<FlowEntryRef>>,
    next_flowid: AtomicU32,
    next_port: AtomicU32,
}

impl std::fmt::Debug for FlowManager {
    /// A summary (the full table can hold millions of flows).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowManager")
            .field("stats", &self.stats())
            .field("panic", &self.panic_record())
            .finish_non_exhaustive()
    }
}

impl FlowManager {
    /// `flow_mgr_create`.
    pub fn new(cfg: FlowManagerConfig, log: Arc<LogSink>) -> Self {
        Self::with_cache(cfg, log, Arc::new(EntryCache::new()))
    }

    /// A manager allocating from an existing `flow.entry` cache.
    pub fn with_cache(cfg: FlowManagerConfig, log: Arc<LogSink>, cache: Arc<EntryCache>) -> Self {
        FlowManager {
            table: CuckooTable::with_capacity(cfg.capacity),
            mask_counts: Default::default(),
            owner_buckets: (0..cfg.owner_buckets.max(1))
                .map(|_| Mutex::new(BTreeMap::new()))
                .collect(),
            cache,
            panics: Arc::new(PanicSink::new(cfg.panic_policy)),
            log,
            linger: Mutex::new(Vec::new()),
            next_flowid: AtomicU32::new(0x1000),
            next_port: AtomicU32::new(2),
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FlowManagerConfig {
        &self.cfg
    }

    /// The first misuse the allocator or `os_refcnt` caught, if any.
    pub fn panic_record(&self) -> Option<PanicRecord> {
        self.panics.first()
    }

    /// The log sink.
    pub fn log(&self) -> &Arc<LogSink> {
        &self.log
    }

    /// The `flow.entry` cache.
    pub fn cache(&self) -> &Arc<EntryCache> {
        &self.cache
    }

    /// The flow table.
    pub fn table(&self) -> &CuckooTable<FlowEntry> {
        &self.table
    }

    /// Counters.
    pub fn stats(&self) -> FlowManagerStats {
        FlowManagerStats {
            table_entries: self.table.len(),
            table_capacity: self.table.capacity(),
            lingering: self.linger.lock().len(),
            cache: self.cache.stats(),
        }
    }

    /// The owner for `pid` (`flow_mgr_get_fob_by_pid` + owner lookup), created on first use.
    pub fn owner(&self, pid: u32, name: &str) -> Arc<FlowOwner> {
        let bucket = &self.owner_buckets[pid as usize % self.owner_buckets.len()];
        let mut g = bucket.lock();
        Arc::clone(g.entry(pid).or_insert_with(|| {
            Arc::new(FlowOwner::new(
                pid,
                name,
                self.cfg.flow_limit,
                self.cfg.fd_limit,
            ))
        }))
    }

    /// Existing owner for `pid`.
    pub fn find_owner(&self, pid: u32) -> Option<Arc<FlowOwner>> {
        let bucket = &self.owner_buckets[pid as usize % self.owner_buckets.len()];
        bucket.lock().get(&pid).cloned()
    }

    fn owner_addr(owner: &FlowOwner) -> u64 {
        0xffff_fe2a_1000_0000 + u64::from(owner.pid()) * 0x200
    }

    /// `SK_DF`: formats the message only when `sk_verbose` has `bit`.
    fn sk_log(&self, bit: u64, func: &str, cpu: u32, msg: impl FnOnce() -> String) {
        if self.cfg.sk_verbose & bit == bit && self.log.enabled() {
            self.log.log(
                &LogSource::kernel(),
                0x1f3 + u64::from(cpu),
                LogType::Default,
                format!("SK[{cpu}]: {func:<30} {}", msg()),
            );
        }
    }

    fn sk_err(&self, func: &str, msg: String) {
        if self.log.enabled() {
            self.log.log(
                &LogSource::kernel(),
                0x1f3,
                LogType::Error,
                format!("SK[0]: {func:<30} {msg}"),
            );
        }
    }

    /// Opens a flow for `owner` (`fsw_flow_add` → `flow_entry_alloc`). At the owner's
    /// limit, `mode` decides: fail with ENOMEM, block, or queue.
    pub fn open(
        &self,
        owner: &Arc<FlowOwner>,
        req: &FlowRequest,
        mode: OpenMode,
    ) -> Result<OpenResult, FlowError> {
        match owner.admit(mode)? {
            Admission::Admitted => {}
            Admission::Waiting(t) => return Ok(OpenResult::Waiting(t)),
        }
        match self.flow_entry_alloc(owner, req) {
            Ok(fe) => Ok(OpenResult::Opened(fe)),
            Err(e) => {
                owner.release_slot(self.cfg.faults);
                Err(e)
            }
        }
    }

    /// Completes a queued open once its ticket was admitted; `Ok(None)` while it still
    /// waits.
    pub fn complete_open(
        &self,
        owner: &Arc<FlowOwner>,
        ticket: WaitTicket,
        req: &FlowRequest,
    ) -> Result<Option<FlowEntryRef>, FlowError> {
        if !owner.poll(ticket) {
            return Ok(None);
        }
        match self.flow_entry_alloc(owner, req) {
            Ok(fe) => Ok(Some(fe)),
            Err(e) => {
                owner.release_slot(self.cfg.faults);
                Err(e)
            }
        }
    }

    /// `flow_entry_alloc` (the owner slot is already reserved).
    fn flow_entry_alloc(
        &self,
        owner: &Arc<FlowOwner>,
        req: &FlowRequest,
    ) -> Result<FlowEntryRef, FlowError> {
        let key = FlowKey::from_request(
            req.proto,
            req.local,
            req.local_port,
            req.remote,
            req.remote_port,
        )
        .inspect_err(|e| {
            self.sk_err(
                "flow_entry_alloc",
                format!("invalid request (err {})", e.errno()),
            )
        })?;
        let mask = key.flow_mask().ok_or(FlowError::UnknownMask(key.mask))?;
        if let Some(dup) = owner.lock().flows.get(&req.uuid) {
            let s = dup.as_string();
            self.sk_err(
                "flow_entry_alloc",
                format!(
                    "entry \"{s}\" already exists (flow_uuid {})",
                    format_uuid(req.uuid)
                ),
            );
            return Err(FlowError::Exists(s));
        }

        // Conflict check: exact-mask lookup.
        let mut parent: Option<FlowEntryRef> = None;
        if let Some(hit) = self.find_exact(&key, mask) {
            if hit.flags() & FLOWENTF_PARENT != 0 && req.parent_uuid == Some(hit.identity().uuid) {
                parent = Some(hit);
            } else {
                self.sk_err(
                    "flow_entry_alloc",
                    format!(
                        "entry \"{}\" already exists at fe {:#x} flags 0x{} {}({})",
                        hit.as_string(),
                        hit.addr(),
                        hit.flags_string(),
                        hit.identity().proc_name,
                        hit.identity().pid
                    ),
                );
                return Err(FlowError::Exists(hit.as_string()));
            }
        } else if let Some(pu) = req.parent_uuid {
            let s = format_uuid(pu);
            self.sk_err(
                "flow_entry_alloc",
                format!("parent entry \"{s}\" does not exist"),
            );
            return Err(FlowError::NoParent(s));
        }

        let mut flags = if req.listener {
            FLOWENTF_LISTENER
        } else {
            FLOWENTF_CONNECTED
        };
        if req.no_wake_from_sleep {
            flags |= FLOWENTF_NOWAKEFROMSLEEP;
        }
        if !req.listener && (req.proto == 6 || req.proto == 17) {
            flags |= FLOWENTF_TRACK;
        }
        if req.wait_close {
            flags |= FLOWENTF_WAIT_CLOSE;
        }
        if req.parent {
            flags |= FLOWENTF_PARENT;
        }
        if parent.is_some() {
            flags |= FLOWENTF_CHILD;
        }
        let flowid = self.next_flowid.fetch_add(1, Ordering::Relaxed);
        let id = FlowIdentity {
            uuid: req.uuid,
            pid: owner.pid(),
            proc_name: owner.name().chars().take(23).collect(),
            nx_port: (self.next_port.fetch_add(1, Ordering::Relaxed) % 4094 + 2) as u16,
            flowid,
        };
        let fe = FlowEntry::alloc(
            key,
            mask,
            flags,
            id,
            req.parent_uuid,
            &self.cache,
            &self.panics,
        )
        .ok_or(FlowError::TableFull)?;
        let cpu = flowid % self.cfg.ncpu.max(1);
        self.sk_log(SK_VERB_MEM, "fe_alloc", cpu, || {
            format!("fe {:#x} ALLOC", fe.addr())
        });

        // Insert: children hang off their parent, everything else goes in the table.
        if let Some(p) = &parent {
            p.add_child(fe.clone());
        } else {
            match self.table.add(fe.key_hash(), fe.arc()) {
                Ok(()) => {
                    // The table's reference (`__fe_cuckoo_retain`).
                    crate::entry::retain_table_ref(fe.arc());
                }
                Err(e) => {
                    let errno = match e {
                        CuckooError::Exists => 17,
                        _ => 12,
                    };
                    self.sk_err(
                        "flow_entry_alloc",
                        format!("flow table add failed (err {errno})"),
                    );
                    fe.set_flags(FLOWENTF_TORN_DOWN | FLOWENTF_DESTROYED);
                    return Err(FlowError::TableFull);
                }
            }
            self.mask_counts[mask.index()].fetch_add(1, Ordering::Relaxed);
        }
        // One reference in the owner's id tree.
        owner.lock().flows.insert(req.uuid, fe.clone());

        self.sk_log(SK_VERB_FLOW, "flow_entry_alloc", cpu, || {
            format!(
                "allocated entry \"{}\" fe {:#x} flags 0x{} [fo {:#x} ]",
                fe.as_string(),
                fe.addr(),
                fe.flags_string(),
                Self::owner_addr(owner)
            )
        });
        Ok(fe)
    }

    fn find_exact(&self, key: &FlowKey, mask: FlowMask) -> Option<FlowEntryRef> {
        let probe = MaskProbe::new(key, mask);
        self.table
            .find(
                probe.hash,
                |fe| fe.matches_words(&probe.words),
                FlowEntryRef::try_retain,
            )
            .flatten()
    }

    /// The masks in use, most specific first, each with the key's masked words and hash.
    fn probes<'k>(&self, key: &'k FlowKey) -> impl Iterator<Item = MaskProbe> + use<'_, 'k> {
        FlowMask::LOOKUP_ORDER
            .into_iter()
            .filter(|m| self.mask_counts[m.index()].load(Ordering::Relaxed) != 0)
            .map(|m| MaskProbe::new(key, m))
    }

    /// `flow_mgr_find_fe_by_key`: tries the masks in use from most to least specific and
    /// returns the first match, retained (one `os_refcnt` and one `Arc` increment; the
    /// table lookup itself takes no lock). A v4-only 2-tuple listener never matches a v6
    /// key. An entry whose last reference is being released concurrently is not returned.
    pub fn find_by_key(&self, key: &FlowKey) -> Option<FlowEntryRef> {
        self.probes(key).find_map(|p| {
            self.table
                .find(p.hash, |fe| p.matches(fe), FlowEntryRef::try_retain)
                .flatten()
        })
    }

    /// The borrowed lookup (conntrack/RCU style): like [`FlowManager::find_by_key`], but
    /// returns the entry *borrowed* for as long as `guard` lives, touching no reference
    /// count and taking no lock. Pin once with [`FlowManager::read_guard`] and reuse the
    /// guard for a burst of lookups (a packet batch); drop it between bursts so removed
    /// entries can be reclaimed. The entry may be torn down meanwhile (check its flags);
    /// its memory stays valid until the guard is dropped. Keep a [`FlowEntryRef`]
    /// (`find_by_key`) to hold an entry longer.
    pub fn find_by_key_in<'a>(
        &'a self,
        guard: &'a ReadGuard,
        key: &FlowKey,
    ) -> Option<&'a FlowEntry> {
        self.probes(key)
            .find_map(|p| self.table.find_in(guard, p.hash, |fe| p.matches(fe)))
    }

    /// Pins a read-side critical section for [`FlowManager::find_by_key_in`].
    pub fn read_guard(&self) -> ReadGuard {
        ReadGuard::pin()
    }

    /// Like [`FlowManager::find_by_key`], but runs `f` on the borrowed entry instead of
    /// retaining it (pins and unpins around the one lookup; no refcount traffic).
    pub fn find_by_key_with<R>(&self, key: &FlowKey, f: impl FnOnce(&FlowEntry) -> R) -> Option<R> {
        let guard = ReadGuard::pin();
        self.find_by_key_in(&guard, key).map(f)
    }

    /// The flow with `uuid` in `owner`'s id tree, retained.
    pub fn find_by_uuid(&self, owner: &FlowOwner, uuid: u128) -> Option<FlowEntryRef> {
        owner.lock().flows.get(&uuid).cloned()
    }

    /// `flow_entry_teardown`: idempotent; withdraws the namespace, marks TORN_DOWN and
    /// detaches children.
    pub fn teardown(&self, fe: &FlowEntry) {
        let old = fe.set_flags(FLOWENTF_NONVIABLE);
        if old & FLOWENTF_EXTRL_PORT == 0 {
            fe.set_flags(FLOWENTF_WITHDRAWN);
        }
        if old & FLOWENTF_TORN_DOWN != 0 {
            return;
        }
        fe.set_flags(FLOWENTF_TORN_DOWN);
        for child in fe.take_children() {
            child.set_flags(FLOWENTF_NONVIABLE | FLOWENTF_TORN_DOWN);
            // The parent list's reference goes with `child`.
        }
    }

    /// `flow_entry_destroy`: teardown, out of the table and the owner's id tree, then the
    /// caller's reference is released now or after the linger time (`WAIT_CLOSE`).
    /// Wakes the owner's waiters (unless the `nw-connection-enomem` fault is on).
    ///
    /// Whoever takes the entry out of the owner's id tree owns the destroy; a second
    /// destroy of the same flow (another path got there first) only drops its reference.
    pub fn destroy(&self, owner: &FlowOwner, fe: FlowEntryRef, nolinger: bool) {
        let uuid = fe.identity().uuid;
        let tree_ref = {
            let mut st = owner.lock();
            match st.flows.get(&uuid) {
                Some(t) if Arc::ptr_eq(t.arc(), fe.arc()) => st.flows.remove(&uuid),
                _ => None,
            }
        };
        let Some(tree_ref) = tree_ref else {
            drop(fe);
            return;
        };
        self.teardown(&fe);
        if fe.flags() & FLOWENTF_CHILD == 0
            && let Ok(table_ref) = self.table.del(fe.key_hash(), fe.arc())
        {
            self.mask_counts[fe.mask().index()].fetch_sub(1, Ordering::Relaxed);
            // `__fe_cuckoo_release`: the table's os_refcnt reference.
            drop(FlowEntryRefFromTable(table_ref));
        }
        // The id tree's reference.
        drop(tree_ref);
        fe.set_flags(FLOWENTF_DESTROYED);
        owner.release_slot(self.cfg.faults);
        if nolinger || fe.flags() & FLOWENTF_WAIT_CLOSE == 0 {
            drop(fe);
        } else {
            fe.set_flags(FLOWENTF_LINGERING);
            fe.set_linger_expire_ms(self.log.clock().now_ms() + self.cfg.linger_ms);
            self.linger.lock().push(fe);
        }
    }

    /// The linger reaper: drops the last reference of every entry whose linger time
    /// expired by `now_ms` (all of them when `force`). Returns how many were freed.
    pub fn reap_linger(&self, now_ms: u64, force: bool) -> usize {
        let expired: Vec<FlowEntryRef> = {
            let mut g = self.linger.lock();
            let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *g)
                .into_iter()
                .partition(|fe| force || fe.linger_expire_ms() <= now_ms);
            *g = keep;
            done
        };
        let n = expired.len();
        for fe in expired {
            fe.clear_flags(FLOWENTF_LINGERING);
            drop(fe);
        }
        n
    }

    /// The flowswitch reaper's periodic pass: frees expired lingering entries and lets the
    /// flow table shrink (`cuckoo_hashtable_try_shrink`). Returns how many were freed.
    pub fn reap(&self, now_ms: u64) -> usize {
        let n = self.reap_linger(now_ms, false);
        self.table.try_shrink();
        n
    }

    /// `flow_owner_bucket_purge`: destroys every flow of `owner`.
    pub fn purge_owner(&self, owner: &FlowOwner) {
        let flows: Vec<FlowEntryRef> = owner.lock().flows.values().cloned().collect();
        for fe in flows {
            self.destroy(owner, fe, false);
        }
    }

    /// `flow_mgr_terminate`: purges every owner and reaps every lingering entry.
    pub fn terminate(&self) {
        let owners: Vec<Arc<FlowOwner>> = self
            .owner_buckets
            .iter()
            .flat_map(|b| b.lock().values().cloned().collect::<Vec<_>>())
            .collect();
        for o in &owners {
            self.purge_owner(o);
        }
        self.reap_linger(0, true);
    }
}

/// One mask's view of a lookup key: the masked words and their hash.
struct MaskProbe {
    mask: FlowMask,
    words: [u64; 6],
    hash: u32,
    /// A v6 key never matches a v4-only 2-tuple listener.
    v6: bool,
}

impl MaskProbe {
    fn new(key: &FlowKey, mask: FlowMask) -> Self {
        let mut k = *key;
        k.mask = mask.bits();
        let words = k.masked_words(mask);
        MaskProbe {
            mask,
            words,
            hash: crate::key::hash_words(&words),
            v6: key.ipver == 6,
        }
    }

    /// Word 0 of the masked words carries the mask bits, so a word match is also a mask
    /// match (`fe_mask` need not be read).
    fn matches(&self, fe: &FlowEntry) -> bool {
        fe.matches_words(&self.words)
            && !(self.v6 && self.mask == FlowMask::TwoTuple && fe.key().ipver == 4)
    }
}

/// The table's reference, handed back by `cuckoo_hashtable_del`, released on drop.
struct FlowEntryRefFromTable(Arc<FlowEntry>);

impl Drop for FlowEntryRefFromTable {
    fn drop(&mut self) {
        crate::entry::release_table_ref(&self.0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::fault::Fault;
    use crate::log::Clock;

    fn mgr(faults: FaultSet) -> FlowManager {
        mgr_limit(faults, 2)
    }

    fn mgr_limit(faults: FaultSet, flow_limit: usize) -> FlowManager {
        let log = Arc::new(LogSink::new(Arc::new(Clock::new(1_795_246_222_000_000))));
        FlowManager::new(
            FlowManagerConfig {
                capacity: 12,
                flow_limit,
                sk_verbose: SK_VERB_FLOW,
                faults,
                ..FlowManagerConfig::default()
            },
            log,
        )
    }

    fn req(uuid: u128, lport: u16) -> FlowRequest {
        FlowRequest::tcp(
            uuid,
            "10.0.0.2".parse().unwrap(),
            lport,
            "17.253.144.10".parse().unwrap(),
            443,
        )
    }

    fn opened(r: Result<OpenResult, FlowError>) -> FlowEntryRef {
        match r.unwrap() {
            OpenResult::Opened(fe) => fe,
            OpenResult::Waiting(_) => panic!("unexpected wait"),
        }
    }

    #[test]
    fn lifecycle_refcounts_and_clean_end() {
        let m = mgr(FaultSet::none());
        let o = m.owner(811, "TransparentProxy");
        let fe = opened(m.open(&o, &req(1, 50000), OpenMode::NonBlocking));
        // caller + table + id tree
        assert_eq!(fe.refcnt(), 3);
        let key = *fe.key();
        let found = m.find_by_key(&key).unwrap();
        assert_eq!(found.addr(), fe.addr());
        assert_eq!(fe.refcnt(), 4);
        drop(found);
        assert_eq!(m.stats().cache.in_use, 1);
        m.destroy(&o, fe, false);
        assert!(m.find_by_key(&key).is_none());
        assert_eq!(m.stats().cache.in_use, 0);
        assert!(m.panic_record().is_none());
        let log = crate::log::render_log_show(&m.log().records());
        assert!(log.contains("]: flow_entry_alloc               allocated entry \"fe 0x"));
        assert!(log.contains("kernel: SK["));
        assert!(log.contains("flags 0x31<INITED,TRACK,CONNECTED> [fo 0xfffffe2a10065600 ]"));
    }

    #[test]
    fn duplicate_is_eexist_and_lookup_prefers_specific_masks() {
        let m = mgr_limit(FaultSet::none(), 8);
        let o = m.owner(90, "mDNSResponder");
        let a = opened(m.open(&o, &req(1, 5353), OpenMode::NonBlocking));
        let e = m
            .open(&o, &req(2, 5353), OpenMode::NonBlocking)
            .unwrap_err();
        assert_eq!(e.name(), "exists");
        assert_eq!(e.errno(), 17);
        // a 2-tuple listener on another port catches a packet the 5-tuple does not.
        let listener = FlowRequest {
            proto: 6,
            local: None,
            local_port: 8080,
            remote: None,
            remote_port: 0,
            uuid: 3,
            listener: true,
            wait_close: false,
            parent: false,
            parent_uuid: None,
            no_wake_from_sleep: false,
        };
        let l = opened(m.open(&o, &listener, OpenMode::NonBlocking));
        assert_eq!(l.flags_string(), "41<INITED,LISTNER>");
        let pkt = FlowKey::five_tuple(
            6,
            "fe80::2".parse().unwrap(),
            8080,
            "fe80::9".parse().unwrap(),
            6000,
        );
        assert_eq!(m.find_by_key(&pkt).unwrap().addr(), l.addr());
        assert_eq!(m.find_by_key(a.key()).unwrap().addr(), a.addr());
        m.destroy(&o, a, true);
        m.destroy(&o, l, true);
        assert_eq!(m.stats().cache.in_use, 0);
    }

    #[test]
    fn second_destroy_and_duplicate_uuid() {
        let m = mgr(FaultSet::none());
        let o = m.owner(3, "p");
        let fe = opened(m.open(&o, &req(1, 1000), OpenMode::NonBlocking));
        assert_eq!(
            m.open(&o, &req(1, 1001), OpenMode::NonBlocking)
                .unwrap_err()
                .name(),
            "exists"
        );
        let again = fe.clone();
        m.destroy(&o, fe, true);
        // The purge path races in with its own reference: no double accounting.
        m.destroy(&o, again, true);
        assert_eq!(m.stats().cache.in_use, 0);
        assert!(m.panic_record().is_none());
        // Both slots are free again (limit 2).
        let a = opened(m.open(&o, &req(2, 1002), OpenMode::NonBlocking));
        let b = opened(m.open(&o, &req(3, 1003), OpenMode::NonBlocking));
        assert!(m.open(&o, &req(4, 1004), OpenMode::NonBlocking).is_err());
        m.destroy(&o, a, true);
        m.destroy(&o, b, true);
    }

    #[test]
    fn linger_defers_the_last_release() {
        let m = mgr(FaultSet::none());
        let o = m.owner(5, "nsurlsessiond");
        let mut r = req(1, 40000);
        r.wait_close = true;
        let fe = opened(m.open(&o, &r, OpenMode::NonBlocking));
        let addr = fe.addr();
        m.destroy(&o, fe, false);
        assert_eq!(m.stats().lingering, 1);
        assert_eq!(m.stats().cache.in_use, 1);
        assert_eq!(m.reap_linger(0, false), 0);
        let later = m.log().clock().now_ms() + 5000;
        assert_eq!(m.reap_linger(later, false), 1);
        assert_eq!(m.stats().cache.in_use, 0);
        let _ = addr;
    }

    #[test]
    fn parent_and_children() {
        let m = mgr_limit(FaultSet::none(), 8);
        let o = m.owner(77, "quicd");
        let mut pr = req(10, 4433);
        pr.proto = 17;
        pr.parent = true;
        let parent = opened(m.open(&o, &pr, OpenMode::NonBlocking));
        let mut cr = pr.clone();
        cr.parent = false;
        cr.uuid = 11;
        cr.parent_uuid = Some(10);
        let child = opened(m.open(&o, &cr, OpenMode::NonBlocking));
        assert_eq!(parent.child_count(), 1);
        assert_ne!(child.flags() & FLOWENTF_CHILD, 0);
        // child: caller + parent list + id tree
        assert_eq!(child.refcnt(), 3);
        let mut orphan = cr.clone();
        orphan.uuid = 12;
        orphan.parent_uuid = Some(99);
        orphan.local_port = 4434;
        assert_eq!(
            m.open(&o, &orphan, OpenMode::NonBlocking)
                .unwrap_err()
                .name(),
            "no-parent"
        );
        m.destroy(&o, parent, true);
        assert_eq!(child.refcnt(), 2);
        m.destroy(&o, child, true);
        assert_eq!(m.stats().cache.in_use, 0);
    }

    #[test]
    fn limit_waiters_wake_unless_fault() {
        for (faults, expect_wake) in [
            (FaultSet::none(), true),
            (FaultSet::of(&[Fault::NwConnectionEnomem]), false),
        ] {
            let m = mgr(faults);
            let o = m.owner(811, "TransparentProxy");
            let a = opened(m.open(&o, &req(1, 1), OpenMode::Queue));
            let _b = opened(m.open(&o, &req(2, 2), OpenMode::Queue));
            let OpenResult::Waiting(t) = m.open(&o, &req(3, 3), OpenMode::Queue).unwrap() else {
                panic!("expected wait");
            };
            assert_eq!(
                m.open(&o, &req(4, 4), OpenMode::NonBlocking)
                    .unwrap_err()
                    .errno(),
                12
            );
            m.destroy(&o, a, true);
            let c = m.complete_open(&o, t, &req(3, 3)).unwrap();
            assert_eq!(c.is_some(), expect_wake);
        }
    }

    #[test]
    fn over_release_is_an_os_refcnt_underflow() {
        let m = mgr(FaultSet::none());
        let o = m.owner(1, "p");
        let fe = opened(m.open(&o, &req(1, 9), OpenMode::NonBlocking));
        let extra = crate::entry::forge_extra_ref(&fe);
        m.destroy(&o, fe, true);
        drop(extra);
        let p = m.panic_record().unwrap();
        assert!(
            p.message.starts_with("os_refcnt: underflow (rc=0x"),
            "{}",
            p.message
        );
    }

    #[test]
    fn split_release_racing_teardown_is_a_double_free() {
        let m = mgr(FaultSet::none());
        let o = m.owner(1, "p");
        let fe = opened(m.open(&o, &req(1, 9), OpenMode::NonBlocking));
        let divert_ref = fe.clone();
        // divert close: decrement …
        let half = divert_ref.release_split();
        // … flow teardown runs and drops the last reference (frees) …
        m.destroy(&o, fe, true);
        // … divert re-reads 0 and frees again.
        half.finish();
        let p = m.panic_record().unwrap();
        assert!(p.message.starts_with(
            "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x"
        ));
        assert_eq!(p.location, "@skmem_slab.c:646");
    }
}

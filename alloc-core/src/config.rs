//! Cache configuration: the builder behind [`crate::Cache::builder`].

use std::fmt;
use std::ptr::NonNull;

use crate::mode::{MAGTYPES_LP64, MagType, Mode};
use crate::report::{ConfigError, Policy};
use crate::sync::Arc;

/// Object constructor: called with the object's address when an object leaves the slab
/// layer (not when it comes out of a magazine, unless the cache audits). Returning `false`
/// fails the allocation (`skm_sl_alloc_fail`).
pub type Ctor = dyn Fn(NonNull<u8>) -> bool + Send + Sync;
/// Object destructor: called before an object goes back to the slab layer.
pub type Dtor = dyn Fn(NonNull<u8>) + Send + Sync;

/// Audit-mode options beyond XNU's (which records thread, timestamp and a 16-frame stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// Record each object's last alloc and last free: thread number and that thread's
    /// transaction sequence number (default on; a few stores per operation).
    pub transactions: bool,
    /// With `transactions`, also record a millisecond timestamp (XNU's `bc_timestamp`) — one
    /// coarse-clock read per operation, about 10 ns on the reference VM. Default off.
    pub timestamps: bool,
    /// Also capture a backtrace on every alloc and free (default off: microseconds per
    /// operation; meant for reproducing a known bug, not for steady-state runs).
    pub backtraces: bool,
    /// Poison free objects with `0xdeadbeefdeadbeef` (`MCACHE_FREE_PATTERN`) and verify the
    /// pattern when the object is handed out again or its magazine is destroyed. Default on.
    pub poison: bool,
    /// Also fill handed-out objects with `0xbaddcafebaddcafe`
    /// (`MCACHE_UNINITIALIZED_PATTERN`), as mcache does, to expose reads of uninitialised
    /// fields. Default off (8 extra stores per 64-byte allocation).
    pub uninit_fill: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            transactions: true,
            timestamps: false,
            backtraces: false,
            poison: true,
            uninit_fill: false,
        }
    }
}

/// `SKMEM_CACHE_PREFIX`.
pub const CACHE_PREFIX: &str = "skc.";
/// `SKMEM_MIN_SEG_SIZE`: the default slab size.
pub const DEFAULT_SLAB_SIZE: usize = 16 * 1024;
/// `SKMEM_CACHE_ALIGN`: the minimum alignment.
pub const CACHE_ALIGN: usize = 8;
/// `skmem_clear_min`'s default (2 × a 64-byte cache line): caches with objects at most this
/// large get CLEARONFREE.
pub const CLEAR_MIN: usize = 128;
/// `skmem_cache_depot_contention`'s default.
pub const DEPOT_CONTENTION: u32 = 3;

/// Everything a cache is created from. Build it with [`crate::Cache::builder`].
#[derive(Clone)]
pub struct CacheConfig {
    pub(crate) name: String,
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) slab_size: usize,
    pub(crate) mode: Mode,
    pub(crate) policy: Policy,
    pub(crate) audit: AuditOptions,
    pub(crate) ctor: Option<Arc<Ctor>>,
    pub(crate) dtor: Option<Arc<Dtor>>,
    pub(crate) magtypes: Vec<MagType>,
    pub(crate) depot_contention: u32,
    pub(crate) clear_min: usize,
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("align", &self.align)
            .field("slab_size", &self.slab_size)
            .field("mode", &self.mode)
            .field("policy", &self.policy)
            .field("audit", &self.audit)
            .field("ctor", &self.ctor.is_some())
            .field("dtor", &self.dtor.is_some())
            .field("magtypes", &self.magtypes)
            .field("depot_contention", &self.depot_contention)
            .finish()
    }
}

impl CacheConfig {
    /// A configuration for objects of `size` bytes named `skc.<name>` (the prefix is added
    /// unless `name` already has it). Defaults: alignment 8, 16 KiB slabs, no flags,
    /// [`Policy::Panic`], the LP64 magazine table.
    pub fn new(name: &str, size: usize) -> CacheConfig {
        let name = if name.starts_with(CACHE_PREFIX) {
            name.to_string()
        } else {
            format!("{CACHE_PREFIX}{name}")
        };
        CacheConfig {
            name,
            size,
            align: CACHE_ALIGN,
            slab_size: DEFAULT_SLAB_SIZE,
            mode: Mode::empty(),
            policy: Policy::Panic,
            audit: AuditOptions::default(),
            ctor: None,
            dtor: None,
            magtypes: MAGTYPES_LP64.to_vec(),
            depot_contention: DEPOT_CONTENTION,
            clear_min: CLEAR_MIN,
        }
    }

    /// Object alignment (rounded up to at least 8; must be a power of two).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Slab size in bytes (rounded up to a power of two that holds at least one object).
    pub fn slab_size(mut self, bytes: usize) -> Self {
        self.slab_size = bytes;
        self
    }

    /// Sets the mode flags (replacing earlier ones).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What happens on detected misuse.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Audit options (used when the mode has [`Mode::AUDIT`]).
    pub fn audit_options(mut self, audit: AuditOptions) -> Self {
        self.audit = audit;
        self
    }

    /// Object constructor.
    pub fn ctor(mut self, f: impl Fn(NonNull<u8>) -> bool + Send + Sync + 'static) -> Self {
        self.ctor = Some(Arc::new(f));
        self
    }

    /// Object destructor.
    pub fn dtor(mut self, f: impl Fn(NonNull<u8>) + Send + Sync + 'static) -> Self {
        self.dtor = Some(Arc::new(f));
        self
    }

    /// Replaces the magazine-type table (for tiny models and experiments). The initial type
    /// is still chosen with XNU's rule; resizing walks the table in order.
    pub fn magtypes(mut self, table: &[MagType]) -> Self {
        self.magtypes = table.to_vec();
        self
    }

    /// Depot contention (failed depot try-locks between two updates) above which a DYNAMIC
    /// cache moves to the next magazine type (`skmem_cache_depot_contention`, default 3).
    pub fn depot_contention(mut self, n: u32) -> Self {
        self.depot_contention = n;
        self
    }

    /// `skmem_clear_min`: caches with objects at most this large get CLEARONFREE (default 128;
    /// 0 disables the automatic flag).
    pub fn clear_min(mut self, bytes: usize) -> Self {
        self.clear_min = bytes;
        self
    }

    /// The full cache name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the configuration and derives the sizes (`skmem_cache_create`'s rules).
    pub(crate) fn geometry(&self) -> Result<Geometry, ConfigError> {
        if self.name.len() > 63 {
            return Err(ConfigError::NameTooLong(self.name.clone()));
        }
        if self.size == 0 {
            return Err(ConfigError::ZeroSize(self.name.clone()));
        }
        if !self.align.is_power_of_two() {
            return Err(ConfigError::BadAlign {
                name: self.name.clone(),
                align: self.align,
            });
        }
        if self.magtypes.is_empty() || self.magtypes.iter().any(|t| t.magsize == 0) {
            return Err(ConfigError::BadMagTable(self.name.clone()));
        }
        let too_large = || ConfigError::TooLarge {
            name: self.name.clone(),
            size: self.size,
            slab: self.slab_size,
        };
        let bufalign = self.align.max(CACHE_ALIGN);
        let chunksize = self
            .size
            .checked_next_multiple_of(8)
            .and_then(|c| c.checked_next_multiple_of(bufalign))
            .ok_or_else(too_large)?;
        let slabsize = self
            .slab_size
            .max(chunksize)
            .max(bufalign)
            .checked_next_power_of_two()
            .ok_or_else(too_large)?;
        if slabsize > 1 << 30 {
            return Err(too_large());
        }
        let chunks = slabsize / chunksize;
        if chunks > 1 << 24 {
            return Err(too_large());
        }
        Ok(Geometry {
            bufsize: self.size,
            bufalign,
            chunksize,
            slabsize,
            chunks,
        })
    }
}

/// Sizes derived at creation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) bufsize: usize,
    pub(crate) bufalign: usize,
    pub(crate) chunksize: usize,
    pub(crate) slabsize: usize,
    pub(crate) chunks: usize,
}

//! # alloc-core: an skmem-style object cache that catches misuse
//!
//! A user-space model of XNU Skywalk's `skmem_cache` (bsd/skywalk/mem), named after it
//! where that helps a reader, that is as fast as the real thing in production mode and, in
//! AUDIT mode, catches double, invalid and use-after free at the point of misuse with the
//! kernel's own report lines.
//!
//! ## Layers
//! * **Slab layer** ([`Cache`] internals, `skmem_slab.c`): slabs of 16 KiB (configurable),
//!   slab-size aligned, one bufctl per object, partial and "empty" (fully allocated) lists
//!   with XNU's discipline (a new slab goes to the head of the partial list; the first
//!   object back to a full slab moves it to the **tail** of the partial list; a slab is
//!   destroyed when its last object returns), and the allocated-address hash with XNU's
//!   index function and rescale rule.
//! * **Magazine layer**: each thread has, per cache, a loaded and a previous magazine
//!   (`cp_rounds == -1`: nothing loaded), backed by a depot of full and empty magazines
//!   (`ml_total`, `ml_min`, `ml_reaplimit`). Magazine sizes come from XNU's LP64 table
//!   ([`MAGTYPES_LP64`]); DYNAMIC caches move to the next type under depot contention.
//! * **Audit** ([`Mode::AUDIT`]): an atomic state byte per object checked on every free,
//!   poisoning with `0xdeadbeefdeadbeef` verified on hand-out, last alloc/free transaction
//!   per object. Reports follow a [`Policy`]: panic (default), abort, or return a [`Report`].
//! * **Typed front**: [`TypedCache<T>`] / [`TypedObj`] for misuse-free ordinary code.
//!
//! The design (and how it differs from the kernel's) is written down in [`implementation`].
//!
//! ## Public API at a glance
//! * [`Cache::builder`]`(name, size)` → [`CacheConfig`] (`.align()`, `.slab_size()`,
//!   `.mode()`, `.policy()`, `.audit_options()`, `.ctor()`, `.dtor()`, `.magtypes()`,
//!   `.depot_contention()`, `.clear_min()`) → `.build()` → [`Cache`].
//! * [`Cache::alloc`], `unsafe` [`Cache::free`], safe [`Cache::try_free`] (AUDIT caches),
//!   [`Cache::alloc_batch`], `unsafe` [`Cache::free_batch`].
//! * Maintenance: [`Cache::purge`], [`Cache::reap`], [`Cache::reap_now`],
//!   [`Cache::update`], [`Cache::resize`], [`Cache::flush_thread_cache`],
//!   [`Cache::destroy`] (or drop).
//! * Audit knobs: [`AuditOptions`] (`transactions`, `timestamps`, `backtraces`, `poison`,
//!   `uninit_fill`).
//! * Introspection: [`Cache::stats`] ([`CacheStats`], `sca_*` fields), [`Cache::dump`],
//!   [`skmem_dump_all`], [`Cache::take_reports`], [`Cache::outstanding`].
//! * Fork: handlers are installed automatically; [`prefork`] / [`postfork`] are exposed for
//!   processes that fork by other means.
//!
//! ## Example
//! ```
//! use alloc_core::{Cache, Mode, Policy, ReportKind, TypedCache};
//!
//! // Production mode: magazines, no checks on the fast path.
//! let cache = Cache::builder("flow.entry", 64).build()?;
//! let p = cache.alloc()?;
//! // SAFETY: `p` came from this cache and is freed once.
//! unsafe { cache.free(p)? };
//!
//! // Audit mode returning reports: a double free is caught at the second free,
//! // although the first copy still sits in this thread's magazine.
//! let audited = Cache::builder("flow.entry.audit", 64)
//!     .mode(Mode::AUDIT)
//!     .policy(Policy::Report)
//!     .build()?;
//! let q = audited.alloc()?;
//! audited.try_free(q.as_ptr())?;
//! let err = audited.try_free(q.as_ptr()).unwrap_err();
//! assert!(err.to_string().starts_with(
//!     "skmem_slab_free_locked: attempt to free invalid or already-freed obj 0x"));
//!
//! // The typed front: no way to misuse it from safe code.
//! let flows: TypedCache<[u64; 4]> = TypedCache::new("flow.typed")?;
//! let mut f = flows.alloc([1, 2, 3, 4])?;
//! f[0] = 7;
//! assert_eq!(*f, [7, 2, 3, 4]);
//! drop(f);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Safety and correctness
//! All `unsafe` code is in four places, each with its invariant:
//! * slab memory (`slab.rs`): objects are addressed through the slab's own pointer, so the
//!   crate is clean under Miri's strict provenance; a freed address is only compared, never
//!   dereferenced;
//! * poison fill/verify (`audit.rs`): only on whole chunks the state byte (or the slab lock)
//!   gives us exclusive use of;
//! * the per-thread magazine table (`cpu.rs`): only its owning thread touches it, never
//!   re-entrantly (user constructors/destructors run outside it);
//! * the radix map and fork guard (`radix.rs`, `registry.rs`): nodes and audit tables are
//!   type-stable until the cache is dropped.
//!
//! Checked by unit tests (also under Miri, `ci/miri.sh`), loom models of the magazine/depot
//! exchange, resize and purge races and the prefork lock order (`ci/loom.sh`), and a real
//! `fork()` test.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod audit;
mod cache;
mod config;
mod cpu;
mod fork;
pub mod implementation;
mod magazine;
mod mode;
mod radix;
mod registry;
mod report;
mod slab;
mod stats;
mod sync;
mod typed;

#[cfg(test)]
mod tests;

pub use audit::{FREE_PATTERN, UNINITIALIZED_PATTERN};
pub use cache::Cache;
pub use config::{
    AuditOptions, CACHE_ALIGN, CACHE_PREFIX, CLEAR_MIN, CacheConfig, Ctor, DEFAULT_SLAB_SIZE,
    DEPOT_CONTENTION, Dtor,
};
pub use fork::{postfork, prefork};
pub use magazine::MagListStats;
pub use mode::{MAGTYPES_LP64, MagType, Mode, SKM_MODE_BITS, format_bits, initial_magtype};
pub use report::{
    AllocError, CacheName, ConfigError, FreeError, InvalidReason, Policy, Report, ReportKind,
    Transaction, TxnKind,
};
pub use slab::{HASH_INITIAL, HASH_LIMIT};
pub use stats::{CacheStats, skmem_dump_all};
pub use typed::{TypedCache, TypedObj};

/// `SKMEM_CACHE_UPDATE_INTERVAL`: how often XNU runs `skmem_cache_update` (call
/// [`Cache::update`] at about this period).
pub const UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(11);

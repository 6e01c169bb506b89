//! The one place that chooses between std and loom primitives.
//!
//! Everything concurrent in this crate imports from here, never from `std::sync`
//! (enforced by `clippy.toml`'s `disallowed-types`). Under `--cfg loom` the loom model
//! checker's versions are re-exported; otherwise std's, wrapped so that call sites are the
//! same in both builds (loom's `UnsafeCell::with`/`with_mut` API, a poison-free `lock`).
//!
//! The crate compiles under plain `--cfg loom` (not only `cfg(all(test, loom))`), because
//! downstream crates' loom builds compile `alloc-core` with that cfg as well.
#![allow(clippy::disallowed_types)]

/// Newtype wrappers over `imp`'s atomics (`imp` = std's or loom's atomic module) with the subset of the API this crate uses.
macro_rules! atomic_wrappers {
    () => {
        atomic_wrappers!(@one AtomicU8, u8);
        atomic_wrappers!(@one AtomicU32, u32);
        atomic_wrappers!(@one AtomicI32, i32);
        atomic_wrappers!(@one AtomicU64, u64);
        atomic_wrappers!(@one AtomicUsize, usize);
        atomic_wrappers!(@ptr);
    };
    (@one $name:ident, $t:ty) => {
        #[derive(Debug)]
        pub(crate) struct $name(imp::$name);
        #[allow(dead_code)]
        impl $name {
            pub(crate) fn new(v: $t) -> Self {
                Self(imp::$name::new(v))
            }
            #[inline(always)]
            pub(crate) fn load(&self, o: Ordering) -> $t {
                self.0.load(o)
            }
            #[inline(always)]
            pub(crate) fn store(&self, v: $t, o: Ordering) {
                self.0.store(v, o)
            }
            #[inline(always)]
            pub(crate) fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                self.0.fetch_add(v, o)
            }
            #[inline(always)]
            pub(crate) fn compare_exchange(
                &self,
                cur: $t,
                new: $t,
                ok: Ordering,
                err: Ordering,
            ) -> Result<$t, $t> {
                self.0.compare_exchange(cur, new, ok, err)
            }
        }
    };
    (@ptr) => {
        #[derive(Debug)]
        pub(crate) struct AtomicPtr<T>(imp::AtomicPtr<T>);
        impl<T> AtomicPtr<T> {
            pub(crate) fn new(p: *mut T) -> Self {
                Self(imp::AtomicPtr::new(p))
            }
            #[inline(always)]
            pub(crate) fn load(&self, o: Ordering) -> *mut T {
                self.0.load(o)
            }
            #[inline(always)]
            pub(crate) fn store(&self, p: *mut T, o: Ordering) {
                self.0.store(p, o)
            }
            #[inline(always)]
            pub(crate) fn compare_exchange(
                &self,
                cur: *mut T,
                new: *mut T,
                ok: Ordering,
                err: Ordering,
            ) -> Result<*mut T, *mut T> {
                self.0.compare_exchange(cur, new, ok, err)
            }
        }
    };
}
#[allow(unused_imports)]
use atomic_wrappers;

#[cfg(loom)]
mod inner {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::MutexGuard;
    /// std's `Arc` even under loom: caches are shared through `Arc<Inner>` method receivers
    /// and `Arc<dyn Fn>` callbacks, which loom's `Arc` does not support. Every loom object
    /// inside is still dropped within its model execution (thread exit drops the entries).
    pub(crate) use std::sync::Arc;

    /// loom's atomics, wrapped like the std side (see `atomic_wrappers!`).
    pub(crate) mod atomic {
        use loom::sync::atomic as imp;
        pub(crate) use std::sync::atomic::Ordering;
        atomic_wrappers!();
    }

    /// loom's mutex with the std side's poison-free API.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(loom::sync::Mutex::new(t))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    /// Whether the process-global cache registry (fork handlers, `skmem_dump_all`,
    /// other-cache attribution) is active. Loom models build their own registries.
    pub(crate) const GLOBAL_REGISTRY: bool = false;

    /// Bits per level of the audit radix map: tiny under loom (few loom atomics per node;
    /// most addresses then take the locked fallback, which the models exercise).
    pub(crate) const RADIX_LEVEL_BITS: usize = 3;
}

#[cfg(not(loom))]
mod inner {
    pub(crate) use std::sync::{Arc, MutexGuard};

    /// std's atomics behind newtypes, so that clippy's `disallowed-types` can tell this
    /// module's (allowed) uses from direct ones elsewhere.
    pub(crate) mod atomic {
        use std::sync::atomic as imp;
        pub(crate) use std::sync::atomic::Ordering;
        atomic_wrappers!();
    }

    /// std's mutex, poison-free: a panic under a cache lock (a `Panic`-policy report raised
    /// from a user callback, say) must not make every later call panic too. State guarded
    /// by these mutexes is consistent at every point a panic can occur.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(t: T) -> Self {
            Self(std::sync::Mutex::new(t))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        #[inline]
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    /// Whether the process-global cache registry (fork handlers, `skmem_dump_all`,
    /// other-cache attribution) is active. Loom models build their own registries.
    pub(crate) const GLOBAL_REGISTRY: bool = true;

    /// Bits per level of the audit radix map (three levels cover 36 bits of slab number).
    #[cfg(not(miri))]
    pub(crate) const RADIX_LEVEL_BITS: usize = 12;
    /// Under Miri, small nodes (interpreting 4096-entry nodes is slow); addresses beyond
    /// the covered range take the locked fallback, which Miri then exercises too.
    #[cfg(miri)]
    pub(crate) const RADIX_LEVEL_BITS: usize = 6;

    /// `std::cell::UnsafeCell` with loom's closure-based API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        pub(crate) const fn new(data: T) -> Self {
            Self(std::cell::UnsafeCell::new(data))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared raw pointer to the contents.
        #[allow(dead_code)]
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub(crate) use inner::*;

/// Locks `m` (poison ignored).
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// Tries to lock `m` without blocking (poison ignored). `None` means "held by someone else".
#[inline]
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    m.try_lock()
}

/// Declares a thread-local: `const`-initialised with std, loom's `thread_local!` under loom.
macro_rules! tls {
    ($(#[$m:meta])* static $name:ident : $t:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$m])* static $name: $t = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$m])* static $name: $t = $init; }
    };
}
pub(crate) use tls;

/// Process-wide recycling allocator of small cache ids (indices into each thread's magazine
/// table). It is taken only at cache creation and destruction, never on an alloc/free path,
/// and is deliberately a std mutex under loom as well: ids are not part of any model.
pub(crate) mod ids {
    use std::sync::Mutex;

    static FREE: Mutex<(usize, Vec<usize>)> = Mutex::new((0, Vec::new()));

    /// Takes the lowest recycled id, or a fresh one.
    pub(crate) fn take() -> usize {
        let mut g = FREE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = g.1.pop() {
            return id;
        }
        let id = g.0;
        g.0 += 1;
        id
    }

    /// A process-unique depot generation number (see `Depot::generation`): every cache draws
    /// its generations from this one sequence, so a thread cache synchronised with one
    /// cache's generation can never match another cache's.
    pub(crate) fn next_generation() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// A process-unique thread number (1-based), for audit records.
    pub(crate) fn next_thread() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Saturates at u32::MAX: audit records keep 32 bits of thread number (threads past
        // the 4 294 967 295th share the last number rather than wrap to "none").
        NEXT.fetch_add(1, Ordering::Relaxed)
            .min(u64::from(u32::MAX))
    }

    /// The allocator's lock, held across `fork()` by the prepare handler.
    #[derive(Debug)]
    pub(crate) struct Held(#[allow(dead_code)] std::sync::MutexGuard<'static, (usize, Vec<usize>)>);

    /// Takes the allocator's lock (see [`Held`]).
    pub(crate) fn hold() -> Held {
        Held(FREE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Returns `id` for reuse.
    pub(crate) fn give(id: usize) {
        let mut g = FREE.lock().unwrap_or_else(|e| e.into_inner());
        g.1.push(id);
    }
}

//! The crate's one switch between `std` and `loom` synchronisation primitives.
//!
//! Everything concurrent in this crate imports from here, never from `std::sync`
//! (enforced by `clippy.toml`). Under `--cfg loom` the same names are backed by loom's
//! models, so the loom tests in `src/tests/loom_*.rs` explore the real code.
//!
//! The wrappers drop lock poisoning (a panic while holding a lock is already a bug that
//! the test reports) so call sites read like the kernel code they model.
#![allow(clippy::disallowed_types)]

#[cfg(not(loom))]
use std::sync as imp;

#[cfg(loom)]
use loom::sync as imp;

pub(crate) use imp::Arc;

/// Re-exported memory orderings (they are plain enums in both worlds).
pub(crate) use std::sync::atomic::Ordering;

/// A mutual-exclusion lock without poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

/// Guard returned by [`Mutex::lock`].
pub(crate) type MutexGuard<'a, T> = imp::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// Creates an unlocked mutex.
    pub(crate) fn new(value: T) -> Self {
        Self(imp::Mutex::new(value))
    }

    /// Locks, ignoring poisoning.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tries to lock without blocking.
    #[allow(dead_code)]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// A reader-writer lock without poisoning.
#[derive(Debug, Default)]
pub(crate) struct RwLock<T>(imp::RwLock<T>);

impl<T> RwLock<T> {
    /// Creates an unlocked lock.
    pub(crate) fn new(value: T) -> Self {
        Self(imp::RwLock::new(value))
    }

    /// Shared access.
    pub(crate) fn read(&self) -> imp::RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access.
    pub(crate) fn write(&self) -> imp::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

impl Condvar {
    /// Creates a condition variable.
    pub(crate) fn new() -> Self {
        Self(imp::Condvar::new())
    }

    /// Blocks until notified (spurious wake-ups possible: callers loop).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes one waiter.
    #[allow(dead_code)]
    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

macro_rules! atomic_int {
    ($name:ident, $int:ty) => {
        /// Atomic integer wrapper (std or loom).
        #[derive(Debug, Default)]
        pub(crate) struct $name(imp::atomic::$name);

        #[allow(dead_code)]
        impl $name {
            /// Creates the atomic.
            pub(crate) fn new(v: $int) -> Self {
                Self(imp::atomic::$name::new(v))
            }
            /// Atomic load.
            pub(crate) fn load(&self, o: Ordering) -> $int {
                self.0.load(o)
            }
            /// Atomic store.
            pub(crate) fn store(&self, v: $int, o: Ordering) {
                self.0.store(v, o)
            }
            /// Atomic add, returning the previous value.
            pub(crate) fn fetch_add(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_add(v, o)
            }
            /// Atomic subtract, returning the previous value.
            pub(crate) fn fetch_sub(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_sub(v, o)
            }
            /// Atomic or, returning the previous value.
            pub(crate) fn fetch_or(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_or(v, o)
            }
            /// Atomic and, returning the previous value.
            pub(crate) fn fetch_and(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_and(v, o)
            }
            /// Atomic swap.
            pub(crate) fn swap(&self, v: $int, o: Ordering) -> $int {
                self.0.swap(v, o)
            }
            /// Compare-and-exchange.
            pub(crate) fn compare_exchange(
                &self,
                cur: $int,
                new: $int,
                s: Ordering,
                f: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(cur, new, s, f)
            }
        }
    };
}

atomic_int!(AtomicU32, u32);
atomic_int!(AtomicU64, u64);
atomic_int!(AtomicUsize, usize);

/// Atomic boolean wrapper (std or loom).
#[derive(Debug, Default)]
pub(crate) struct AtomicBool(imp::atomic::AtomicBool);

impl AtomicBool {
    /// Creates the atomic.
    pub(crate) fn new(v: bool) -> Self {
        Self(imp::atomic::AtomicBool::new(v))
    }
    /// Atomic load.
    pub(crate) fn load(&self, o: Ordering) -> bool {
        self.0.load(o)
    }
    /// Atomic store.
    pub(crate) fn store(&self, v: bool, o: Ordering) {
        self.0.store(v, o)
    }
    /// Atomic swap.
    #[allow(dead_code)]
    pub(crate) fn swap(&self, v: bool, o: Ordering) -> bool {
        self.0.swap(v, o)
    }
}

/// Atomic pointer wrapper (std or loom).
#[derive(Debug)]
pub(crate) struct AtomicPtr<T>(imp::atomic::AtomicPtr<T>);

impl<T> AtomicPtr<T> {
    /// A null pointer.
    pub(crate) fn null() -> Self {
        Self(imp::atomic::AtomicPtr::new(std::ptr::null_mut()))
    }
    /// Atomic load.
    pub(crate) fn load(&self, o: Ordering) -> *mut T {
        self.0.load(o)
    }
    /// Atomic store.
    pub(crate) fn store(&self, v: *mut T, o: Ordering) {
        self.0.store(v, o)
    }
}

/// The read side of the lock-free flow table lookups: an epoch pin (`crossbeam-epoch`).
/// Nodes the table unlinks are destroyed only after every guard that could still see
/// them is gone.
#[cfg(not(loom))]
pub(crate) use crossbeam_epoch::{Guard, pin};

/// Loom stand-in for the epoch guard: under the model the table keeps every unlinked node
/// until it is dropped, so a pin has nothing to do.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Guard(());

/// Loom stand-in for `crossbeam_epoch::pin`.
#[cfg(loom)]
pub(crate) fn pin() -> Guard {
    Guard(())
}

/// A hint inside a retry loop (loom: yield so the model can make progress).
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Thread spawning (std or loom).
#[cfg(all(loom, test))]
pub(crate) use loom::thread;

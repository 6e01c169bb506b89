//! The safe typed front: [`TypedCache<T>`] hands out [`TypedObj`] handles that own their
//! object, so ordinary code cannot double free, free a foreign pointer or use after free.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::cache::Cache;
use crate::config::CacheConfig;
use crate::report::{AllocError, ConfigError};
use crate::stats::CacheStats;

/// A cache of `T`s. Objects are written on allocation and dropped when their handle drops
/// (no constructed-state caching: `T`'s own `Drop` always runs).
pub struct TypedCache<T> {
    cache: Cache,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCache")
            .field("cache", &self.cache)
            .finish()
    }
}

impl<T> TypedCache<T> {
    /// A cache named `skc.<name>` sized and aligned for `T`.
    pub fn new(name: &str) -> Result<TypedCache<T>, ConfigError> {
        Self::with_config(CacheConfig::new(name, 1))
    }

    /// A cache from `cfg` (mode, policy, slab size, magazine table…); object size and
    /// alignment are taken from `T`, and any ctor/dtor is dropped (the handle runs `T`'s).
    pub fn with_config(mut cfg: CacheConfig) -> Result<TypedCache<T>, ConfigError> {
        cfg.size = size_of::<T>().max(1);
        cfg.align = align_of::<T>();
        cfg.ctor = None;
        cfg.dtor = None;
        Ok(TypedCache {
            cache: cfg.build()?,
            _t: PhantomData,
        })
    }

    /// Allocates an object holding `value`.
    pub fn alloc(&self, value: T) -> Result<TypedObj<'_, T>, AllocError> {
        let p = self.cache.alloc_typed()?.cast::<T>();
        // SAFETY: `p` is a fresh object of this cache: at least size_of::<T>() bytes,
        // aligned for T (the cache was created with T's layout), owned by us.
        unsafe { p.as_ptr().write(value) };
        Ok(TypedObj {
            ptr: p,
            cache: self,
        })
    }

    /// The underlying cache (statistics, purge, reap, dump).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Statistics of the underlying cache.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// An owned `T` living in a [`TypedCache`]; dropping it drops the `T` and frees the object.
pub struct TypedObj<'c, T> {
    ptr: NonNull<T>,
    cache: &'c TypedCache<T>,
}

// SAFETY: a TypedObj owns its T exclusively (like Box<T>); freeing from another thread is
// supported by the cache (which is Sync).
unsafe impl<T: Send> Send for TypedObj<'_, T> {}
// SAFETY: shared access only hands out &T.
unsafe impl<T: Sync> Sync for TypedObj<'_, T> {}

impl<T> TypedObj<'_, T> {
    /// The object's address (for logging and for exercising misuse detection).
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// Moves the value out and frees the object.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the handle owns an initialised T; ManuallyDrop stops Drop from dropping it
        // again, and the object is freed right below.
        let v = unsafe { this.ptr.as_ptr().read() };
        this.release();
        v
    }

    fn release(&self) {
        // SAFETY: the object came from alloc_typed of this cache and this handle owns it;
        // it is freed once (from Drop or into_inner, never both).
        let r = unsafe { self.cache.cache.free_typed(self.ptr.cast()) };
        if let Err(r) = r {
            crate::sync::lock(&self.cache.cache.inner.reports).push(*r);
        }
    }
}

impl<T> Deref for TypedObj<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the handle owns an initialised T for its whole life.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for TypedObj<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for deref, and &mut self gives exclusive access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for TypedObj<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedObj").field(&**self).finish()
    }
}

impl<T> Drop for TypedObj<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the handle owns an initialised T, dropped exactly once here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        self.release();
    }
}

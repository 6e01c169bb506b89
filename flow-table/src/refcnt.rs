//! `os_refcnt` (libkern/os/refcnt.c): a reference count that catches misuse.
//!
//! The kernel panics with `os_refcnt: underflow (rc=%p)`, `os_refcnt: overflow (rc=%p)` or
//! `os_refcnt: attempted resurrection (rc=%p)`; here the check returns a [`RefcntError`]
//! carrying that exact message, and the caller decides whether to panic.

use std::fmt;

use crate::sync::{AtomicU32, Ordering};

/// `OS_REFCNT_MAX_COUNT`: counts at or above this are an overflow.
pub const OS_REFCNT_MAX_COUNT: u32 = 0x0FFF_FFFF;

/// What went wrong, with the address of the refcount (`rc=%p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefcntError {
    /// A release of a count that is already 0.
    Underflow(u64),
    /// A retain past [`OS_REFCNT_MAX_COUNT`].
    Overflow(u64),
    /// A retain of a count that already reached 0.
    Resurrection(u64),
}

impl fmt::Display for RefcntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefcntError::Underflow(rc) => write!(f, "os_refcnt: underflow (rc={rc:#x})"),
            RefcntError::Overflow(rc) => write!(f, "os_refcnt: overflow (rc={rc:#x})"),
            RefcntError::Resurrection(rc) => {
                write!(f, "os_refcnt: attempted resurrection (rc={rc:#x})")
            }
        }
    }
}

impl std::error::Error for RefcntError {}

/// An `os_refcnt_t`: initialised to 1 by [`OsRefcnt::new`] (`os_ref_init`).
#[derive(Debug)]
pub struct OsRefcnt {
    count: AtomicU32,
    /// The address printed in messages (`rc=%p`).
    addr: u64,
}

impl OsRefcnt {
    /// `os_ref_init`: count 1, with `addr` used in messages.
    pub fn new(addr: u64) -> Self {
        OsRefcnt {
            count: AtomicU32::new(1),
            addr,
        }
    }

    /// The current count (racy, for diagnostics).
    pub fn get(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// `os_ref_retain`.
    pub fn retain(&self) -> Result<(), RefcntError> {
        let old = self.count.fetch_add(1, Ordering::Relaxed);
        if old == 0 {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(RefcntError::Resurrection(self.addr));
        }
        if old >= OS_REFCNT_MAX_COUNT {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(RefcntError::Overflow(self.addr));
        }
        Ok(())
    }

    /// `os_ref_retain_try`: retains unless the count already reached 0 (returns false
    /// then, without touching it). Lock-free lookups use it: the entry they found may be
    /// on its way out, which is a miss, not a resurrection.
    pub fn try_retain(&self) -> Result<bool, RefcntError> {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Ok(false);
            }
            if cur >= OS_REFCNT_MAX_COUNT {
                return Err(RefcntError::Overflow(self.addr));
            }
            match self
                .count
                .compare_exchange(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(true),
                Err(actual) => cur = actual,
            }
        }
    }

    /// `os_ref_release`: returns the new count (0 means the caller must free).
    pub fn release(&self) -> Result<u32, RefcntError> {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Err(RefcntError::Underflow(self.addr));
            }
            match self
                .count
                .compare_exchange(cur, cur - 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(cur - 1),
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn kernel_messages() {
        let rc = OsRefcnt::new(0xfffffe0012345678);
        assert_eq!(rc.release(), Ok(0));
        let e = rc.release().unwrap_err();
        assert_eq!(
            e.to_string(),
            "os_refcnt: underflow (rc=0xfffffe0012345678)"
        );
        let e = rc.retain().unwrap_err();
        assert_eq!(
            e.to_string(),
            "os_refcnt: attempted resurrection (rc=0xfffffe0012345678)"
        );
        assert_eq!(rc.get(), 0);
    }

    #[test]
    fn try_retain_refuses_zero_and_catches_overflow() {
        let rc = OsRefcnt::new(0x20);
        assert_eq!(rc.try_retain(), Ok(true));
        assert_eq!(rc.get(), 2);
        assert_eq!(rc.release(), Ok(1));
        assert_eq!(rc.release(), Ok(0));
        assert_eq!(rc.try_retain(), Ok(false));
        assert_eq!(rc.get(), 0);
        rc.count.store(OS_REFCNT_MAX_COUNT, Ordering::Relaxed);
        assert_eq!(rc.try_retain(), Err(RefcntError::Overflow(0x20)));
    }

    #[test]
    fn overflow_is_caught() {
        let rc = OsRefcnt::new(0x10);
        rc.count.store(OS_REFCNT_MAX_COUNT, Ordering::Relaxed);
        assert_eq!(rc.retain(), Err(RefcntError::Overflow(0x10)));
        assert_eq!(rc.get(), OS_REFCNT_MAX_COUNT);
    }
}

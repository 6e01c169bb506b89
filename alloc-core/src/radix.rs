//! A lock-free three-level radix map from slab number (`addr >> log2(slabsize)`; slabs are
//! slab-size aligned) to the slab's [`AuditSlab`]. Audit-mode frees use it to validate an
//! arbitrary address without taking a lock. Writers (slab create/destroy) hold the slab lock;
//! readers take no lock. Interior nodes are installed with a compare-exchange and freed only
//! when the radix is dropped (with its cache), so a reader never follows a dangling pointer.

use std::ptr;

use crate::audit::AuditSlab;
use crate::sync::RADIX_LEVEL_BITS as BITS;
use crate::sync::atomic::{AtomicPtr, Ordering};

const FANOUT: usize = 1 << BITS;
const MASK: usize = FANOUT - 1;

/// One level of the map: a fixed array, so a level costs one dependent load.
#[derive(Debug)]
#[repr(transparent)]
struct Node<T> {
    slots: [AtomicPtr<T>; FANOUT],
}

impl<T> Node<T> {
    /// A node built directly on the heap (no 32 KiB stack temporary).
    fn new() -> Box<Node<T>> {
        let v: Box<[AtomicPtr<T>]> = (0..FANOUT)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        let raw = Box::into_raw(v).cast::<Node<T>>();
        // SAFETY: the slice has exactly FANOUT elements, and Node<T> is a repr(transparent)
        // wrapper of [AtomicPtr<T>; FANOUT], which has the slice's layout and alignment.
        unsafe { Box::from_raw(raw) }
    }
}

type Leaf = Node<AuditSlab>;
type Interior = Node<Leaf>;

/// The map. Keys beyond the covered range are refused by [`Radix::set`]; callers then fall
/// back to a locked lookup.
#[derive(Debug)]
pub(crate) struct Radix {
    shift: usize,
    root: Box<Node<Interior>>,
}

impl Radix {
    /// A map for slabs of `1 << shift` bytes.
    pub(crate) fn new(shift: usize) -> Radix {
        Radix {
            shift,
            root: Node::new(),
        }
    }

    #[inline(always)]
    fn split(&self, addr: usize) -> Option<(usize, usize, usize)> {
        let key = addr >> self.shift;
        let i0 = key >> (2 * BITS);
        (i0 < FANOUT).then_some((i0, (key >> BITS) & MASK, key & MASK))
    }

    /// The slab covering `addr`, if any.
    #[inline(always)]
    pub(crate) fn get(&self, addr: usize) -> Option<&AuditSlab> {
        let (i0, i1, i2) = self.split(addr)?;
        let mid = self.root.slots.get(i0)?.load(Ordering::Acquire);
        if mid.is_null() {
            return None;
        }
        // SAFETY: non-null interior pointers come from `Box::into_raw` in `set` and are freed
        // only in `Drop`, which cannot run while `&self` is borrowed.
        let mid = unsafe { &*mid };
        let leaf = mid.slots.get(i1)?.load(Ordering::Acquire);
        if leaf.is_null() {
            return None;
        }
        // SAFETY: as above, for leaves.
        let leaf = unsafe { &*leaf };
        let slab = leaf.slots.get(i2)?.load(Ordering::Acquire);
        if slab.is_null() {
            return None;
        }
        // SAFETY: audit slabs stored here are owned by the cache's slab layer, never freed
        // before the cache (which owns this radix) is dropped; they are type-stable.
        Some(unsafe { &*slab })
    }

    /// Maps the slab at `addr` to `slab` (null unmaps). Returns false if `addr` is outside
    /// the covered range.
    pub(crate) fn set(&self, addr: usize, slab: *mut AuditSlab) -> bool {
        let Some((i0, i1, i2)) = self.split(addr) else {
            return false;
        };
        let Some(root_slot) = self.root.slots.get(i0) else {
            return false;
        };
        let mid = install(root_slot, Interior::new);
        // SAFETY: see `get`.
        let mid = unsafe { &*mid };
        let Some(mid_slot) = mid.slots.get(i1) else {
            return false;
        };
        let leaf = install(mid_slot, Leaf::new);
        // SAFETY: see `get`.
        let leaf = unsafe { &*leaf };
        match leaf.slots.get(i2) {
            Some(s) => {
                s.store(slab, Ordering::Release);
                true
            }
            None => false,
        }
    }
}

/// Returns the node in `slot`, installing a fresh one if it is empty.
fn install<T>(slot: &AtomicPtr<T>, make: impl FnOnce() -> Box<T>) -> *mut T {
    let cur = slot.load(Ordering::Acquire);
    if !cur.is_null() {
        return cur;
    }
    let fresh = Box::into_raw(make());
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => {
            // SAFETY: `fresh` came from Box::into_raw above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
            winner
        }
    }
}

impl Drop for Radix {
    fn drop(&mut self) {
        for s in self.root.slots.iter() {
            let mid = s.load(Ordering::Acquire);
            if mid.is_null() {
                continue;
            }
            // SAFETY: interior nodes come from Box::into_raw and are freed only here, once.
            let mid = unsafe { Box::from_raw(mid) };
            for l in mid.slots.iter() {
                let leaf = l.load(Ordering::Acquire);
                if !leaf.is_null() {
                    // SAFETY: as above, for leaves.
                    drop(unsafe { Box::from_raw(leaf) });
                }
            }
        }
    }
}

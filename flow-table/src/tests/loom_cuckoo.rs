//! Cuckoo moves racing lookups: a node being moved is never missed.

use super::run_model;
use crate::cuckoo::{CuckooTable, alt_hash};
use crate::sync::{Arc, thread};

/// A hash whose primary bucket is `p` and alternate `a` in a 4-bucket table.
fn hash_for(p: u32, a: u32, skip: usize) -> u32 {
    (0u32..)
        .filter(|h| h & 3 == p && alt_hash(*h) & 3 == a)
        .nth(skip)
        .unwrap()
}

#[test]
fn move_racing_lookup_never_misses() {
    run_model("move_racing_lookup", || {
        let t = Arc::new(CuckooTable::<u32>::with_capacity(24));
        let mut moved = None;
        // Bucket 0 full of nodes whose other bucket is 1; bucket 2 full.
        for i in 0..6 {
            let h = hash_for(0, 1, i);
            t.add(h, &Arc::new(h)).unwrap();
            moved.get_or_insert(h);
            let h2 = hash_for(2, 3, i);
            t.add(h2, &Arc::new(h2)).unwrap();
        }
        let watched = moved.unwrap();
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            let hit = t2.find(watched, |n| *n == watched, |n| **n);
            assert_eq!(hit, Some(watched));
        });
        // Both of the new node's buckets (0 and 2) are full: the add moves a node 0 -> 1.
        let n = hash_for(0, 2, 0);
        t.add(n, &Arc::new(n)).unwrap();
        reader.join().unwrap();
        assert_eq!(t.len(), 13);
        t.health_check().unwrap();
    });
}

#[test]
fn resize_racing_lookup_never_misses() {
    run_model("resize_racing_lookup", || {
        let t = Arc::new(CuckooTable::<u32>::with_capacity(6));
        // One bucket, full: the next add must grow the table.
        for h in 0..6u32 {
            t.add(h, &Arc::new(h)).unwrap();
        }
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            assert_eq!(t2.find(3, |n| *n == 3, |n| **n), Some(3));
        });
        t.add(6, &Arc::new(6)).unwrap();
        reader.join().unwrap();
        assert_eq!(t.resizes(), 1);
        assert_eq!(t.capacity(), 12);
        t.health_check().unwrap();
    });
}

//! Cuckoo moves, resizes and removals racing the lock-free lookups: a node being moved is
//! never missed, and a node being removed is either found (and stays readable while the
//! reader is pinned) or missed, never torn.

use super::run_model;
use crate::cuckoo::{CuckooTable, ReadGuard, alt_hash};
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

#[test]
fn removal_racing_lookup_sees_node_or_miss_and_keeps_neighbours() {
    run_model("removal_racing_lookup", || {
        let t = Arc::new(CuckooTable::<u32>::with_capacity(6));
        let gone = Arc::new(7u32);
        let stays = Arc::new(8u32);
        // Same hash: both in one bucket, told apart only by the node compare.
        t.add(3, &gone).unwrap();
        t.add(3, &stays).unwrap();
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            // The borrowed form: no reference count taken, the node stays readable while
            // pinned even if its removal completes meanwhile.
            let guard = ReadGuard::pin();
            if let Some(v) = t2.find_in(&guard, 3, |n| *n == 7) {
                assert_eq!(*v, 7);
            }
            assert_eq!(t2.find(3, |n| *n == 8, |n| **n), Some(8));
        });
        let handed_back = t.del(3, &gone).unwrap();
        assert!(Arc::ptr_eq(&handed_back, &gone));
        reader.join().unwrap();
        assert_eq!(t.find(3, |n| *n == 7, |n| **n), None);
        assert_eq!(t.len(), 1);
        t.health_check().unwrap();
    });
}

#[test]
fn removal_and_move_racing_lookup_never_misses_a_live_node() {
    run_model("removal_and_move_racing_lookup", || {
        let t = Arc::new(CuckooTable::<u32>::with_capacity(24));
        // Bucket 0 full of nodes whose other bucket is 1; bucket 2 full.
        let mut first = None;
        for i in 0..6 {
            let h = hash_for(0, 1, i);
            t.add(h, &Arc::new(h)).unwrap();
            first.get_or_insert(h);
            let h2 = hash_for(2, 3, i);
            t.add(h2, &Arc::new(h2)).unwrap();
        }
        let watched = first.unwrap();
        let victim = hash_for(2, 3, 5);
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            assert_eq!(t2.find(watched, |n| *n == watched, |n| **n), Some(watched));
        });
        // A new node whose buckets (0 and 2) are both full moves a node 0 -> 1, then a
        // removal frees a slot in bucket 2.
        let n = hash_for(0, 2, 0);
        t.add(n, &Arc::new(n)).unwrap();
        let victim_node = t.find(victim, |v| *v == victim, Arc::clone).unwrap();
        t.del(victim, &victim_node).unwrap();
        reader.join().unwrap();
        assert_eq!(t.len(), 12);
        t.health_check().unwrap();
    });
}

/// The move a lookup can actually miss without the retry: the watched node sits in its
/// *alternate* bucket and moves to its primary, which the lookup scans first. (The models
/// above move nodes from primary to alternate, which a primary-first scan always sees.)
#[test]
fn move_into_primary_racing_lookup_never_misses() {
    run_model("move_into_primary_racing_lookup", || {
        let t = Arc::new(CuckooTable::<u32>::with_capacity(24));
        let full: Vec<Arc<u32>> = (0..6).map(|i| Arc::new(hash_for(1, 3, i))).collect();
        for n in &full {
            t.add(**n, n).unwrap();
        }
        // Bucket 1 is full, so the watched node (primary 1, alternate 0) lands in 0.
        let watched = hash_for(1, 0, 0);
        t.add(watched, &Arc::new(watched)).unwrap();
        for i in 0..5 {
            let h = hash_for(0, 2, i);
            t.add(h, &Arc::new(h)).unwrap();
            let h2 = hash_for(2, 3, i);
            t.add(h2, &Arc::new(h2)).unwrap();
        }
        let h2 = hash_for(2, 3, 5);
        t.add(h2, &Arc::new(h2)).unwrap();
        // Room in bucket 1: the next add's BFS moves the watched node 0 -> 1.
        t.del(*full[0], &full[0]).unwrap();
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            assert_eq!(t2.find(watched, |n| *n == watched, |n| **n), Some(watched));
        });
        let n = hash_for(0, 2, 5);
        t.add(n, &Arc::new(n)).unwrap();
        reader.join().unwrap();
        assert_eq!(t.find(watched, |n| *n == watched, |n| **n), Some(watched));
        assert_eq!(t.len(), 18);
        t.health_check().unwrap();
    });
}

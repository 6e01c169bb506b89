//! A real `fork()` while other threads hold cache locks: the child must allocate and free.

use crate::sync::atomic::{AtomicUsize, Ordering};
use std::ptr::NonNull;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::sync::lock;
use crate::{Cache, Mode};

fn churn(c: &Cache, n: usize) {
    let v: Vec<NonNull<u8>> = (0..n).filter_map(|_| c.alloc().ok()).collect();
    for p in v {
        // SAFETY: allocated just above from `c`, freed once.
        let _ = unsafe { c.free(p) };
    }
}

/// Waits for `pid` up to `limit`; kills it and returns `None` if it does not exit.
fn wait_exit(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            });
        }
        if start.elapsed() > limit {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn fork_while_other_threads_hold_cache_locks() {
    let slabby = StdArc::new(
        Cache::builder("t.fork.slab", 64)
            .mode(Mode::NOMAGAZINES)
            .build()
            .unwrap(),
    );
    let mags = StdArc::new(
        Cache::builder("t.fork.mag", 128)
            .mode(Mode::DYNAMIC)
            .build()
            .unwrap(),
    );
    let stop = StdArc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..3 {
        let (s, m, stop) = (slabby.clone(), mags.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while stop.load(Ordering::Relaxed) == 0 {
                churn(&s, 20);
                churn(&m, 300);
                if i == 0 {
                    m.purge();
                    m.update();
                }
                if i == 1 {
                    // Hold the slab and depot locks for a while, as a slow path would.
                    let g = lock(&s.inner.slab);
                    let d = lock(&m.inner.depot);
                    std::thread::sleep(Duration::from_micros(200));
                    drop(d);
                    drop(g);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(20));
    for round in 0..20 {
        // SAFETY: the child only runs our cache code (whose locks the atfork handlers made
        // consistent) and malloc (glibc's own fork handling), then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            churn(&slabby, 50);
            churn(&mags, 500);
            mags.purge();
            let fresh = Cache::new("t.fork.child", 32).unwrap();
            churn(&fresh, 100);
            drop(fresh);
            let ok = slabby.stats().sca_sl_alloc > 0;
            // SAFETY: _exit is async-signal-safe and skips atexit/destructors.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let code = wait_exit(pid, Duration::from_secs(20));
        assert_eq!(code, Some(0), "child of round {round} deadlocked or failed");
    }
    stop.store(1, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

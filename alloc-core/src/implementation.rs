//! Design notes (documentation only).
//!
//! # Why not XNU's structure verbatim
//! XNU's CPU layer takes a mutex (`cp_lock`) on every allocation and free. In user space an
//! uncontended mutex costs about 10 ns per alloc+free pair — as much as glibc malloc —
//! so a faithful copy cannot beat mimalloc (7–8 ns). The magazine fast path here takes no
//! lock and performs no atomic read-modify-write:
//!
//! * **Thread caches instead of CPU caches.** Each thread has a table indexed by a small
//!   per-cache id (recycled on destroy). An entry holds an `Arc` of the cache (so the cache's
//!   memory outlives every thread that still caches its objects) and an `Arc<CpuSlot>`, which
//!   is XNU's `skmem_cpu_cache`: `cp_loaded`, `cp_ploaded`, `cp_rounds` (−1: nothing loaded),
//!   `cp_prounds`, `cp_magsize` (0: layer off), `cp_alloc`, `cp_free`. The owner updates it
//!   with plain loads and stores and publishes `cp_rounds` with a relaxed store (no
//!   lock prefix) so that statistics and destroy can count cached rounds. The fast path
//!   reaches the slot through a 256-entry, const-initialised thread-local index addressed
//!   by a `u8` (no bounds check; ids that do not fit take the table).
//! * **One word per operation.** `cp_rounds` (low 32 bits) and the number of pops since
//!   the last magazine change (high 32 bits) share one `u64`: a pop adds `2^32 − 1`, a push
//!   adds 1, and `cp_alloc`/`cp_free` are settled from it (frees = pops + the change of
//!   `cp_rounds`) whenever a magazine changes or statistics are read; the 2^32nd pop
//!   carries out of the word and is folded in at once. A separate counter increment per
//!   operation measured about 20 % of a pair. "Nothing loaded" is a zero-length magazine
//!   (no allocation), so pop and push need one bounds check each: `rounds − 1` as `u32`
//!   wraps for an empty magazine, and a loaded magazine of the current generation has
//!   exactly `magsize` rounds. Rounds are `NonNull`, so a pop needs no null test.
//! * **Generations identify the cache too.** Depot generations come from one process-wide
//!   sequence, so a thread cache whose generation matches the cache's current one belongs
//!   to that cache: the fast path compares only the generation (the table entry of a
//!   destroyed cache whose id was recycled can never match), not the slot's owner.
//! * **Audit dispatch off the production path.** The `Cache` handle carries the audit flag,
//!   tested before the magazine pop (so AUDIT caches never reach the unchecked pop/push);
//!   the audit entry points are `#[cold]` so that production code is laid out for itself.
//! * **Batches in bulk.** `alloc_batch` copies the loaded magazine's rounds out in one go
//!   (top first, the order single pops give) and `free_batch` copies in as many as fit,
//!   with one magazine exchange between runs.
//! * **Generations instead of cross-CPU locking.** Purge and resize bump the depot's
//!   generation (under `skm_dp_lock`) and a relaxed-read hint. A thread cache whose
//!   generation is stale flushes its magazines (destructor + slab free for every round, as
//!   `skmem_magazine_destroy`) before its next operation on that cache, or at thread exit.
//!   Every depot exchange re-checks the generation under the depot lock, so a stale
//!   magazine (e.g. of the pre-resize size) can never enter the depot. `reap_now` without
//!   purge asks threads to drop their previous magazine at their next depot visit.
//! * **Thread exit** returns full magazines to `skm_full`, empty ones to `skm_empty`, and
//!   frees the rounds of partially filled ones to the slab layer.
//!
//! The algorithms around the fast path are XNU's: `skmem_cpu_reload`, the alloc loop
//! (loaded → swap with previous → full magazine from the depot, the previous one going to
//! the empty list → slab), the free loop (loaded → swap if previous is empty → empty
//! magazine from the depot, the previous full one going to the full list → a new magazine
//! offered to the depot → slab), depot contention counted on failed depot try-locks in
//! DYNAMIC mode, `skmem_cache_update` (hash rescale, working-set update, resize when the
//! contention delta exceeds 3 and the chunk size is below `mt_maxbuf`, then
//! `contention_prev = contention + INT_MAX`), working-set reap of `MIN(ml_reaplimit,
//! ml_min)` magazines, purge = detach, `ws_zero`, `ws_reap`, `skm_cpu_mag_purge++`.
//!
//! # Slab layer
//! As XNU: one bufctl per object kept outside the object, partial list / "empty" (fully
//! allocated) list with new slabs at the head and returning full slabs at the tail,
//! destruction when `sl_refcnt` drops to 0, `sl_bufinuse` ± `sl_chunks` on create/destroy,
//! and the allocated-address hash `(addr >> shift) & mask` with `shift = flsll(chunksize)-1`,
//! initial 64 / limit 8192 buckets, head insertion, rescale when `bufinuse > 2*mask` (and
//! below the limit) or `bufinuse < mask/2` (and above the initial size) to
//! `clamp(max(64, 1 << (flsll(3*bufinuse+4) - 2)), 8192)` unless within a factor of two.
//! Slab memory is allocated outside the slab lock. Slabs are slab-size aligned.
//!
//! # Audit mode (stronger than XNU)
//! XNU checks a free against the allocated-address hash only when it reaches the slab
//! layer, so a double free whose first copy is still in a magazine goes unnoticed. Here every
//! object has an atomic state byte (SLAB_FREE, CACHED, IN_USE, TYPED). Every free looks the
//! address up lock-free (a per-cache radix map from slab number to the slab's type-stable
//! audit table; a locked slab scan as fallback), rejects foreign and interior addresses and
//! other caches' objects, and moves the byte IN_USE → CACHED with one compare-exchange:
//! a double free fails it at the call, racing double frees cannot both win. Free objects are
//! poisoned with `MCACHE_FREE_PATTERN` (through the cache's own pointer, never the caller's),
//! verified when handed out again (and when a magazine is destroyed), and handed out filled
//! with `MCACHE_UNINITIALIZED_PATTERN`, as mcache does. Because cached objects are poisoned,
//! an AUDIT cache's constructor runs on every allocation and its destructor on every free.
//! The last alloc and free of each object are recorded: thread number and that thread's
//! transaction sequence number (a thread-local counter), one word per direction in a
//! 32-byte, 32-aligned record with the state byte (thread numbers saturate at `u32::MAX`,
//! the word keeps the sequence number's low 32 bits), plus — with
//! `AuditOptions::timestamps` — XNU's millisecond `bc_timestamp` from a coarse clock
//! (about 10 ns per read on the reference VM, so it is opt-in), plus — with
//! `AuditOptions::backtraces` — a captured backtrace (tens of microseconds per operation).
//!
//! The audit fast path runs on the thread cache too: the thread remembers the last slab it
//! touched (audit table + base, revalidated against the table's base on each use), so most
//! frees skip the radix walk; then push, one compare-exchange (the push is taken back if it
//! fails), poison, record. Allocation peeks at the top round, checks its poison and finds
//! its record before it pops, so a declined fast path has changed nothing and the full
//! path pops and reports a damaged object itself. Batches in AUDIT mode run the same
//! per-object steps in runs that visit the thread cache once. The fast path is taken
//! when the audit options are the defaults (poison and transactions on, no timestamps, no
//! backtraces) and
//! there is no constructor/destructor to run (one precomputed flag per direction); other
//! configurations take the full path. The compare-exchange (a locked instruction, about
//! 1.5 ns of a 15–19 ns audited pair when replaced by a plain load and store in an
//! experiment) is kept deliberately: without it two threads racing to free the same
//! object could both succeed. Objects of exactly one 64-byte line are poisoned and
//! verified without a loop.
//!
//! # Batch
//! `alloc_batch` takes magazine rounds first (loaded in bulk, previous, full magazines from
//! the depot); in BATCH mode the rest comes from the slab layer in one lock hold per slab
//! (`skmem_slab_batch_alloc`), constructed afterwards; at the first constructor failure the
//! rest return to the slab layer and `sl_alloc_fail` grows by their number, as in XNU.
//! `free_batch` pushes rounds into the loaded magazine in bulk. In AUDIT mode both check
//! every object (the fast path in runs, the full path for any object it declines, which
//! also reports misuse); `try_free_batch` is the safe form of `free_batch`, stopping at the
//! first misuse with the objects before it freed.
//!
//! # Destroy
//! Destroy purges, then counts objects allocated from slabs minus rounds cached in the depot
//! and in other threads' magazines; a non-zero count raises
//! `skmem_cache_destroy: '<name>' (0x…) not empty (N unfreed)`. XNU prints
//! `skm_sl_bufinuse` there (buffers in live slabs); N here is the number of objects actually
//! unfreed, which is what a reader of the line wants. Other threads keep the cache's memory
//! alive (through their table entry) until they exit or reuse the id.

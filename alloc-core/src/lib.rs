//! alloc-core: an skmem-style object cache (slab layer, per-CPU magazines, depot, audit).

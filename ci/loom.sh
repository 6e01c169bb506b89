#!/usr/bin/env bash
# Runs every crate's loom models (`src/tests/loom_*.rs`, compiled only under --cfg loom).
# Used by people and by .ci/run alike. Local smoke run: LOOM_MAX_PREEMPTIONS=1 ci/loom.sh
# Extra arguments are passed to the test binaries (e.g. a module filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export LOOM_MAX_BRANCHES="${LOOM_MAX_BRANCHES:-10000}"
export LOOM_CHECKPOINT_INTERVAL="${LOOM_CHECKPOINT_INTERVAL:-1}"
# A separate target dir: loom's RUSTFLAGS would otherwise invalidate the normal build cache.
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
cargo test --release --lib -p alloc-core -p flow-table -- "$@"

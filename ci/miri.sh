#!/usr/bin/env bash
# Runs the workspace's unsafe code under Miri:
#  - alloc-core's whole test suite (strict provenance);
#  - flow-table's lock-free cuckoo table tests. crossbeam-epoch (its reclamation) needs
#    Tree Borrows and permissive provenance, and its global collector's queued garbage is
#    reported as a leak at exit (rust-lang/miri#1618), hence those flags for this part only;
#    our own reclamation is checked by the tests through Arc counts.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add miri rust-src --toolchain nightly >/dev/null
cargo +nightly miri setup >/dev/null
MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" \
  cargo +nightly miri test -p alloc-core "$@"
MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
  cargo +nightly miri test -p flow-table --lib cuckoo

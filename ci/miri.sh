#!/usr/bin/env bash
# Runs alloc-core's tests under Miri (the crate that holds the workspace's unsafe code).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add miri rust-src --toolchain nightly >/dev/null
cargo +nightly miri setup >/dev/null
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
cargo +nightly miri test -p alloc-core "$@"

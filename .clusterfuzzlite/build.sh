#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build: every cargo-fuzz target with the engine's sanitizer
# flags (cargo fuzz picks them up from $SANITIZER / RUSTFLAGS), each with its committed
# corpus as the seed corpus and the shared dictionary where one applies.
cd "$SRC/flowslab/fuzz"
cargo fuzz build -O
out_dir=target/x86_64-unknown-linux-gnu/release
for t in $(cargo fuzz list); do
  cp "$out_dir/$t" "$OUT/"
  if [ -d "corpus/$t" ]; then
    (cd "corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
  fi
  case "$t" in
    crashlog_parse_*|crashlog_roundtrip) cp dicts/crashlog.dict "$OUT/$t.dict" ;;
  esac
done

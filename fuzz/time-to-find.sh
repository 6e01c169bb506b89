#!/usr/bin/env bash
# Time to find: for each injected flow-table fault and each allocator misuse kind, fuzz
# until the oracle fires, RUNS times, from the committed seeds and from an empty corpus,
# and print the median wall-clock seconds (a Markdown table for fuzz/README.md).
#
#   fuzz/time-to-find.sh            # RUNS=3 LIMIT=120 (seconds per run)
#   RUNS=5 LIMIT=60 fuzz/time-to-find.sh
#
# Each run copies the seeds to a scratch directory (the committed corpus is never
# written), uses -seed=<run> so runs differ, and counts as found only when the target
# stops with its oracle's message for that fault / kind.
set -euo pipefail
cd "$(dirname "$0")"
RUNS="${RUNS:-3}"
LIMIT="${LIMIT:-120}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
unset CARGO_TARGET_DIR
cargo "+$TOOLCHAIN" fuzz build -s none alloc_ops >/dev/null 2>&1
cargo "+$TOOLCHAIN" fuzz build -s none flow_ops >/dev/null 2>&1
bin=target/x86_64-unknown-linux-gnu/release
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# one_run TARGET ENVVAR VALUE EXPECT SEEDED RUN -> prints seconds, or ">LIMIT"
one_run() {
  local target=$1 var=$2 value=$3 expect=$4 seeded=$5 run=$6
  local dir="$work/$target-$value-$seeded-$run"
  rm -rf "$dir"; mkdir -p "$dir/corpus" "$dir/art"
  if [ "$seeded" = seeds ]; then cp "corpus/$target"/* "$dir/corpus/"; fi
  local t0 t1
  t0=$(date +%s.%N)
  env "$var=$value" timeout $((LIMIT + 30)) "$bin/$target" -seed="$run" \
    -max_total_time="$LIMIT" -artifact_prefix="$dir/art/" "$dir/corpus" >"$dir/log" 2>&1 || true
  t1=$(date +%s.%N)
  if grep -q -- "$expect" "$dir/log"; then
    printf '%.1f\n' "$(echo "$t1 - $t0" | bc)"
  else
    echo ">$LIMIT"
  fi
}

# Median of a list where ">LIMIT" (not found) sorts last.
median() {
  sed "s/^>.*/999999/" | sort -g | awk -v lim="$LIMIT" \
    '{a[NR]=$1} END {m=a[int((NR+1)/2)]; if (m == 999999) print ">" lim; else print m}'
}

row() {
  local target=$1 var=$2 value=$3 expect=$4 label=$5
  local s e
  s=$(for r in $(seq 1 "$RUNS"); do one_run "$target" "$var" "$value" "$expect" seeds "$r"; done | tr '\n' ' ')
  e=$(for r in $(seq 1 "$RUNS"); do one_run "$target" "$var" "$value" "$expect" empty "$r"; done | tr '\n' ' ')
  printf '| %s | `%s=%s` | %s | %s | %s | %s |\n' "$label" "$var" "$value" \
    "$(echo "$s" | tr ' ' '\n' | grep -v '^$' | median)" "$s" \
    "$(echo "$e" | tr ' ' '\n' | grep -v '^$' | median)" "$e"
}

echo "| fault / misuse kind | switch | median from seeds (s) | runs | median from empty corpus (s) | runs |"
echo "|---|---|---|---|---|---|"
for f in skmem-slab-double-free nw-connection-enomem wifip2pd-fd-leak-emfile \
         nesm-vpn-start-storm atfork-nw-path-prepare-deadlock flow-divert-no-control-units; do
  row flow_ops FLOWSLAB_FUZZ_FAULTS "$f" "($f injected)" "flow_ops: $f"
done
for k in double-free foreign interior other-cache modified-after-free not-empty; do
  row alloc_ops FLOWSLAB_FUZZ_STOP_ON "$k" "alloc_ops: found $k" "alloc_ops: $k"
done

#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ and runs each one briefly from
# its committed corpus, without sanitizers (`-s none`, see fuzz/README.md). A crash,
# an oracle failure, a timeout (>10 s per input) or an RSS over 1 GiB fails the script.
#
# Needs only rustup's nightly toolchain; installs cargo-fuzz if it is missing.
# Budget: cargo-fuzz install (~2 min, once), ~2 min of building, then FUZZ_SECS (default
# 10) per target; measured 5 min in all with 15 s per target (cargo-fuzz installed) on 2
# cores under load 11. New corpus entries go to a temporary directory, never into
# fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECS="${FUZZ_SECS:-10}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
cargo "+$TOOLCHAIN" fuzz build -s none

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in $(cargo "+$TOOLCHAIN" fuzz list); do
  mkdir -p "$work/$t"
  dict=()
  case "$t" in
    crashlog_*) dict=(-dict=dicts/crashlog.dict) ;;
  esac
  start=$(date +%s)
  if cargo "+$TOOLCHAIN" fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$FUZZ_SECS" -timeout=10 -rss_limit_mb=1024 "${dict[@]}" \
      -artifact_prefix="$work/$t/" >"$work/$t.log" 2>&1; then
    printf '%-26s ok   %3ss  %s\n' "$t" "$(( $(date +%s) - start ))" \
      "$(grep -E '^Done' "$work/$t.log" | tail -1)"
  else
    printf '%-26s FAIL\n' "$t"
    grep -E 'panicked|SUMMARY|Test unit written|_ops:|crashlog_' "$work/$t.log" | head -20 || true
    # Keep the reproducer where CI can pick it up.
    mkdir -p "artifacts/$t"
    cp "$work/$t"/crash-* "$work/$t"/timeout-* "$work/$t"/oom-* "artifacts/$t/" 2>/dev/null || true
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz smoke failed: ${failed[*]} (reproducers in fuzz/artifacts/<target>/)"
  exit 1
fi
echo "fuzz smoke: all targets ok"

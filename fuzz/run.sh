#!/usr/bin/env bash
# Runs one fuzz target for a number of seconds, under nice, in libFuzzer's fork mode (crashes
# are saved to artifacts/<target>/ and fuzzing goes on). The working corpus grows in
# corpus-work/<target> (ignored by git), seeded from the committed corpus/<target>;
# `./run.sh <target> min` minimizes it back into corpus/<target>. Environment: FUZZ_ARGS adds
# libFuzzer flags (e.g. -dict=json.dict), FUZZ_LOG names the log (default logs/<target>.log).
# Build first: RUSTC_BOOTSTRAP=1 cargo fuzz build -a -O   (stable toolchain; -a: overflow checks)
set -euo pipefail
cd "$(dirname "$0")"
target=$1
secs=${2:-600}
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$target
mkdir -p "corpus-work/$target" "artifacts/$target" logs
if [ "$secs" = min ]; then
  tmp=$(mktemp -d)
  "$bin" -merge=1 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 "$tmp" \
    "corpus/$target" "corpus-work/$target" >"logs/$target-merge.log" 2>&1
  rm -f corpus/"$target"/*
  cp "$tmp"/* "corpus/$target/"
  rm -rf "$tmp"
  exit 0
fi
cp -n corpus/"$target"/* "corpus-work/$target/" 2>/dev/null || true
exec nice -n 19 "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
  -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
  -max_len=65536 -artifact_prefix="artifacts/$target/" ${FUZZ_ARGS:-} \
  "corpus-work/$target" >"${FUZZ_LOG:-logs/$target.log}" 2>&1

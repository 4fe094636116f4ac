#!/usr/bin/env bash
# Fuzz every cargo-fuzz target in fuzz/ (libFuzzer), each for its share of
# SECONDS_TOTAL (default 60: CI's smoke run, after the tests). Fails on the
# first crash, overflow, timeout or out-of-memory, leaving the input in
# fuzz/artifacts/<target>/ (see the README's "Fuzzing": fix it, and commit
# the input under fuzz/regressions/<target>/).
#   scripts/fuzz.sh [SECONDS_TOTAL]
#   FUZZ_TARGETS="engine tunnel" scripts/fuzz.sh 1200   some targets only
#   FUZZ_RELEASE=1 scripts/fuzz.sh 5400                 optimised, with AddressSanitizer
# The corpora (fuzz/corpus/<target>/, not committed) are seeded from pcaps/
# by fuzz/seed.py and grow from run to run; the regression inputs are read
# too. Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-60}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Short runs build unoptimised and without AddressSanitizer: a quarter of
# the build time, and the panics, overflows (overflow checks are on in
# fuzz/Cargo.toml) and timeouts of safe Rust are found all the same.
if [ -n "${FUZZ_RELEASE:-}" ]; then
  build=(--release)
else
  build=(--dev --sanitizer none)
fi

read -r -a targets <<<"${FUZZ_TARGETS:-$(cd fuzz/fuzz_targets && ls ./*.rs | sed 's|^\./||; s|\.rs$||' | tr '\n' ' ')}"
share=$((total / ${#targets[@]}))
((share >= 1)) || share=1

start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: built in $((SECONDS - start)) s; ${#targets[@]} targets, ${share} s each" >&2

python3 fuzz/seed.py fuzz/corpus --per-target "${FUZZ_SEEDS:-60}" >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  echo "fuzz: $t, ${share} s" >&2
  extra=()
  # A gzip capture is decompressed on a thread of its own that ends a little
  # after the file is closed: not a leak, though LeakSanitizer sees one.
  [ "$t" = pcap_file ] && extra+=(-detect_leaks=0)
  if ! cargo fuzz run "${build[@]}" "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
    -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" 2>"fuzz/$t.log"; then
    tail -n 60 "fuzz/$t.log" >&2
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/ (log fuzz/$t.log)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "fuzz/$t.log" | sed "s/^/fuzz: $t /" >&2 || true
  rm -f "fuzz/$t.log"
done
echo "fuzz: all ${#targets[@]} targets passed in $((SECONDS - start)) s" >&2

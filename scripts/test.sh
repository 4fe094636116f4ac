#!/usr/bin/env bash
# Every check CI makes: formatting, lints, unit and integration tests (real
# captures, tshark agreement, live capture in network namespaces, a real
# Prometheus), the deploy/ checks, and a minute of fuzzing (every cargo-fuzz
# target of fuzz/). Run as root (namespaces, capture).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --deps
bash scripts/setup.sh --check-toolchain
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --release -- --test-threads 2
bash deploy/check.sh
bash scripts/fuzz.sh 60

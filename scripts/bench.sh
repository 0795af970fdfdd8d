#!/usr/bin/env bash
# Benchmark guest-driven generation against a direct llama-cpp-2 loop (and llama.cpp's own
# llama-bench, built by scripts/build-llama-tools.sh), then the CPU kernel variants against the
# generic one and against a -march=native build (scripts/build-native-peer.sh); write
# docs/BENCHMARKS.md.
# Usage: scripts/bench.sh [tabagent-bench options, e.g. --reps 7 --tokens 128]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
scripts/setup.sh
scripts/build-llama-tools.sh || echo "bench: llama-bench unavailable; running without that peer"
scripts/build-native-peer.sh || echo "bench: the native peer did not build; running without it"
cargo run --release --locked -p tabagent-bench -- --write docs/BENCHMARKS.md "$@"

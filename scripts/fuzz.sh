#!/usr/bin/env bash
# Fuzz the GGUF header reader for SECS seconds (default 60) with cargo fuzz (libFuzzer).
# cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
# Usage: scripts/fuzz.sh [SECS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}-fuzz"
cd "$root/host/gguf"
corpus="$CARGO_TARGET_DIR/corpus/header"
mkdir -p "$corpus"
RUSTC_BOOTSTRAP=1 cargo fuzz run header "$corpus" -- \
  -max_total_time="$secs" -dict=fuzz/gguf.dict -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1

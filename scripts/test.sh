#!/usr/bin/env bash
# Run the whole test suite: unit tests, and end-to-end tests of real guest components against the
# real SmolLM2 model through tabagent-host. Installs what it needs first (scripts/setup.sh).
# One profile (release) serves tests, demo and benchmarks, so everything is built once; the target
# folder lives outside the clone ($CARGO_TARGET_DIR, default ~/.cache/tabagent/target).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
scripts/setup.sh
# The CLI tests run the real binary.
cargo build --release --locked -p tabagent-host
export TABAGENT_HOST_BIN="$CARGO_TARGET_DIR/release/tabagent-host"
cargo test --release --locked --workspace --no-fail-fast "$@"

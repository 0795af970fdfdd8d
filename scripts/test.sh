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
# The CLI tests run the real binary; the remote-engine tests run llama.cpp's own llama-server.
cargo build --release --locked -p tabagent-host
scripts/build-llama-tools.sh
export TABAGENT_HOST_BIN="$CARGO_TARGET_DIR/release/tabagent-host"
# One test at a time: llama.cpp's CPU threads spin at every barrier, so two generations that each
# use every core (two tests, or a test and the host it started) slow each other down many times
# over on a 2-core machine. Run one by one, the suite takes less time, not more.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-1}"
cargo test --release --locked --workspace --no-fail-fast "$@"

#!/usr/bin/env bash
# Benchmark guest-driven generation against a direct llama-cpp-2 loop (and llama.cpp's own
# llama-bench, built by scripts/build-llama-tools.sh), then the CPU kernel variants against the
# generic one and against a -march=native build (scripts/build-native-peer.sh), then many guests
# on one model (continuous batching) against llama-server -np N --kv-unified, then start-up
# against llama-completion -n 1; write
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
# Many guests on one model: continuous batching against llama-server -np N --kv-unified.
python="$(scripts/python-env.sh)"
cargo build --release --locked -p tabagent-host
cargo build --release --locked --target wasm32-wasip2 -p openai-server
tools="${TABAGENT_LLAMA_TOOLS:-$HOME/.cache/tabagent/llama-tools}"
threads="$("$CARGO_TARGET_DIR/release/tabagent-host" hw --json | "$python" -c 'import json,sys; print(json.load(sys.stdin)["cpu"]["physical_cores"])')"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$python" benches/batch_load.py --write docs/BENCHMARKS.md --machine "$cpu, $(nproc) threads" \
  --threads "$threads" --host-bin "$CARGO_TARGET_DIR/release/tabagent-host" \
  --guest "$CARGO_TARGET_DIR/wasm32-wasip2/release/openai_server.wasm" \
  --llama-server "$tools/bin/llama-server" --model "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
# Start-up: one run to its first token against llama-completion -n 1.
cargo build --release --locked --target wasm32-wasip2 -p chat
"$python" benches/startup.py --write docs/BENCHMARKS.md --machine "$cpu, $(nproc) threads" \
  --threads "$threads" --host-bin "$CARGO_TARGET_DIR/release/tabagent-host" \
  --chat "$CARGO_TARGET_DIR/wasm32-wasip2/release/chat.wasm" \
  --llama-completion "$tools/bin/llama-completion" --model "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"

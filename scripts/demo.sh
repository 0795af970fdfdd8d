#!/usr/bin/env bash
# The main job: build tabagent-host and the example chat app, fetch the default model, and chat.
# Usage: scripts/demo.sh ["your prompt"]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
scripts/setup.sh
echo "demo: building tabagent-host (a first build of wasmtime and llama.cpp takes ~15 minutes)..."
cargo build --release --locked -p tabagent-host
cargo build --release --locked --target wasm32-wasip2 -p chat
prompt="${1:-Explain in three sentences what WebAssembly is.}"
echo "demo: $ tabagent-host run chat.wasm --model smollm2=models/SmolLM2-135M-Instruct.Q4_1.gguf -- \"$prompt\""
echo
exec "$CARGO_TARGET_DIR/release/tabagent-host" run "$CARGO_TARGET_DIR/wasm32-wasip2/release/chat.wasm" \
  --model smollm2=models/SmolLM2-135M-Instruct.Q4_1.gguf -- "$prompt"

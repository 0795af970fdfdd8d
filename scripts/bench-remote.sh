#!/usr/bin/env bash
# Load run of the remote engine: `tabagent-host serve` with the openai-server guest, its model
# granted over two llama.cpp `llama-server` endpoints (scripts/build-llama-tools.sh); a steady run
# and one where an endpoint is killed and comes back. Writes its section of docs/BENCHMARKS.md.
# Usage: scripts/bench-remote.sh [remote_load.py options, e.g. --requests 160 --workers 8]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
scripts/setup.sh
python="$(scripts/python-env.sh)"
scripts/build-llama-tools.sh
tools="${TABAGENT_LLAMA_TOOLS:-$HOME/.cache/tabagent/llama-tools}"
cargo build --release --locked -p tabagent-host
cargo build --release --locked --target wasm32-wasip2 -p openai-server
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$python" benches/remote_load.py --write docs/BENCHMARKS.md --machine "$cpu, $(nproc) threads" \
  --host-bin "$CARGO_TARGET_DIR/release/tabagent-host" \
  --guest "$CARGO_TARGET_DIR/wasm32-wasip2/release/openai_server.wasm" \
  --llama-server "$tools/bin/llama-server" \
  --model "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"

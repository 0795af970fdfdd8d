#!/usr/bin/env bash
# Load benchmark of `tabagent-host serve` with the openai-server guest, side by side with
# llama.cpp's `llama-server` (scripts/build-llama-tools.sh) on the same model and requests in the
# same run; writes its section of docs/BENCHMARKS.md.
# Usage: scripts/bench-serve.sh [serve_load.py options, e.g. --requests 200 --workers 8]
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
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
workers=8
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_up() { for _ in $(seq 300); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "bench-serve: $1 did not start" >&2; exit 1; }
"$CARGO_TARGET_DIR/release/tabagent-host" serve "$CARGO_TARGET_DIR/wasm32-wasip2/release/openai_server.wasm" \
  --listen 127.0.0.1:18181 --model "smollm2=$model" --max-running "$workers" --parallel "$workers" >/dev/null 2>/tmp/bench-serve-tabagent.log &
pids+=($!); tabagent_pid=$!
# The same context per request as the host's sessions get (4096), for each of the workers, and
# the same prompt text (the file's Jinja chat template, as the host renders it).
"$tools/bin/llama-server" -m "$model" --host 127.0.0.1 --port 18182 -t "$(nproc)" \
  -c $((4096 * workers)) -np "$workers" --alias smollm2 --jinja >/tmp/bench-serve-llama.log 2>&1 &
pids+=($!); llama_pid=$!
wait_up http://127.0.0.1:18181
wait_up http://127.0.0.1:18182
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$python" benches/serve_load.py --workers "$workers" --write docs/BENCHMARKS.md \
  --machine "$cpu, $(nproc) threads" \
  --note "Both batch: the host decodes the next token of every running request's sequence in one \
\`llama_decode\` (\`--parallel $workers\`, as llama-server's \`-np $workers\`). What remains of the gap is the \
host's per-request cost — a fresh guest instance, its HTTP handling and the model's lease, about 70 ms for a \
1-token request against llama-server's 50 ms — and a prompt that arrives while others stream being read in \
its own pass (each sequence has its own KV stream, so llama.cpp splits such a batch)." \
  --server "tabagent-host serve + openai-server guest=http://127.0.0.1:18181=$tabagent_pid" \
  --server "llama.cpp llama-server=http://127.0.0.1:18182=$llama_pid" "$@"

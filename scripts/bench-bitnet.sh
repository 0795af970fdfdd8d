#!/usr/bin/env bash
# Benchmark BitNet's ternary tensor types (TQ1_0, TQ2_0) against Q4_0, Q8_0 and F16 on one model
# shape (256M parameters, BitNet/fixtures/make_bitnet.py --shape bench), through the host's own
# llama.cpp and CPU kernels; writes its section of docs/BENCHMARKS.md.
# Usage: scripts/bench-bitnet.sh [--reps N] [--tokens N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
scripts/setup.sh
python="$(scripts/python-env.sh)"
cargo build --release --locked -p tabagent-bench
models="${TABAGENT_BITNET_BENCH:-$HOME/.cache/tabagent/bitnet-bench}"
types="TQ1_0 TQ2_0 Q4_0 Q8_0 F16"
missing=""
for t in $types; do [ -s "$models/bitnet-bench-$t.gguf" ] || missing=1; done
if [ -n "$missing" ]; then
  "$python" BitNet/fixtures/make_bitnet.py --tokenizer-from models/SmolLM2-135M-Instruct.Q4_1.gguf \
    --out "$models" --shape bench --types "${types// /,}"
fi
files=()
for t in $types; do files+=("$models/bitnet-bench-$t.gguf"); done
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$python" benches/bitnet_table.py --bench "$CARGO_TARGET_DIR/release/tabagent-bench" \
  --machine "$cpu" --write docs/BENCHMARKS.md "$@" "${files[@]}"

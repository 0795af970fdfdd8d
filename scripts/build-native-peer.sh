#!/usr/bin/env bash
# Build the benchmark's native peer (benches/native-peer): the bench's direct loop over the same
# llama.cpp release, built statically with -march=native for this machine, into
# ~/.cache/tabagent/native-peer. A cold build compiles llama.cpp once (about 6 minutes on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${TABAGENT_NATIVE_PEER_DIR:-$HOME/.cache/tabagent/native-peer}"
# llama.cpp's AMX kernels crash in this release (an invalid tile configuration); on a CPU with AMX
# a native build leaves them out, as the host does (it does not pick the AMX variant).
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
  export CFLAGS="${CFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CXXFLAGS="${CXXFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
RUSTFLAGS="-C target-cpu=native" cargo build --release --locked \
  --manifest-path "$root/benches/native-peer/Cargo.toml" --target-dir "$dir"
echo "native peer: $dir/release/tabagent-native-peer"

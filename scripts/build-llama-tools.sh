#!/usr/bin/env bash
# Build llama.cpp's own tools (llama-bench, llama-completion, llama-server) as reference peers for
# benchmarks and tests.
# The llama-cpp-sys-2 crate lacks the tools' build files; the llama-cpp-python source
# distribution on PyPI carries the whole llama.cpp tree. Result: $TOOLS/bin/llama-{bench,completion,server}.
# Usage: scripts/build-llama-tools.sh   (TOOLS defaults to ~/.cache/tabagent/llama-tools)
set -euo pipefail
tools="${TABAGENT_LLAMA_TOOLS:-$HOME/.cache/tabagent/llama-tools}"
if [ -x "$tools/bin/llama-bench" ] && [ -x "$tools/bin/llama-completion" ] && [ -x "$tools/bin/llama-server" ]; then
  echo "llama tools: $tools/bin (already built)"
  exit 0
fi
command -v cmake >/dev/null || { echo "llama tools: cmake is missing (scripts/setup.sh installs it)" >&2; exit 1; }
src="$tools/src"
mkdir -p "$src"
if [ ! -f "$src/CMakeLists.txt" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip install --quiet --disable-pip-version-check scikit-build-core
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --no-build-isolation -d "$tmp" llama-cpp-python
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  cp -r "$tmp"/llama_cpp_python-*/vendor/llama.cpp/. "$src/"
fi
# llama.cpp's AMX kernels crash in this release (an invalid tile configuration); on a CPU with AMX
# the native build leaves them out, as the host does.
no_amx=""
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
cmake -S "$src" -B "$tools/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$tools/build" -j "$(nproc)" --target llama-bench llama-completion llama-server >/dev/null
mkdir -p "$tools/bin"
cp "$tools/build/bin/llama-bench" "$tools/build/bin/llama-completion" "$tools/build/bin/llama-server" "$tools/bin/"
echo "llama tools: $tools/bin"

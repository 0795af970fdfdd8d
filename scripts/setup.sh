#!/usr/bin/env bash
# Install what building and testing need, idempotently: cmake, clang and libclang (llama.cpp and
# bindgen), qemu-user (the tests run the host on an emulated CPU without AVX), patchelf
# (scripts/package.sh), chromium (the native-messaging browser test), the wasm32-wasip2
# Rust target, rustfmt and clippy, the default model, a Python environment with the official
# `openai` client, `gguf` and componentize-py (scripts/python-env.sh), and componentize-js
# (scripts/node-env.sh; node and npm come from apt when missing), and for the C example guest
# lld, wasi-libc and the wasm32 compiler builtins.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
  || need+=(libclang-dev)
[ "$(uname -m)" != x86_64 ] || command -v qemu-x86_64 >/dev/null || need+=(qemu-user)
command -v patchelf >/dev/null || need+=(patchelf)
# The browser test runs TabAgent's path in a real Chromium.
command -v chromium >/dev/null || need+=(chromium)
# The test tools' Python environment (scripts/python-env.sh).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The C example guest: clang for wasm32-wasi, its linker, wasi-libc and the wasm32 builtins.
command -v wasm-ld >/dev/null || command -v wasm-ld-14 >/dev/null || need+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 \
  || need+=(libclang-rt-dev-wasm32)
# The JavaScript example guest is built with componentize-js, from npm.
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# wasm32-wasip2 for the guests, wasm32-unknown-unknown for the host's chat-template sandbox.
for t in wasm32-wasip2 wasm32-unknown-unknown; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
for c in rustfmt clippy; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done
# llama-cpp-sys-2 (dynamic-link) links its libraries into the target folder as symlinks relative
# to its OUT_DIR, which dangle there; when it is rebuilt into a new OUT_DIR its build script
# checks `exists()` (false for a dangling link), then fails to link over it ("File exists").
# Remove the dangling links first.
target="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
for d in "$target"/{release,debug}{,/deps,/examples}; do
  [ -d "$d" ] && find "$d" -maxdepth 1 -xtype l -name 'lib*.so*' -delete
done
"$root/scripts/fetch-models.sh"
# Python (the openai client, gguf, componentize-py) and componentize-js, for the tests.
"$root/scripts/python-env.sh" >/dev/null
"$root/scripts/node-env.sh" >/dev/null

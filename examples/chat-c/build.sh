#!/usr/bin/env bash
# Build the C chat app into a component: examples/chat-c/build.sh [OUT.wasm]
# (default: chat-c.wasm here). Needs Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32
# (scripts/setup.sh installs them) and tabagent-componentize-c (built here with cargo), which
# writes the C bindings and turns the wasm32-wasi module into a component.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$here/chat-c.wasm}")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
cargo build --release --locked -q -p tabagent-c-tools --manifest-path "$root/Cargo.toml" >&2
tool="$CARGO_TARGET_DIR/release/tabagent-componentize-c"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
"$tool" bindings "$root/wit" tabagent:llm/app@0.2.0 "$gen"
clang_bin="$(command -v clang)"
# A reactor: the component's `wasi:cli/run` export is `exports_wasi_cli_run_run`, not `main`.
"$clang_bin" --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -fuse-ld=lld \
  -I"$gen" "$here/app.c" "$gen/app.c" "$gen/app_component_type.o" -o "$gen/app.core.wasm"
"$tool" component "$gen/app.core.wasm" "$out"
echo "$out"

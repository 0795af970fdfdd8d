#!/usr/bin/env bash
# Build the Python chat app into a component: examples/chat-py/build.sh [OUT.wasm]
# (default: chat-py.wasm here). componentize-py comes from scripts/python-env.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$here/chat-py.wasm}")"
python="$("$root/scripts/python-env.sh")"
cd "$here"
"$(dirname "$python")/componentize-py" -d "$root/wit" -w tabagent:llm/app@0.2.0 componentize app -o "$out" >&2
echo "$out"

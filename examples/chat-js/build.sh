#!/usr/bin/env bash
# Build the JavaScript chat app into a component: examples/chat-js/build.sh [OUT.wasm]
# (default: chat-js.wasm here). componentize-js comes from scripts/node-env.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$here/chat-js.wasm}")"
componentize="$("$root/scripts/node-env.sh")"
"$componentize" "$here/app.js" --wit "$root/wit" -n tabagent:llm/app@0.2.0 -o "$out" >&2
echo "$out"

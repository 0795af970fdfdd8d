#!/usr/bin/env bash
# componentize-js (npm), for the JavaScript example guest: installed into
# ${TABAGENT_NODE_ENV:-~/.cache/tabagent/node}. Idempotent; prints the componentize-js command.
# Needs node and npm (Node.js 20 or newer: componentize-js's file-system support asks for it).
set -euo pipefail
version="0.23.0"
env_dir="${TABAGENT_NODE_ENV:-$HOME/.cache/tabagent/node}"
bin="$env_dir/node_modules/.bin/componentize-js"
installed="$(cat "$env_dir/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null \
  | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' | head -n 1)"
if [ ! -x "$bin" ] || [ "$installed" != "$version" ]; then
  command -v npm >/dev/null || { echo "node-env: npm is missing (install Node.js 20 or newer)" >&2; exit 1; }
  echo "node-env: installing @bytecodealliance/componentize-js@$version into $env_dir" >&2
  mkdir -p "$env_dir"
  npm install --silent --no-audit --no-fund --prefix "$env_dir" "@bytecodealliance/componentize-js@$version" >&2
fi
echo "$bin"

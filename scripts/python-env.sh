#!/usr/bin/env bash
# A Python environment with the official `openai` client (the tests of `tabagent-host serve` and
# its load benchmark) and the `gguf` package with numpy (the BitNet fixtures):
# ${TABAGENT_PYTHON_ENV:-~/.cache/tabagent/python}. Idempotent; prints the interpreter's path.
set -euo pipefail
env_dir="${TABAGENT_PYTHON_ENV:-$HOME/.cache/tabagent/python}"
if ! "$env_dir/bin/python" -c 'import openai, httpx, gguf, numpy' 2>/dev/null; then
  echo "python: installing openai, gguf and numpy into $env_dir" >&2
  python3 -m venv "$env_dir"
  "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    'openai>=1.40,<3' 'gguf>=0.17' 'numpy>=1.26' >&2
fi
echo "$env_dir/bin/python"

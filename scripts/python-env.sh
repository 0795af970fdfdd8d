#!/usr/bin/env bash
# A Python environment with the official `openai` client (the tests of `tabagent-host serve` and
# its load benchmark), the `gguf` package with numpy (the BitNet fixtures) and componentize-py
# (the Python example guest):
# ${TABAGENT_PYTHON_ENV:-~/.cache/tabagent/python}. Idempotent; prints the interpreter's path.
set -euo pipefail
env_dir="${TABAGENT_PYTHON_ENV:-$HOME/.cache/tabagent/python}"
if ! "$env_dir/bin/python" -c 'import openai, httpx, gguf, numpy, jinja2, jsonschema' 2>/dev/null \
  || [ "$("$env_dir/bin/componentize-py" --version 2>/dev/null)" != "componentize-py 0.25.1" ]; then
  echo "python: installing openai, gguf, numpy, jinja2, jsonschema and componentize-py into $env_dir" >&2
  python3 -m venv "$env_dir"
  "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    'openai>=1.40,<3' 'gguf>=0.17' 'numpy>=1.26' 'jinja2>=3.1,<4' 'jsonschema>=4,<5' 'componentize-py==0.25.1' >&2
fi
echo "$env_dir/bin/python"

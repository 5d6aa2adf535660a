#!/usr/bin/env bash
# Extracts SGLang's compare_perf.py from the sglang wheel, without installing sglang.
# Usage: get_compare_perf.sh DEST_DIR [CACHE_DIR]
#   DEST_DIR/compare_perf.py is written. The wheel is taken from CACHE_DIR (default
#   $XDG_CACHE_HOME/diffscope or ~/.cache/diffscope) or downloaded there with
#   `pip download --no-deps sglang==$SGLANG_VERSION` (default 0.5.23, the version checked).
# Exit 0 on success, 77 (= skipped) when no wheel is cached and pip cannot download one,
# 1 when the wheel does not carry the file.
set -euo pipefail
dest=${1:?usage: get_compare_perf.sh DEST_DIR [CACHE_DIR]}
cache=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/diffscope}
version=${SGLANG_VERSION:-0.5.23}
member=sglang/multimodal_gen/benchmarks/compare_perf.py
mkdir -p "$dest" "$cache"

wheel=$(ls -1 "$cache"/sglang-"$version"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  py=$(command -v python3 || true)
  if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "SKIP: no cached sglang wheel and no pip to download one" >&2
    exit 77
  fi
  if ! "$py" -m pip download --no-deps --disable-pip-version-check -q -d "$cache" \
      "sglang==$version" >&2; then
    echo "SKIP: pip could not download sglang==$version" >&2
    exit 77
  fi
  wheel=$(ls -1 "$cache"/sglang-"$version"-*.whl 2>/dev/null | head -n 1 || true)
  [ -n "$wheel" ] || { echo "SKIP: pip downloaded no sglang wheel" >&2; exit 77; }
fi

# A wheel is a zip: extract the one member with Python's zipfile (unzip may be absent).
python3 - "$wheel" "$member" "$dest/compare_perf.py" <<'PY'
import sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"{wheel} has no {member}")
    with open(out, "wb") as f:
        f.write(z.read(member))
PY
echo "$dest/compare_perf.py (from $(basename "$wheel"))"

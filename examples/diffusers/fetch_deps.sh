#!/usr/bin/env bash
# Fetches what flux_like.py needs beyond torch: diffusers and the pure-Python packages it
# imports for FluxTransformer2DModel, FlowMatchEulerDiscreteScheduler and AutoencoderKL, into
# the git-ignored .devdeps/ (sent to GPU machines along with the working tree).
#
#   bash examples/diffusers/fetch_deps.sh          # .devdeps/python.zip (about 8 MB)
#   bash examples/diffusers/fetch_deps.sh --dir    # .devdeps/python/, unpacked (about 37 MB)
#
# The zip is what travels: Python imports pure-Python packages from a zip on sys.path, and
# the unpacked tree is most of the 64 MiB a GPU run may carry. flux_like.py appends whichever
# exists to sys.path, so packages the interpreter already has take precedence.
#
# Only pure-Python wheels are fetched (any Python 3.10+, any machine). The binary packages
# diffusers imports come from the interpreter: torch, numpy, Pillow, PyYAML, safetensors
# (the GPU machines' /opt/torch/.venv has them all). PYTHON (default python3) runs pip and
# the import check at the end. Needs PyPI; exit 2 when pip fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
keep_dir=0
case "${1:-}" in
  "") ;;
  --dir) keep_dir=1 ;;
  *) echo "fetch_deps.sh: unknown argument '$1' (--dir: keep an unpacked tree)" >&2; exit 2 ;;
esac

# Pinned: diffusers' import-time needs, found by importing the three classes with torch alone
# installed. huggingface_hub is the GPU image's version (diffusers 0.42 needs >= 1.32).
pkgs=(
  diffusers==0.42.1
  huggingface_hub==1.33.0
  httpx==0.29.0 httpcore==1.0.9 h11==0.16.0 certifi==2026.10.19.post1 idna==3.21
  requests==2.34.2 urllib3==2.8.0 charset_normalizer==3.5.3
  tqdm==4.70.1 packaging==26.4
)

dest=$root/.devdeps
mkdir -p "$dest"
stage=$(mktemp -d "$dest/python.tmp.XXXXXX")
log=$(mktemp)
trap 'rm -rf "$stage" "$log"' EXIT
# --platform any --implementation py --abi none: pure-Python wheels only, whatever this
# machine's Python; --no-compile: no .pyc (twice the size, and per Python version).
if ! "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
  --only-binary=:all: --platform any --implementation py --abi none --target "$stage" \
  "${pkgs[@]}"; then
  echo "fetch_deps.sh: pip install failed (PyPI reachable? PYTHON=$python)" >&2
  exit 2
fi
rm -rf "$stage/bin"  # console scripts: not needed to import

rm -rf "$dest/python" "$dest/python.zip"
if [ "$keep_dir" = 1 ]; then
  mv "$stage" "$dest/python"
  out=$dest/python
else
  (cd "$stage" && "$python" -m zipfile -c "$dest/python.zip" .) || {
    echo "fetch_deps.sh: could not write $dest/python.zip" >&2
    exit 2
  }
  out=$dest/python.zip
fi
echo "fetch_deps.sh: ${pkgs[*]}"
echo "fetch_deps.sh: -> ${out#"$root"/} ($(du -sh "$out" | cut -f1))"

# The import check, where this Python has torch (else there is nothing to check against).
if "$python" -c "import torch" 2>/dev/null; then
  if "$python" -c "import sys; sys.path.append('$out')
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
" 2>"$log"; then
    echo "fetch_deps.sh: $python imports diffusers' Flux classes with it"
  else
    echo "fetch_deps.sh: $python cannot import diffusers' Flux classes with it:" >&2
    grep -E "Error" "$log" | head -3 >&2
    echo "fetch_deps.sh: the binary packages come from the interpreter: pip install pillow pyyaml safetensors" >&2
    exit 2
  fi
else
  echo "fetch_deps.sh: $python has no torch: import not checked (the GPU machines' python3 has torch)"
fi

#!/usr/bin/env bash
# Writes the sample outputs, then runs a check on them.
# Usage: with_samples.sh WORK_DIR TEST_EXE TEST_CASE_PATTERN -- CHECK_COMMAND...
#   Runs `TEST_EXE -tc=PATTERN` (doctest) in WORK_DIR, which writes the samples there, then
#   runs CHECK_COMMAND in WORK_DIR and exits with its status (77 = skipped passes through).
set -uo pipefail
work=$1 pattern=$3
# Absolute before the cd below (Meson passes paths relative to the build directory).
exe=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 3
[ "${1:-}" = "--" ] && shift
mkdir -p "$work" && cd "$work" || exit 1
"$exe" "-tc=$pattern" >/dev/null || { echo "FAIL: $exe -tc=$pattern could not write samples"; exit 1; }
exec "$@"

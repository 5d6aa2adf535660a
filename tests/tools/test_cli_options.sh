#!/usr/bin/env bash
# The diffscope command's arguments are strict: `version` takes none, and a single-valued
# option given twice is a usage error (exit 2) naming it, in every command, before the
# command does anything; repeatable options (compare's --base/--new lists) stay repeatable.
#
#   test_cli_options.sh DIFFSCOPE WORK_DIR
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 DIFFSCOPE WORK_DIR" >&2
  exit 2
fi
ds=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: the test runs in WORK_DIR
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 2

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect CODE TEXT ARGS...: exit CODE and TEXT on stderr (TEXT "" checks the code only).
expect() {
  local code=$1 text=$2
  shift 2
  "$ds" "$@" >out.txt 2>err.txt
  local rc=$?
  [[ $rc -eq $code ]] || fail "diffscope $*: exit $rc, want $code ($(head -c 300 err.txt))"
  if [[ -n $text ]] && ! grep -qF -- "$text" err.txt; then
    fail "diffscope $*: stderr lacks '$text': $(head -c 300 err.txt)"
  fi
  [[ $(wc -l <err.txt) -le 1 ]] || fail "diffscope $*: more than one line on stderr"
}

# version
"$ds" version >out.txt 2>err.txt || fail "diffscope version: exit $?"
grep -q '^diffscope [0-9]' out.txt || fail "diffscope version printed '$(cat out.txt)'"
expect 2 "unknown argument '--bogus'" version --bogus
expect 2 "unknown argument '--bogus'" --version --bogus
expect 2 "unknown argument 'x'" version x
"$ds" version --help >out.txt 2>err.txt || fail "diffscope version --help: exit $?"
grep -q '^usage: diffscope version' out.txt || fail "diffscope version --help printed '$(cat out.txt)'"
expect 2 "unknown argument '--bogus'" version --help --bogus

# twice VALUE_ARGS... -- OPTION: OPTION given twice names it (the rest makes a valid line).
dup() {
  local opt=$1
  shift
  expect 2 "$opt: given more than once" "$@"
}

echo '{}' >in.json
dup -o merge -o a.json -o b.json in.json
dup --output merge -o a.json --output b.json in.json
dup -o merge --output a.json -o b.json in.json
[[ ! -e a.json && ! -e b.json ]] || fail "merge wrote an output despite the duplicate option"

dup --rel-tol compare --rel-tol 1 --rel-tol 2 in.json in.json
dup --abs-tol compare --abs-tol 1 --abs-tol 2 in.json in.json
dup --scopes compare --scopes 1 --scopes all in.json in.json

dup --log gate --log in.json --log in.json
dup --kill-grace gate --kill-grace 1 --kill-grace 2 -- true

dup --top hotspots --top 3 --top 4 in.json
dup --rules hotspots --rules a --rules b in.json

for opt in --dump --trace; do
  dup $opt run $opt x.json $opt y.json -- touch ran
done
dup --mode run --mode perf --mode profile -- touch ran
dup --perf-scopes run --perf-scopes all --perf-scopes steps -- touch ran
dup --perf-sample run --perf-scopes all --perf-sample 2 --perf-sample 3 -- touch ran
dup --sample-steps run --sample-steps 1-2 --sample-steps 3 -- touch ran
[[ ! -e ran ]] || fail "run started the command despite a duplicate option"

# Sampled mode's step rule is checked before the command starts: a usage error naming it.
for bad in 2-1 x "1-2 " every:0 every: -1 1-; do
  expect 2 "--sample-steps: '$bad' is not a step window" run --mode sampled --sample-steps "$bad" \
    -- touch ran
done
expect 2 "--mode: 'bogus' is not profile, perf or sampled" run --mode bogus -- touch ran
[[ ! -e ran ]] || fail "run started the command despite a bad --sample-steps or --mode"
expect 2 "--mode: 'sampled' is not a mode ab runs: perf or profile" ab --a true --b true \
  --mode sampled

ab=(--a true --b true)
dup --a ab --a true --a false --b true
dup --b ab --a true --b true --b false
for pair in "--runs 2" "--warmup-runs 0" "--labels x,y" "--gpu none" "--threshold 1" \
  "--abs-tol 1" "--idle-wait 1" "--out o" "--mode perf" "--figure e2e"; do
  read -r opt value <<<"$pair"
  dup "$opt" ab "${ab[@]}" "$opt" "$value" "$opt" "$value"
done
[[ ! -e o ]] || fail "ab created its output directory despite a duplicate option"

dup --output report -o a.html --output b.html in.json
dup --labels report --labels x --labels y in.json
dup --svg-dir report --svg-dir d --svg-dir e in.json
dup --rel-tol report --rel-tol 1 --rel-tol 2 in.json in.json
dup --abs-tol report --abs-tol 1 --abs-tol 2 in.json in.json
[[ ! -e a.html && ! -e b.html && ! -e d && ! -e e ]] ||
  fail "report wrote an output despite a duplicate option"

# Repeatable: compare's --base and --new add to their lists (here the files are not dumps,
# so it fails reading them, not on the arguments).
"$ds" compare --base in.json --new in.json --base in.json >out.txt 2>err.txt
if grep -q "more than once" err.txt; then fail "compare --base twice was refused: $(cat err.txt)"; fi
"$ds" report --base in.json --new in.json --base in.json >out.txt 2>err.txt
if grep -q "more than once" err.txt; then fail "report --base twice was refused: $(cat err.txt)"; fi
# Flags may repeat.
"$ds" merge --summary --summary in.json >out.txt 2>err.txt
if grep -q "more than once" err.txt; then fail "merge --summary twice was refused: $(cat err.txt)"; fi

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "ok"

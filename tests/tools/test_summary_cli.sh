#!/usr/bin/env bash
# The console summary a program prints at exit (DIFFSCOPE_SUMMARY): its scope table lists the
# scopes with the most time, DIFFSCOPE_SUMMARY_SCOPES of them (25 by default, `all`: every
# scope), says how many more the dump has, and the program's own output is unchanged.
#
#   test_summary_cli.sh HOST_APP WORK_DIR
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 HOST_APP WORK_DIR" >&2
  exit 2
fi
app=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
while read -r name _; do unset "$name"; done < <("$app" --settings)

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Runs the program with the summary on and the given settings; stderr to $work/$1.err.
summary() {
  local name=$1
  shift
  env DIFFSCOPE_SUMMARY=1 DIFFSCOPE_NO_GPU=1 "$@" "$app" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  [[ $rc -eq 3 ]] || fail "$name: exit $rc, want the program's 3"
  [[ $(cat "$work/$name.out") == sum* ]] || fail "$name: stdout changed"
}

# The rows of the scope table: the lines after its header, up to the first unindented line.
scope_rows() {
  awk '/^Scopes \(/ {t = 1; getline; next} t && /^  / && !/more scopes/ {print} t && !/^  / {t = 0}' "$1"
}

summary all_fit
rows=$(scope_rows "$work/all_fit.err" | wc -l)
[[ $rows -eq 4 ]] || fail "default: want the 4 scopes, got $rows"
grep -q "^Scopes (share: " "$work/all_fit.err" || fail "default: the header of a table that lists every scope"
grep -q "more scopes" "$work/all_fit.err" && fail "default: no 'more scopes' line when all fit"

summary two DIFFSCOPE_SUMMARY_SCOPES=2
rows=$(scope_rows "$work/two.err" | wc -l)
[[ $rows -eq 2 ]] || fail "2: want 2 rows, got $rows"
grep -q "^Scopes (the 2 of 4 with the most time, to depth 6; share: " "$work/two.err" ||
  fail "2: the header says which rows"
grep -q "^  2 more scopes: see the dump (DIFFSCOPE_SUMMARY_SCOPES=all lists every scope)$" \
  "$work/two.err" || fail "2: the 'more scopes' line"
# The outermost scopes hold the most host time: the request and its stage.
scope_rows "$work/two.err" | grep -q "^  request" || fail "2: the request first"
scope_rows "$work/two.err" | grep -q "^    DenoisingStage" || fail "2: then its stage"

summary every DIFFSCOPE_SUMMARY_SCOPES=all
rows=$(scope_rows "$work/every.err" | wc -l)
[[ $rows -eq 4 ]] || fail "all: want 4 rows, got $rows"

summary junk DIFFSCOPE_SUMMARY_SCOPES=some
grep -q "^diffscope: DIFFSCOPE_SUMMARY_SCOPES='some' is not a whole number >= 1 or all; using 25$" \
  "$work/junk.err" || fail "junk: one line naming the setting"
rows=$(scope_rows "$work/junk.err" | wc -l)
[[ $rows -eq 4 ]] || fail "junk: the default, want 4 rows, got $rows"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "test_summary_cli: all checks passed"

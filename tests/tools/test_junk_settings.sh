#!/usr/bin/env bash
# A setting diffscope cannot use changes nothing of the host program: for every flag, count
# and choice of the settings table (config.hpp), each with junk values, a program that uses
# the collector exits with the same code and prints the same stdout as without diffscope,
# its stderr differs only by diffscope's own lines ("diffscope: ..."), exactly one of them
# names the junk setting, and the dump is still written.
#
#   test_junk_settings.sh HOST_APP WORK_DIR
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 HOST_APP WORK_DIR" >&2
  exit 2
fi
app=$1
work=$2
rm -rf "$work"
mkdir -p "$work"

# Start from no setting at all.
while read -r name _; do unset "$name"; done < <("$app" --settings)
for v in $(compgen -e); do
  [[ $v == DIFFSCOPE_* ]] && unset "$v"
done

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The program's own stderr: everything but diffscope's lines.
own_stderr() { grep -v '^diffscope: ' "$1" || true; }

"$app" >"$work/ref.out" 2>"$work/ref.err"
ref_rc=$?
[[ $ref_rc -eq 3 ]] || fail "the program without diffscope exited $ref_rc, not 3"
[[ -s $work/ref.out ]] || fail "the program printed nothing"
own_stderr "$work/ref.err" >"$work/ref.own.err"

# run NAME VALUE: the program with an output asked for and NAME=VALUE (NAME "" for none).
run() {
  local name=$1 value=$2 tag=$3
  local out=$work/$tag
  mkdir -p "$out"
  if [[ -n $name ]]; then
    env "DIFFSCOPE_DUMP=$out/dump/d.json" "$name=$value" "$app" >"$out/stdout" 2>"$out/stderr"
  else
    env "DIFFSCOPE_DUMP=$out/dump/d.json" "$app" >"$out/stdout" 2>"$out/stderr"
  fi
  local rc=$?
  [[ $rc -eq $ref_rc ]] || fail "$tag: exit code $rc, without diffscope $ref_rc"
  cmp -s "$out/stdout" "$work/ref.out" || fail "$tag: stdout differs ($(head -c 200 "$out/stdout"))"
  own_stderr "$out/stderr" >"$out/own.err"
  cmp -s "$out/own.err" "$work/ref.own.err" || fail "$tag: the program's stderr differs"
  [[ -s $out/dump/d.json ]] || fail "$tag: no dump written ($(cat "$out/stderr"))"
}

run "" "" valid
if grep -q "' is not " "$work/valid/stderr"; then fail "valid: a warning without a junk value"; fi

checked=0
while read -r name type; do
  case $type in
    flag) values=(maybe 2) ;;
    count) values=(lots -1) ;;
    choice) values=(bogus BOGUS) ;;
    *) continue ;;
  esac
  for value in "${values[@]}"; do
    tag=$name=$value
    run "$name" "$value" "$tag"
    warnings=$(grep -c "' is not " "$work/$tag/stderr")
    mine=$(grep -c "^diffscope: $name='$value' is not .*; \(using .*\|ignored\)$" "$work/$tag/stderr")
    [[ $warnings -eq 1 && $mine -eq 1 ]] ||
      fail "$tag: $warnings warnings, $mine about $name (want exactly one): $(cat "$work/$tag/stderr")"
    checked=$((checked + 1))
  done
done < <("$app" --settings)

[[ $checked -ge 40 ]] || fail "only $checked junk values checked: is the settings table read?"
if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "ok: $checked junk values, exit code, stdout and the program's stderr unchanged"

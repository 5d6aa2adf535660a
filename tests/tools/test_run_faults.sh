#!/usr/bin/env bash
# Faults around `diffscope run` and the output writer: a command that exits N or is killed, a
# grandchild that outlives it, `run` itself killed, a long dump name, outputs that cannot be
# written; and `merge -o` at device nodes, FIFOs, a directory, a symlink, a read-only
# directory, a 250-byte name. Usage: test_run_faults.sh DIFFSCOPE APP SOURCE_DIR WORK_DIR
set -uo pipefail
ds=$1 app=$2 src=$3 work=$4
rm -rf "$work" && mkdir -p "$work/tmp"
# run's private directories go here, apart from every other test's.
export TMPDIR="$work/tmp"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
run_dirs() { ls -A "$TMPDIR" | grep '^diffscope-run-' || true; }
temps_in() { ls -A "$1" | grep 'diffscope-tmp' || true; }
wait_for() {  # wait_for FILE: up to 10 s
  for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}
kind() { stat -c %F "$1" 2>/dev/null; }

# ---- run: the command's exit code is relayed, its dump written, nothing left behind.
for n in 0 1 5 42; do
  "$ds" run --dump "$work/exit$n.json" -- "$app" 2 "$n" >/dev/null 2>"$work/exit$n.err"
  rc=$?
  [ "$rc" -eq "$n" ] || fail "exit $n: run exited $rc"
  [ -s "$work/exit$n.json" ] || fail "exit $n: no dump"
done
[ -z "$(run_dirs)" ] || fail "exit N: private directory left: $(run_dirs)"

# ---- run: a command killed by a signal wrote no dump; say so, relay 128+N.
for sig in KILL SEGV; do
  "$ds" run --dump "$work/killed_$sig.json" -- sh -c "kill -$sig \$\$" >/dev/null 2>"$work/killed_$sig.err"
  rc=$?
  want=$((128 + $(kill -l "$sig")))
  [ "$rc" -eq "$want" ] || fail "SIG$sig: exit $rc, want $want"
  grep -q "killed by signal $(kill -l "$sig") (SIG$sig" "$work/killed_$sig.err" || fail "SIG$sig: signal not named"
  grep -q "wrote no dump" "$work/killed_$sig.err" || fail "SIG$sig: no reason given"
  ! grep -q "no NVTX range was seen" "$work/killed_$sig.err" || fail "SIG$sig: says no NVTX range was seen"
  [ ! -e "$work/killed_$sig.json" ] || fail "SIG$sig: a dump was written"
  [ -z "$(run_dirs)" ] || fail "SIG$sig: private directory left: $(run_dirs)"
done

# ---- run: a grandchild that outlives the command (its output elsewhere, so run does not wait
# for it) ends after run: it must not recreate run's removed directory nor leave a dump there.
# The collector honours DIFFSCOPE_CREATE_DIRS (which run sets to 0) once the setting exists.
if grep -rq DIFFSCOPE_CREATE_DIRS "$src/include/diffscope"; then
  "$ds" run --dump "$work/gc.json" -- \
    sh -c "(sleep 1; '$app' 2; touch '$work/gc.done') </dev/null >/dev/null 2>'$work/gc_child.err' & '$app' 2" \
    >/dev/null 2>"$work/gc.err"
  rc=$?
  [ "$rc" -eq 0 ] && [ -s "$work/gc.json" ] || fail "grandchild: exit $rc or no dump"
  [ -z "$(run_dirs)" ] || fail "grandchild: private directory left when run returned"
  wait_for "$work/gc.done" || fail "grandchild: never finished"
  [ -z "$(run_dirs)" ] || fail "grandchild: recreated run's directory: $(run_dirs)"
else
  echo "NOTE: DIFFSCOPE_CREATE_DIRS is not a setting yet: lingering grandchild check not run"
fi

# ---- run: stopped by SIGTERM, SIGINT or SIGHUP sent to it while the command runs: passed on,
# waited for, no output, no directory left.
for sig in TERM INT HUP; do
  rm -f "$work/stop.ready"
  "$ds" run --dump "$work/stop.json" --trace "$work/stop_trace.json" -- \
    sh -c "'$app' 2 >/dev/null; touch '$work/stop.ready'; exec sleep 30" >/dev/null 2>"$work/stop.err" &
  rp=$!
  wait_for "$work/stop.ready" || fail "SIG$sig: the command never got going"
  kill -"$sig" "$rp"
  wait "$rp"
  rc=$?
  n=$(kill -l "$sig")
  [ "$rc" -eq $((128 + n)) ] || fail "SIG$sig: exit $rc, want $((128 + n))"
  grep -q "stopped by signal $n (SIG$sig" "$work/stop.err" || fail "SIG$sig: no message"
  [ ! -e "$work/stop.json" ] && [ ! -e "$work/stop_trace.json" ] || fail "SIG$sig: output written"
  [ -z "$(temps_in "$work")" ] || fail "SIG$sig: temp file left: $(temps_in "$work")"
  [ -z "$(run_dirs)" ] || fail "SIG$sig: private directory left: $(run_dirs)"
done

# ---- run: killed by SIGKILL leaves its directory; the next run removes it, and only it: a
# live owner's directory and names not of this pattern stay.
"$ds" run --dump "$work/k.json" -- \
  sh -c "'$app' 2 >/dev/null; echo \$\$ > '$work/k.pid'; exec sleep 30" >/dev/null 2>&1 &
rp=$!
wait_for "$work/k.pid" || fail "SIGKILL: the command never got going"
stale=$(run_dirs)
kill -KILL "$rp"
wait "$rp" 2>/dev/null
kill "$(cat "$work/k.pid")" 2>/dev/null  # the command, orphaned
[ -n "$stale" ] && [ -d "$TMPDIR/$stale" ] || fail "SIGKILL: expected a directory left behind"
mkdir "$TMPDIR/diffscope-run-$$-Live00" "$TMPDIR/diffscope-run-OldOne" "$TMPDIR/diffscope-run-999999999-x"
"$ds" run --dump "$work/k2.json" -- "$app" 2 >/dev/null 2>&1
[ "$?" -eq 0 ] && [ -s "$work/k2.json" ] || fail "SIGKILL: the next run failed"
[ ! -e "$TMPDIR/$stale" ] || fail "SIGKILL: the next run did not remove $stale"
[ -d "$TMPDIR/diffscope-run-$$-Live00" ] || fail "stale sweep removed a live run's directory"
[ -d "$TMPDIR/diffscope-run-OldOne" ] && [ -d "$TMPDIR/diffscope-run-999999999-x" ] ||
  fail "stale sweep removed a directory not of its pattern"
rmdir "$TMPDIR"/diffscope-run-*

# ---- run: a 245-character dump name works (its temp name fits), and the code is relayed.
long=$(printf 'n%.0s' $(seq 240)).json
"$ds" run --dump "$work/$long" -- "$app" 2 0 >/dev/null 2>"$work/long.err"
rc=$?
[ "$rc" -eq 0 ] || fail "245-character name: exit $rc ($(cat "$work/long.err"))"
[ -s "$work/$long" ] || fail "245-character name: no dump"
[ -z "$(temps_in "$work")" ] || fail "245-character name: temp file left"

# ---- run: an output that cannot be written says so; the command's code is relayed when it
# is not 0, else exit 2.
mkdir -p "$work/adir"
"$ds" run --dump "$work/adir" -- "$app" 2 5 >/dev/null 2>"$work/outfail5.err"
rc=$?
[ "$rc" -eq 5 ] || fail "output failure, command exit 5: run exited $rc"
grep -q "output failed: .*adir.*is a directory" "$work/outfail5.err" || fail "output failure (5): no message"
"$ds" run --dump "$work/adir" -- "$app" 2 0 >/dev/null 2>"$work/outfail0.err"
rc=$?
[ "$rc" -eq 2 ] || fail "output failure, command exit 0: run exited $rc, want 2"
grep -q "output failed: .*adir" "$work/outfail0.err" && grep -q "the command exited 0" "$work/outfail0.err" ||
  fail "output failure (0): no message"
"$ds" run --dump "$work/tr_ok.json" --trace "$work/adir" -- "$app" 2 0 >/dev/null 2>"$work/tracefail.err"
rc=$?
[ "$rc" -eq 2 ] && [ -s "$work/tr_ok.json" ] || fail "trace failure: exit $rc or the dump was lost"
grep -q "output failed: .*adir" "$work/tracefail.err" || fail "trace failure: no message"
[ -d "$work/adir" ] && [ -z "$(ls -A "$work/adir")" ] || fail "output failure: directory changed"
[ -z "$(run_dirs)" ] || fail "output failure: private directory left"

# ---- merge -o against what can be at the path.
in="$work/exit0.json"
"$ds" merge -o "$work/merged.json" "$in" || fail "merge: plain file"
# Never the system's nodes and links: as root a writer that replaced them would break the
# machine. Character devices: private ones (mknod) as root; /dev's otherwise (not writable).
node() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "/dev/$1"
  elif mknod "$work/$1" c 1 "$2" 2>/dev/null && : >"$work/$1" 2>/dev/null; then
    echo "$work/$1"
  else
    rm -f "$work/$1"
  fi
}
null=$(node null 3)
if [ -n "$null" ]; then
  "$ds" merge -o "$null" "$in" 2>"$work/m_null.err" || fail "merge -o $null: $(cat "$work/m_null.err")"
  [ "$(kind "$null")" = "character special file" ] || fail "merge -o $null: no longer a device"
else
  echo "NOTE: root without mknod: device node checks not run"
fi
full=$( [ -e /dev/full ] && node full 7)
if [ -n "$full" ]; then
  "$ds" merge -o "$full" "$in" 2>"$work/m_full.err"
  rc=$?
  [ "$rc" -eq 2 ] && grep -q "$full" "$work/m_full.err" || fail "merge -o $full: exit $rc, want 2 naming it"
  [ "$(kind "$full")" = "character special file" ] || fail "merge -o $full: no longer a device"
fi
# What /dev/stdout is: a link to /proc/self/fd/1 (here a file, then a pipe).
ln -s /proc/self/fd/1 "$work/stdout"
"$ds" merge -o "$work/stdout" "$in" >"$work/via_stdout.json" || fail "merge -o stdout (a file)"
cmp -s "$work/via_stdout.json" "$work/merged.json" || fail "merge -o stdout (a file): not the merge"
"$ds" merge -o "$work/stdout" "$in" | cat >"$work/via_pipe.json" || fail "merge -o stdout (a pipe)"
cmp -s "$work/via_pipe.json" "$work/merged.json" || fail "merge -o stdout (a pipe): not the merge"
[ -L "$work/stdout" ] || fail "merge -o stdout: the link was replaced"
mkfifo "$work/fifo"
timeout 20 "$ds" merge -o "$work/fifo" "$in" 2>"$work/m_fifo.err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "fifo" "$work/m_fifo.err" || fail "merge -o FIFO without reader: exit $rc (124: hung)"
cat "$work/fifo" >"$work/from_fifo.json" &
cp_pid=$!
sleep 0.3  # the reader opens the FIFO
timeout 20 "$ds" merge -o "$work/fifo" "$in" || fail "merge -o FIFO with a reader"
wait "$cp_pid"
cmp -s "$work/from_fifo.json" "$work/merged.json" || fail "merge -o FIFO: the reader did not get the merge"
[ "$(kind "$work/fifo")" = "fifo" ] || fail "merge -o FIFO: no longer a FIFO"
"$ds" merge -o "$work/adir" "$in" 2>"$work/m_dir.err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "adir.*is a directory" "$work/m_dir.err" || fail "merge -o directory: exit $rc"
mkdir -p "$work/linked"
ln -s linked/target.json "$work/link.json"
"$ds" merge -o "$work/link.json" "$in" || fail "merge -o symlink"
[ -L "$work/link.json" ] && cmp -s "$work/linked/target.json" "$work/merged.json" ||
  fail "merge -o symlink: the link was replaced or its target not written"
"$ds" merge -o "$work/$long" "$in" || fail "merge -o 245-character name"
name250=$(printf 'm%.0s' $(seq 245)).json
"$ds" merge -o "$work/$name250" "$in" && [ -s "$work/$name250" ] || fail "merge -o 250-byte name"
mkdir -p "$work/ro" && chmod 555 "$work/ro"
as_user=()
[ "$(id -u)" -eq 0 ] && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" -ne 0 ] || command -v setpriv >/dev/null; then
  "${as_user[@]}" "$ds" merge -o "$work/ro/m.json" "$in" 2>"$work/m_ro.err"
  rc=$?
  [ "$rc" -eq 2 ] && grep -q "ro/m.json" "$work/m_ro.err" || fail "merge -o read-only directory: exit $rc"
  [ -z "$(ls -A "$work/ro")" ] || fail "merge -o read-only directory: left $(ls -A "$work/ro")"
else
  echo "NOTE: root without setpriv: read-only directory check not run"
fi
chmod 755 "$work/ro"
[ -z "$(temps_in "$work")" ] || fail "merge: temp file left: $(temps_in "$work")"

if [ "$failures" -ne 0 ]; then
  echo "test_run_faults: $failures failure(s)" >&2
  exit 1
fi
echo "test_run_faults: ok"

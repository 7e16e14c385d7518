#!/bin/sh
# tsan-tests.sh BUILD_DIR "UNIT_BINS" PYTEST_FILE...: runs the unit binaries
# and the pytest files against the ThreadSanitizer build in BUILD_DIR and
# fails if any of them fails or if any process wrote a race report.
#
# Every report goes to BUILD_DIR/tsan-logs/tsan.<pid> (log_path), so races
# in processes the tests start in the background (the gateway, the
# simulators) are caught even when the test itself passes; halt_on_error
# also stops such a process at its first race, so the test sees it die.
# TSAN_HALT=0 keeps processes running past reports, to collect them all.
BDIR=$1
BINS=$2
shift 2
PY=${PYTHON:-/usr/bin/python3}
HALT=${TSAN_HALT:-1}
LOGS=$(cd "$BDIR" && pwd)/tsan-logs
SUPP=$(cd "$(dirname "$0")" && pwd)/tsan.supp
rm -rf "$LOGS"
mkdir -p "$LOGS"
TSAN_OPTIONS="halt_on_error=$HALT exitcode=66 second_deadlock_stack=1 log_path=$LOGS/tsan suppressions=$SUPP"
export TSAN_OPTIONS
start=$(date +%s)
rc=0
pass=0; fail=0

echo "== unit tests ($BDIR)"
for t in $BINS; do
  if ! $t >"$LOGS/$(basename "$t").out" 2>&1; then
    echo "  $(basename "$t"): FAILED"
    grep -v '^\[ RUN      \]\|^\[       OK \]' "$LOGS/$(basename "$t").out"
    rc=1; fail=$((fail + 1))
  else
    echo "  $(basename "$t"): ok"
    pass=$((pass + $(grep -c '^\[       OK \]' "$LOGS/$(basename "$t").out")))
  fi
done

echo "== integration tests ($BDIR)"
IG_BIN=$(cd "$BDIR" && pwd)/infergate
export IG_BIN
# Two test files at a time, as run-tests.sh does (IG_TEST_JOBS=0: one).
JOBS=${IG_TEST_JOBS:-2}
PAR=""
if [ "$JOBS" -gt 0 ] && $PY -c 'import xdist' 2>/dev/null; then
  PAR="-n $JOBS --dist loadfile"
fi
# shellcheck disable=SC2086
if ! $PY -m pytest -q -p no:cacheprovider $PAR "$@" >"$LOGS/pytest.log" 2>&1; then
  rc=1
fi
tail -n 15 "$LOGS/pytest.log"
line=$(grep -E '[0-9]+ (passed|failed)' "$LOGS/pytest.log" | tail -n 1)
ip=$(printf '%s' "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); ip=${ip:-0}
ifl=$(printf '%s' "$line" | grep -oE '[0-9]+ (failed|error)' | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
pass=$((pass + ip)); fail=$((fail + ${ifl:-0}))
[ $rc -ne 0 ] && [ "$fail" -eq 0 ] && fail=1

reports=$(ls "$LOGS"/tsan.* 2>/dev/null)
if [ -n "$reports" ]; then
  n=$(cat $reports | grep -c '^WARNING: ThreadSanitizer')
  echo "== ThreadSanitizer: $n report(s) in $(echo "$reports" | wc -l) process(es):"
  for f in $reports; do
    echo "---- $f"
    cat "$f"
  done
  rc=1; fail=$((fail + 1))
fi
# make test sums these with the other builds' counts (scripts/summary.sh).
[ -n "$TEST_COUNTS" ] && echo "$BDIR $pass $fail" >> "$TEST_COUNTS"
echo "== tsan: $(($(date +%s) - start)) s, $([ $rc -eq 0 ] && echo clean || echo FAILED)"
exit $rc

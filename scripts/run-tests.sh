#!/bin/sh
# run-tests.sh BUILD_DIR "UNIT_BINS": runs the cmocka unit binaries and the
# pytest integration suite against BUILD_DIR/infergate, and appends the
# counts to BUILD_DIR/test-counts for scripts/summary.sh.
BDIR=$1
BINS=$2
PY=${PYTHON:-/usr/bin/python3}
pass=0; fail=0
echo "== unit tests ($BDIR)"
for t in $BINS; do
  out=$($t 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
  f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \]' )
  if [ $rc -ne 0 ]; then
    printf '%s\n' "$out" | grep -v '^\[ RUN      \]\|^\[       OK \]'
    [ "$f" -eq 0 ] && f=1
  fi
  pass=$((pass + p)); fail=$((fail + f))
  echo "  $(basename $t): $p ok$( [ $rc -ne 0 ] && echo ", FAILED (rc=$rc)")"
done
echo "== integration tests ($BDIR)"
IG_BIN=$(cd "$BDIR" && pwd)/infergate
export IG_BIN
# Two test files at a time (pytest-xdist, one file per worker so a file's
# fixtures stay together): the tests mostly wait on sockets and timers, and
# each picks its own loopback addresses by process id. IG_TEST_JOBS=0 runs
# them one at a time.
JOBS=${IG_TEST_JOBS:-2}
PAR=""
if [ "$JOBS" -gt 0 ] && $PY -c 'import xdist' 2>/dev/null; then
  PAR="-n $JOBS --dist loadfile"
fi
$PY -m pytest -q -p no:cacheprovider $PAR tests/integration > "$BDIR/pytest.log" 2>&1
prc=$?
tail -n 30 "$BDIR/pytest.log"
line=$(grep -E '[0-9]+ (passed|failed)' "$BDIR/pytest.log" | tail -n 1)
ip=$(printf '%s' "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); ip=${ip:-0}
ifl=$(printf '%s' "$line" | grep -oE '[0-9]+ (failed|error)' | grep -oE '[0-9]+' | awk "{s+=\$1} END {print s+0}"); ifl=${ifl:-0}
if [ $prc -ne 0 ] && [ $prc -ne 5 ] && [ "$ifl" -eq 0 ]; then ifl=1; fi
pass=$((pass + ip)); fail=$((fail + ifl))
echo "$BDIR $pass $fail" >> build/test-counts
exit 0

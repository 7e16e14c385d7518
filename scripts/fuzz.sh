#!/bin/sh
# fuzz.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS on a
# copy of its seed corpus (fuzz/corpus/<name>) under build/fuzz, so that the
# tree stays clean: new corpus entries, logs and crash artifacts all go to
# build/fuzz. As many targets run at once as there are CPUs (FUZZ_JOBS to
# change it): each still gets SECONDS of one core. Prints the executions
# each made, in the order given; exits 1 if any failed.
secs=$1; shift
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

run_one() {
  bin=$1
  name=$(basename "$bin")
  work=build/fuzz/corpus-$name
  artifacts=build/fuzz/artifacts-$name
  log=build/fuzz/$name.log
  mkdir -p "$work" "$artifacts"
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null
  # -timeout: one input running over 10 s is a hang worth reporting.
  if "$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$artifacts/" "$work" > "$log" 2>&1; then
    echo ok > "build/fuzz/$name.rc"
  else
    echo failed > "build/fuzz/$name.rc"
  fi
}

mkdir -p build/fuzz
running=0
for bin in "$@"; do
  rm -f "build/fuzz/$(basename "$bin").rc"
  run_one "$bin" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait
    running=0
  fi
done
wait

status=0
for bin in "$@"; do
  name=$(basename "$bin")
  log=build/fuzz/$name.log
  failed=
  if [ "$(cat "build/fuzz/$name.rc" 2>/dev/null)" != ok ]; then
    failed=" -- FAILED, see $log and build/fuzz/artifacts-$name/"
    status=1
  fi
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz $name: ${execs:-?} executions in ${secs}s$failed"
done
exit $status

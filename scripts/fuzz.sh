#!/bin/sh
# fuzz.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS on a
# copy of its seed corpus (fuzz/corpus/<name>) under build/fuzz, so that the
# tree stays clean: new corpus entries, logs and crash artifacts all go to
# build/fuzz. Prints the executions each made; exits 1 if any failed.
secs=$1; shift
status=0
for bin in "$@"; do
  name=$(basename "$bin")
  work=build/fuzz/corpus-$name
  artifacts=build/fuzz/artifacts-$name
  log=build/fuzz/$name.log
  mkdir -p "$work" "$artifacts"
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null
  # -timeout: one input running over 10 s is a hang worth reporting.
  if "$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$artifacts/" "$work" > "$log" 2>&1; then
    failed=
  else
    failed=" -- FAILED, see $log and $artifacts/"
    status=1
  fi
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz $name: ${execs:-?} executions in ${secs}s$failed"
done
exit $status

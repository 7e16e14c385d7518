#!/bin/sh
# fuzz.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS on its
# seed corpus (fuzz/corpus/<name>, copied so the tree stays clean) and
# prints the executions it made.
secs=$1; shift
status=0
for bin in "$@"; do
  name=$(basename "$bin")
  work=build/fuzz/corpus-$name
  mkdir -p "$work"
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null
  log=build/fuzz/$name.log
  "$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 "$work" > "$log" 2>&1 || status=1
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz $name: ${execs:-?} executions in ${secs}s$( [ $status -ne 0 ] && echo ' -- FAILED, see '$log)"
done
exit $status

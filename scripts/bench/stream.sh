#!/bin/bash
# `make bench-stream`: what relaying a token stream costs each proxy, and
# what the client sees of it. Four simulators stream completions of 200
# tokens, one SSE event each (vLLM's completions chunk, `"usage": null`
# included); infergate, nginx (`proxy_buffering off`, as for any streamed
# answer) and HAProxy (as configured by default, and with `option
# http-no-delay`), each with one worker on CPU 1, relay 64 such streams at
# a time from wrk on CPU 0 (with the simulators). Per streamed event: the
# proxy's user and system CPU time; per stream: its p50 and p99 duration.
# Then `infergate bench` (16 streams at a time) reads each event's arrival:
# time to the first token and between tokens (ITL), against going direct
# to a simulator. Prints a markdown table on stdout and writes
# OUTDIR/RESULTS.md and OUTDIR/raw.txt.
#
#   scripts/bench/stream.sh [OUTDIR]        (default build/bench-stream)
#
# Environment (defaults in brackets): BENCH_RUNS [3] runs per target,
# medians reported; BENCH_SECS [10] seconds per wrk run; TOKENS [200] per
# stream; CONNS [64] streams at a time; TARGETS [direct nginx haproxy
# haproxy-nodelay infergate]; IG_BIN [build/infergate]. About 3 minutes
# with the defaults.
set -eu
OUT=${1:-build/bench-stream}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECS:-10}
TOKENS=${TOKENS:-200}
CONNS=${CONNS:-64}
IG=${IG_BIN:-$(pwd)/build/infergate}
TARGETS=${TARGETS:-direct nginx haproxy haproxy-nodelay infergate}
NET=127.0.82
PCPU=1 # the proxy's
LCPU=0 # wrk's and the simulators'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

for tool in wrk nginx haproxy taskset setsid curl ss; do
	command -v $tool >/dev/null || { echo "stream.sh: $tool is missing (make bench-stream installs it)" >&2; exit 1; }
done
[ -x "$IG" ] || { echo "stream.sh: no infergate binary at $IG (make all)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "stream.sh: needs at least 2 CPUs" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DIR=$(mktemp -d /tmp/ig-bench-stream.XXXXXX)
chmod 755 "$DIR"
mkdir -p "$DIR/tmp"
# shellcheck disable=SC2034 # common.sh's spawn and stop_all use it
PIDS=""
trap remove_scratch EXIT
trap 'exit 130' INT TERM

SIMPORT=$(free_port $NET.1)
GWPORT=$(free_port $NET.100)
NGXPORT=$(free_port $NET.101)
HAPORT=$(free_port $NET.102)
HANDPORT=$(free_port $NET.103)
START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# The simulators decode a step a millisecond whatever the batch, and take
# no time for the prompt: events come as fast as a pod under load sends
# them, and the simulators stay light beside wrk on CPU 0.
for i in 1 2 3 4; do
	spawn "$DIR/sim$i.log" taskset -c $LCPU "$IG" sim tweet-summary-1 --host $NET.$i --port "$SIMPORT" \
		--itl-ms 1 --decode-us-per-seq 0 --ttft-ms 1 --prefill-us-per-token 0 --seed $i
done

cat > "$DIR/nginx.conf" <<C
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx.err;
daemon on;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $DIR/tmp/body;
  proxy_temp_path $DIR/tmp/proxy;
  upstream sims {
    server $NET.1:$SIMPORT; server $NET.2:$SIMPORT; server $NET.3:$SIMPORT; server $NET.4:$SIMPORT;
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
  }
  server {
    listen $NET.101:$NGXPORT;
    location / {
      proxy_pass http://sims; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
C
{
	haproxy_head 1
	cat <<C
frontend fe
  bind $NET.102:$HAPORT
  default_backend sims
# The same with MSG_MORE off towards the client: HAProxy sends a response's
# data with it while more is to come, and the kernel holds small segments
# back until the client's ACK (tens of ms for a token). HAProxy's answer
# for interactive payloads is this option.
frontend fe-nodelay
  bind $NET.103:$HANDPORT
  option http-no-delay
  default_backend sims
backend sims
  balance roundrobin
  default-server pool-purge-delay 600s
$(for i in 1 2 3 4; do echo "  server s$i $NET.$i:$SIMPORT"; done)
C
} > "$DIR/haproxy.cfg"
{
	gateway_pool_manifests "$GWPORT" "$SIMPORT" "$NET" 4
	seed_model_manifest
} > "$DIR/manifests.yaml"

echo "    taskset -c $PCPU nginx -c $DIR/nginx.conf" >> "$DIR/commands"
taskset -c $PCPU nginx -c "$DIR/nginx.conf" -p "$DIR" -e "$DIR/nginx.err"
# A session of its own each, as nginx has once it daemonized (proxy.sh says
# why: autogroup scheduling).
spawn "$DIR/haproxy.log" taskset -c $PCPU setsid haproxy -db -f "$DIR/haproxy.cfg"
HAPID=$!
spawn "$DIR/gw.log" taskset -c $PCPU setsid "$IG" gateway -f "$DIR/manifests.yaml" --bind $NET.100 \
	--workers 1 --upstream-max-idle 64 --upstream-idle-timeout 600s --log-level warn
GWPID=$!
for i in 1 2 3 4; do wait_port $NET.$i "$SIMPORT"; done
wait_port $NET.101 "$NGXPORT"
wait_port $NET.102 "$HAPORT"
wait_port $NET.103 "$HANDPORT"
wait_port $NET.100 "$GWPORT"
sleep 0.5

url() {
	case $1 in
	direct) echo "http://$NET.1:$SIMPORT/v1/completions" ;;
	nginx) echo "http://$NET.101:$NGXPORT/v1/completions" ;;
	haproxy) echo "http://$NET.102:$HAPORT/v1/completions" ;;
	haproxy-nodelay) echo "http://$NET.103:$HANDPORT/v1/completions" ;;
	infergate) echo "http://$NET.100:$GWPORT/v1/completions" ;;
	esac
}
model() { # the gateway maps tweet-summary to the simulators' tweet-summary-1
	if [ "$1" = infergate ]; then echo tweet-summary; else echo tweet-summary-1; fi
}
body() {
	printf '{"model": "%s", "prompt": "Write as if you were a critic: San Francisco", "max_tokens": %s, "temperature": 0, "stream": true}' "$(model "$1")" "$TOKENS"
}
for t in $TARGETS; do
	printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' "'$(body $t)'" > "$DIR/$t.lua"
	# One stream each first: all its events arrive, from tweet-summary-1.
	curl -s -N -m 10 -o "$DIR/answer" -H 'Content-Type: application/json' -d "$(body $t)" "$(url $t)" || true
	n=$(grep -c '^data: ' "$DIR/answer" || true)
	if [ "$n" != $((TOKENS + 1)) ] || ! grep -q '"model":"tweet-summary-1"' "$DIR/answer"; then
		echo "stream.sh: $t at $(url $t) sent $n events, not $((TOKENS + 1)): $(head -c 300 "$DIR/answer")" >&2
		for l in nginx.err haproxy.log gw.log sim1.log; do
			[ -s "$DIR/$l" ] && { echo "--- $l" >&2; tail -5 "$DIR/$l" >&2; }
		done
		exit 1
	fi
done
EVENTS=$((TOKENS + 1)) # the tokens and [DONE]

# cpu_ticks TARGET: "user system" clock ticks its processes used so far.
cpu_ticks() {
	case $1 in
	nginx) ps="$(cat "$DIR/nginx.pid") $(pgrep -P "$(cat "$DIR/nginx.pid")")" ;;
	haproxy | haproxy-nodelay) ps=$HAPID ;;
	infergate) ps=$GWPID ;;
	*) ps="" ;;
	esac
	for p in $ps; do cat "/proc/$p/stat" 2>/dev/null; done |
		awk '{sub(/^.*\) /, ""); u += $12; s += $13} END {print u + 0, s + 0}'
}

ms() { # wrk prints 812.00us / 1.23ms / 1.01s
	case "$1" in
	*us) awk -v v="${1%us}" 'BEGIN {printf "%.1f", v / 1000}' ;;
	*ms) awk -v v="${1%ms}" 'BEGIN {printf "%.1f", v}' ;;
	*s) awk -v v="${1%s}" 'BEGIN {printf "%.1f", v * 1000}' ;;
	*) echo 0 ;;
	esac
}

WRK="taskset -c $LCPU wrk -t1 -c$CONNS -d${SECS}s --latency -s"
# run TARGET: one wrk run, a line of raw.txt: "target streams_per_s p50_ms
# p99_ms errors user_us_per_event sys_us_per_event".
run() {
	c0=$(cpu_ticks "$1")
	out=$($WRK "$DIR/$1.lua" "$(url "$1")" 2>&1 || true)
	c1=$(cpu_ticks "$1")
	n=$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')
	rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
	p50=$(printf '%s\n' "$out" | awk '$1 == "50%" {print $2}')
	p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
	bad=$(printf '%s\n' "$out" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
	[ -n "$n" ] || { echo "wrk failed against $1:" >&2; printf '%s\n' "$out" | tail -5 >&2; }
	cpu=$(awk -v a="$c0" -v b="$c1" -v n="${n:-0}" -v e=$EVENTS -v hz="$(getconf CLK_TCK)" -v t="$1" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (t == "direct" || n + 0 == 0) { print "- -"; exit }
		printf "%.3f %.3f", (y[1] - x[1]) / hz * 1e6 / (n * e), (y[2] - x[2]) / hz * 1e6 / (n * e) }')
	echo "$1 ${rps:-0} $(ms "${p50:-}") $(ms "${p99:-}") $bad $cpu" >> "$OUT/raw.txt"
	echo "  $1: ${rps:-0} streams/s p50 ${p50:-?} p99 ${p99:-?} errors $bad CPU us/event (user system) $cpu" >&2
}
med() { # TARGET FIELD: the median over the runs
	awk -v t="$1" -v f="$2" '
		$1 == t && $f != "-" { v[n++] = $f + 0 }
		END {
			if (n == 0) { print "—"; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
				if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			print (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		}' "$OUT/raw.txt"
}

: > "$OUT/raw.txt"
for t in $TARGETS; do $WRK "$DIR/$t.lua" "$(url $t)" -d2s > /dev/null 2>&1 || true; done # warm-up
r=1
while [ $r -le "$RUNS" ]; do
	for t in $TARGETS; do run $t; done
	r=$((r + 1))
done
# What the client sees: 16 streams at a time for 5 s per target, each
# event's arrival timed ("ttft target p50 p99" and "itl target p50 p90 p99
# max" lines in raw.txt, ms).
for t in $TARGETS; do
	out=$(taskset -c $LCPU "$IG" bench --url "$(url $t | sed 's#/v1/completions##')" --concurrency 16 \
		--duration 5s --output-len "$TOKENS" --input-len 10 --model "$(model $t)" --seed 1 2>&1 || true)
	printf '%s\n' "$out" | awk -v t=$t '$1 == "TTFT" {print "ttft", t, $4, $7} $1 == "ITL" {print "itl", t, $4, $5, $7, $8}' >> "$OUT/raw.txt"
	printf '%s\n' "$out" | awk -v t=$t '$1 == "TTFT" || $1 == "ITL" {print "  " t ": " $0}' >&2
done
[ -s "$DIR/gw.log" ] && sed 's/^/infergate: /' "$DIR/gw.log" | head -5 >&2
ELAPSED=$(($(date +%s) - START))

{
	echo "## Relaying token streams (\`make bench-stream\`)"
	echo
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'), ${ELAPSED} s in all."
	echo
	echo '```'
	echo "command: BENCH_RUNS=$RUNS BENCH_SECS=$SECS TOKENS=$TOKENS CONNS=$CONNS IG_BIN=$IG scripts/bench/stream.sh $OUT"
	echo "nproc: $(nproc)"
	echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "kernel: $(uname -srm)"
	echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
	echo "haproxy: $(haproxy -v 2>&1 | head -1)"
	echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo '```'
	echo
	echo "$CONNS streams at a time of $TOKENS tokens ($EVENTS SSE events with [DONE]) from 4 simulators"
	echo "(a decode step a millisecond); each proxy with one worker on CPU $PCPU, wrk and the"
	echo "simulators on CPU $LCPU. Medians of $RUNS runs of ${SECS} s. CPU µs per event: the"
	echo "proxy's CPU time over a run divided by the events it relayed."
	echo
	echo "The last four columns come from \`infergate bench\` (16 streams at a time, 5 s, on CPU"
	echo "$LCPU): when the first token and each next one reached the client (ms)."
	echo
	echo "| target | streams/s | stream p50 ms | stream p99 ms | errors | user µs/event | system µs/event | CPU µs/event | TTFT p50 | ITL p50 | ITL p99 | ITL max |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in $TARGETS; do
		u=$(med $t 6)
		s=$(med $t 7)
		tot=$(awk -v u="$u" -v s="$s" 'BEGIN {if (u == "—") print "—"; else printf "%.2f", u + s}')
		errs=$(awk -v t=$t '$1 == t {n += $5} END {print n + 0}' "$OUT/raw.txt")
		ttft=$(awk -v t=$t '$1 == "ttft" && $2 == t {print $3}' "$OUT/raw.txt")
		itl=$(awk -v t=$t '$1 == "itl" && $2 == t {print $3 " | " $5 " | " $6}' "$OUT/raw.txt")
		echo "| $t | $(med $t 2) | $(med $t 3) | $(med $t 4) | $errs | $u | $s | $tot | ${ttft:-—} | ${itl:-— | — | —} |"
	done
	echo
	echo "Commands:"
	echo
	cat "$DIR/commands"
	echo "    $WRK TARGET.lua URL"
} > "$OUT/RESULTS.md"
sed -n '/^| target/,/^$/p' "$OUT/RESULTS.md"
echo "results: $OUT/RESULTS.md, runs: $OUT/raw.txt"

#!/bin/bash
# `make bench-longprompt`: agentic traffic with ~100K-token prompts through
# the gateway, and what it costs the gateway per request.
#
#   scripts/bench/longprompt.sh [OUTDIR]        (default build/bench-longprompt)
#
# The workload (infergate bench --workload agentic): SESSIONS conversations
# live at once, taken in turn; each opens with one shared 75,000-word
# system prompt and each of its 10 turns adds the previous answer (10
# tokens) and 5,000 new words, so every prompt extends its session's last
# one: 80,000 to 125,090 tokens, 102,545 on average (about 520 KB). Every
# request carries its session id in x-session-id. Streamed completions
# (and chat, see APIS) of 10 tokens; closed loop at CONC requests in
# flight (what the setup can take), and against the pods also a constant
# RATE (does the gateway keep up with it, and at what latency).
#
# Layout: the gateway with one worker alone on CPU 1 (taskset -c 1); the
# load generator and the model servers on CPU 0. Two kinds of model server:
#   sim   four `infergate sim` with zero simulated latency and prefix
#         caching. The simulator tokenizes and hashes every prompt (about
#         6 ms of CPU for 100K tokens), so on one core they serve ~150
#         requests/s: they, not the gateway, bound this run.
#   pods  four nginx fake pods (one worker) that read the whole body and
#         answer a fixed 10-token SSE stream with usage: the lighter
#         servers that let the load reach what the gateway can take.
# For each: the bench straight to one server ("direct"), then through the
# gateway (its default picker, or --picker PICKER; session affinity on).
# Gateway CPU comes from /proc/PID/stat (utime + stime) around the
# measured run, divided by the requests sent;
# the gateway's idle cost (scraping four servers every 50 ms) is measured
# over IDLE_SECS before and shown apart, not subtracted.
#
# Environment (defaults in brackets): BENCH_RUNS [3] runs per cell, the
# median (by requests/s) reported; BENCH_SECS [10] seconds per run;
# CONC [32] requests in flight; RATE [1000] requests/s of the open-loop
# runs (0: none); SESSIONS [64]; APIS [completions chat];
# UPSTREAMS [sim pods]; IDLE_SECS [3]; PERF [0]: 1 records the gateway's
# first run against the pods with `perf record -g` (OUTDIR/perf-*.data and
# the reports perf-*.txt);
# PICKER: a built-in picker configuration for the gateway (infergate, gie,
# llm-d, v0.2; empty: the gateway's default); GW_ENV: VAR=VALUE words put
# in the gateway's environment; IG_BIN
# [build/infergate]. About 9 minutes with the defaults.
#
# Prints a markdown table and the exact commands; writes OUTDIR/RESULTS.md,
# OUTDIR/*.json (bench reports) and the configurations.
set -eu
OUT=${1:-build/bench-longprompt}
SECS=${BENCH_SECS:-10}
CONC=${CONC:-32}
RATE=${RATE:-1000}
SESSIONS=${SESSIONS:-64}
APIS=${APIS:-completions chat}
UPSTREAMS=${UPSTREAMS:-sim pods}
IDLE_SECS=${IDLE_SECS:-3}
RUNS=${BENCH_RUNS:-3}
PERF=${PERF:-0}
GW_ENV=${GW_ENV:-} # VAR=VALUE ... for the gateway (e.g. GLIBC_TUNABLES=...)
PICKER=${PICKER:-}
IG=${IG_BIN:-$(pwd)/build/infergate}
NET=127.0.81
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

for tool in nginx taskset ss python3; do
	command -v $tool >/dev/null || { echo "longprompt.sh: $tool is missing (make bench-deps)" >&2; exit 1; }
done
[ "$PERF" = 0 ] || command -v perf >/dev/null || { echo "longprompt.sh: PERF=1 needs perf" >&2; exit 1; }
[ -x "$IG" ] || { echo "longprompt.sh: no infergate binary at $IG (make all)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "longprompt.sh: needs at least 2 CPUs" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DIR=$(mktemp -d /tmp/ig-longprompt.XXXXXX)
chmod 755 "$DIR" # nginx workers (user nobody when started by root) look into it
PIDS=""
trap remove_scratch EXIT
trap 'exit 130' INT TERM

SRVPORT=$(free_port $NET.1)
GWPORT=$(free_port $NET.100)
TICK=$(getconf CLK_TCK)
MODEL=longctx
rm -f "$OUT/commands"

BENCH_ARGS="--model $MODEL --workload agentic --sessions $SESSIONS --turns 10
	--system-prompt-len 75000 --turn-len 5000 --output-len 10 --stream --seed 1
	--no-progress"
SIM_ARGS="--served-model-name $MODEL --ttft-ms 0 --itl-ms 0 --prefill-us-per-token 0
	--decode-us-per-seq 0 --max-model-len 262144 --max-num-batched-tokens 1048576
	--max-num-seqs 1024 --num-gpu-blocks 300000"

# say CMD...: records CMD in the list of commands, then runs it.
say() {
	echo "    $*" | tr -s ' \t\n' ' ' >> "$OUT/commands"
	echo >> "$OUT/commands"
	"$@"
}
spawn() { # LOG CMD...: say, in the background
	log=$1
	shift
	echo "    $*" | tr -s ' \t\n' ' ' >> "$OUT/commands"
	echo >> "$OUT/commands"
	"$@" > "$log" 2>&1 &
	PIDS="$PIDS $!"
}

# ---- model servers ------------------------------------------------------------

# Four nginx fake pods: /metrics for the gateway's scraper; anything else
# is read whole (mirror_request_body) and answered with 10 SSE events, the
# usage event and [DONE]. The access log records each request's length.
pods_conf() {
	metrics='vllm:num_requests_waiting{model_name=\"'$MODEL'\"} 0\nvllm:num_requests_running{model_name=\"'$MODEL'\"} 0\nvllm:gpu_cache_usage_perc{model_name=\"'$MODEL'\"} 0.1\n'
	ev='{"id":"cmpl-1","object":"text_completion","created":1,"model":"'$MODEL'","choices":[{"index":0,"text":" ok","logprobs":null,"finish_reason":null}],"usage":null}'
	last='{"id":"cmpl-1","object":"text_completion","created":1,"model":"'$MODEL'","choices":[{"index":0,"text":" ok","logprobs":null,"finish_reason":"length"}],"usage":null}'
	usage='{"id":"cmpl-1","object":"text_completion","created":1,"model":"'$MODEL'","choices":[],"usage":{"prompt_tokens":100000,"completion_tokens":10,"total_tokens":100010}}'
	sse=""
	for _ in 1 2 3 4 5 6 7 8 9; do sse="${sse}data: $ev\n\n"; done
	sse="${sse}data: $last\n\ndata: $usage\n\ndata: [DONE]\n\n"
	cat <<C
worker_processes 1;
pid $DIR/pods.pid;
error_log $DIR/pods.err;
daemon on;
events { worker_connections 4096; }
http {
  log_format len '\$request_length';
  access_log $DIR/pods.access len buffer=64k;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_max_body_size 8m;
  client_body_buffer_size 8m;
  client_body_temp_path $DIR/tmp/body;
C
	for i in 1 2 3 4; do
		cat <<C
  server {
    listen $NET.$i:$SRVPORT;
    location /metrics { access_log off; default_type text/plain; return 200 "$metrics"; }
    location / { rewrite ^ /_body last; }
    location = /_body {
      internal; mirror /_read;
      root $DIR/none; log_not_found off; error_page 403 404 405 =200 @answer;
    }
    location = /_read { internal; access_log off; return 204; }
    location @answer { default_type text/event-stream; return 200 '$sse'; }
  }
C
	done
	echo "}"
}

SRVPIDS=""
start_servers() { # sim|pods
	SRVPIDS=""
	if [ "$1" = sim ]; then
		for i in 1 2 3 4; do
			# shellcheck disable=SC2086
			spawn "$DIR/sim$i.log" taskset -c 0 "$IG" sim --host $NET.$i --port "$SRVPORT" $SIM_ARGS
			SRVPIDS="$SRVPIDS $!"
		done
	else
		mkdir -p "$DIR/tmp"
		: > "$DIR/pods.access"
		pods_conf > "$OUT/pods.conf"
		say taskset -c 0 nginx -c "$OUT/pods.conf" -p "$DIR" -e "$DIR/pods.err"
	fi
	for i in 1 2 3 4; do wait_port $NET.$i "$SRVPORT"; done
	if [ "$1" = pods ]; then
		m=$(cat "$DIR/pods.pid")
		SRVPIDS="$m $(pgrep -P "$m" | tr '\n' ' ')"
	fi
}

stop_servers() {
	if [ -f "$DIR/pods.pid" ]; then
		kill "$(cat "$DIR/pods.pid")" 2>/dev/null || true
		n=0
		while [ -f "$DIR/pods.pid" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
	fi
	stop_all
}

# ---- the gateway ---------------------------------------------------------------

manifests() {
	gateway_pool_manifests "$GWPORT" "$SRVPORT" "$NET" 4
	cat <<YAML
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: $MODEL}
spec:
  modelName: $MODEL
  criticality: Critical
  poolRef: {name: p}
  targetModels: [{name: $MODEL, weight: 100}]
YAML
}

GW=""
start_gateway() {
	manifests > "$OUT/manifests.yaml"
	# shellcheck disable=SC2086
	spawn "$DIR/gw.log" env $GW_ENV taskset -c 1 "$IG" gateway -f "$OUT/manifests.yaml" --bind $NET.100 \
		--workers 1 --log-level warn ${PICKER:+--picker "$PICKER"}
	GW=$!
	wait_port $NET.100 "$GWPORT"
	sleep 0.5 # the first scrapes put the servers in rotation
}

ticks() { awk '{print $14 + 0, $15 + 0}' "/proc/$1/stat"; }
# Minor page faults of a process so far: memory it touched for the first
# time since the kernel gave it (or took it back).
minflt() { awk '{print $10 + 0}' "/proc/$1/stat"; }
# Run time in ns of a process (user + system, exact, unlike the ticks).
run_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
# User + system ticks of several processes together.
sum_ticks() {
	t=0
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo $t
}
# children_ms FILE: the user + system time, in ms, of the children this
# shell waited for, from bash's `times` written to FILE (times must run in
# this shell, not in a $(...) subshell, to see them).
children_ms() {
	awk 'NR == 2 {
		split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$1"
}

# Prefix-cache hit and query token counters summed over the simulators.
prefix_counts() {
	[ "$1" = sim ] || { echo "0 0"; return; }
	python3 - "$NET" "$SRVPORT" <<'PY'
import re, sys, urllib.request
net, port = sys.argv[1:]
tot = [0.0, 0.0]
for i in range(1, 5):
    page = urllib.request.urlopen("http://%s.%d:%s/metrics" % (net, i, port), timeout=5).read()
    for k, name in enumerate(("hits", "queries")):
        m = re.search(rb"^vllm:prefix_cache_%s_total\{[^}]*\} (\S+)$" % name.encode(), page, re.M)
        tot[k] += float(m.group(1)) if m else 0
print("%.0f %.0f" % tuple(tot))
PY
}

# ---- one measured run ----------------------------------------------------------

# measure UPSTREAM PATH API LOAD RUN: a warm-up (2 x CONC requests, not
# counted), then the measured run; LOAD is "closed" (CONC in flight) or
# "rate" (RATE requests/s). Appends its figures as one JSON line to
# $OUT/runs.jsonl.
measure() {
	up=$1 path=$2 api=$3 load=$4 run=$5
	name=$up-$path-$api-$load-$run
	if [ "$load" = closed ]; then
		lflags="--concurrency $CONC"
	else
		lflags="--rate $RATE --max-inflight 256"
	fi
	if [ "$path" = gateway ]; then url=http://$NET.100:$GWPORT; else url=http://$NET.1:$SRVPORT; fi
	# shellcheck disable=SC2086
	taskset -c 0 "$IG" bench --url "$url" --api "$api" $BENCH_ARGS --concurrency "$CONC" \
		--requests $((2 * CONC)) \
		--seed $((99 + run)) --quiet > /dev/null 2>&1 || true
	idle_us=null u0=0 s0=0 u1=0 s1=0 f0=0 f1=0
	if [ "$path" = gateway ]; then
		n0=$(run_ns "$GW")
		sleep "$IDLE_SECS"
		n1=$(run_ns "$GW")
		idle_us=$(awk -v d=$((n1 - n0)) -v s="$IDLE_SECS" 'BEGIN {printf "%.0f", d / 1e3 / s}')
		read -r u0 s0 < <(ticks "$GW")
		f0=$(minflt "$GW")
		if [ "$PERF" != 0 ] && [ "$up" = pods ] && [ "$load" = closed ] && [ "$run" = 1 ]; then
			perf record -g -o "$OUT/perf-$up-$api.data" -p "$GW" > /dev/null 2>&1 &
			PERFPID=$!
		fi
	fi
	[ "$up" = pods ] && : > "$DIR/pods.access"
	echo "== $name" >&2
	# shellcheck disable=SC2086
	srv0=$(sum_ticks $SRVPIDS)
	read -r h0 q0 < <(prefix_counts "$up")
	times > "$DIR/times0"
	rec=""
	[ "$run" = 1 ] && rec=say # the command list shows the first round's
	# shellcheck disable=SC2086
	$rec taskset -c 0 "$IG" bench --url "$url" --api "$api" $BENCH_ARGS $lflags --duration "${SECS}s" \
		--json "$OUT/$name.json" > "$OUT/$name.txt" || true
	times > "$DIR/times1"
	# shellcheck disable=SC2086
	srv_ticks=$(($(sum_ticks $SRVPIDS) - srv0))
	bench_ms=$(($(children_ms "$DIR/times1") - $(children_ms "$DIR/times0")))
	read -r h1 q1 < <(prefix_counts "$up")
	hit=null
	[ "$q1" != "$q0" ] && hit=$(awk -v h=$((h1 - h0)) -v q=$((q1 - q0)) 'BEGIN {printf "%.3f", h / q}')
	if [ "$path" = gateway ]; then
		read -r u1 s1 < <(ticks "$GW")
		f1=$(minflt "$GW")
		if [ -n "${PERFPID:-}" ]; then
			kill -INT "$PERFPID" 2>/dev/null || true
			wait "$PERFPID" 2>/dev/null || true
			PERFPID=""
			perf report -i "$OUT/perf-$up-$api.data" --no-children --stdio --percent-limit 0.5 \
				> "$OUT/perf-$up-$api.txt" 2>/dev/null || true
			perf report -i "$OUT/perf-$up-$api.data" --children --stdio --no-call-graph \
				--percent-limit 2 > "$OUT/perf-$up-$api-children.txt" 2>/dev/null || true
		fi
	fi
	kb=null
	if [ "$up" = pods ]; then
		sleep 0.2
		kill -USR1 "$(cat "$DIR/pods.pid")" 2>/dev/null || true # reopens the log: flushes it
		sleep 0.2
		kb=$(awk '{n++; s += $1} END {if (n) printf "%.1f", s / n / 1024; else print "null"}' \
			"$DIR/pods.access")
	fi
	{
		printf '{"up":"%s","path":"%s","api":"%s","load":"%s","run":%s,"report":"%s","tick":%s,' \
			"$up" "$path" "$api" "$load" "$run" "$OUT/$name.json" "$TICK"
		printf '"gw_user":%s,"gw_sys":%s,"idle_us_per_s":%s,"bench_ms":%s,"srv_ticks":%s,' \
			$((u1 - u0)) $((s1 - s0)) "$idle_us" "$bench_ms" "$srv_ticks"
		printf '"kb":%s,"prefix_hit":%s,"conc":%s,"rate":%s,"gw_minflt":%s}\n' "$kb" "$hit" \
			"$CONC" "$RATE" $((f1 - f0))
	} >> "$OUT/runs.jsonl"
}

# ---- the runs --------------------------------------------------------------------

rm -f "$OUT/runs.jsonl"
START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for up in $UPSTREAMS; do
	start_servers "$up"
	start_gateway
	# Rounds: every cell once per round, so drifts of a shared machine
	# hit them alike.
	for run in $(seq 1 "$RUNS"); do
		for api in $APIS; do
			measure "$up" direct "$api" closed "$run"
			measure "$up" gateway "$api" closed "$run"
			if [ "$up" = pods ] && [ "$RATE" != 0 ]; then
				measure "$up" direct "$api" rate "$run"
				measure "$up" gateway "$api" rate "$run"
			fi
		done
	done
	stop_servers
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "### Long prompts: agentic sessions, ~100K-token prompts (\`make bench-longprompt\`)"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs,"
	echo "load average $LOAD_BEFORE before, $LOAD_AFTER after; $RUNS runs of ${SECS}s per cell,"
	echo "closed loop: $CONC requests in flight; rate: $RATE requests/s; $SESSIONS sessions."
	echo "Gateway: 1 worker on CPU 1, picker ${PICKER:-(its default)}; bench and model servers on CPU 0."
	echo
	python3 "$HERE/longprompt-report.py" "$OUT/runs.jsonl"
	echo
	echo "Took $(($(date +%s) - START)) s. Commands:"
	echo
	grep -v '^ *$' "$OUT/commands"
} | tee "$OUT/RESULTS.md"

#!/bin/bash
# `make bench-instructions`: the gateway's user-space instructions per
# proxied request, counted by callgrind: exact where this VM's timings
# wander. The gateway (1 worker) runs under valgrind's callgrind, counting
# only inside its event loop (ig_loop_run_once and what it calls); wrk
# (-t1 -c4, SECS seconds) POSTs the seed's small completion through it to
# 4 nginx-served fake pods (the pods of scripts/bench/proxy.sh); the count
# divided by the requests served is printed, with the functions that take
# most (inclusive).
#
#   scripts/bench/instructions.sh [SECS]      (default 10)
#
# IG_BIN [build/infergate]; CG_OUT keeps callgrind's file (for
# callgrind_annotate) instead of removing it; CLIENT=h2 has HTTP/2 clients
# instead (h2load -c4 -m16, prior knowledge).
set -eu
SECS=${1:-10}
IG=${IG_BIN:-$(pwd)/build/infergate}
NET=127.0.81
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
CLIENT=${CLIENT:-http1}
LOADER=wrk
[ "$CLIENT" = h2 ] && LOADER=h2load
for tool in valgrind callgrind_annotate $LOADER nginx; do
	command -v $tool >/dev/null || { echo "instructions.sh: $tool is missing (make bench-instructions installs it)" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/ig-bench-instr.XXXXXX)
chmod 755 "$DIR"
PIDS=""
cleanup_all() {
	[ -f "$DIR/pods.pid" ] && kill "$(cat "$DIR/pods.pid")" 2>/dev/null
	stop_all
	rm -rf "$DIR"
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

PODPORT=$(free_port $NET.1)
GWPORT=$(free_port $NET.100)
body='{"id":"cmpl-1","object":"text_completion","model":"tweet-summary-1","choices":[{"index":0,"text":"ok","finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
metrics='vllm:num_requests_waiting{model_name=\"m\"} 0\nvllm:num_requests_running{model_name=\"m\"} 0\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.1\n'
mkdir -p "$DIR/tmp"
{
	echo "worker_processes 1; pid $DIR/pods.pid; error_log $DIR/pods.err; daemon on;"
	echo "events { worker_connections 4096; }"
	echo "http { access_log off; keepalive_requests 10000000; keepalive_timeout 600s; client_body_temp_path $DIR/tmp;"
	for i in 1 2 3 4; do
		echo "server { listen $NET.$i:$PODPORT; location /metrics { default_type text/plain; return 200 \"$metrics\"; }"
		echo "  location / { default_type application/json; return 200 '$body'; } }"
	done
	echo "}"
} > "$DIR/pods.conf"
{
	gateway_pool_manifests "$GWPORT" "$PODPORT" "$NET" 4
	seed_model_manifest
} > "$DIR/m.yaml"
cat > "$DIR/small.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco", "max_tokens": 100, "temperature": 0}'
LUA
nginx -c "$DIR/pods.conf" -p "$DIR" -e "$DIR/pods.err"
CG=${CG_OUT:-$DIR/cg.out}
valgrind --tool=callgrind --callgrind-out-file="$CG" --collect-atstart=no \
	--toggle-collect=ig_loop_run_once "$IG" gateway -f "$DIR/m.yaml" --bind $NET.100 \
	--workers 1 --upstream-max-idle 64 --upstream-idle-timeout 600s --log-level warn \
	> "$DIR/gw.log" 2>&1 &
GW=$!
PIDS=$GW
URL=http://$NET.100:$GWPORT/v1/completions
ok=""
for _ in $(seq 100); do
	if curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
		-d '{"model":"tweet-summary","prompt":"x"}' "$URL" 2>/dev/null | grep -q 200; then
		ok=1
		break
	fi
	sleep 0.2
done
[ -n "$ok" ] || { echo "instructions.sh: the gateway never answered 200" >&2; cat "$DIR/gw.log" >&2; exit 1; }
if [ "$CLIENT" = h2 ]; then
	echo '{"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco", "max_tokens": 100, "temperature": 0}' > "$DIR/small.json"
	LOADCMD="h2load -c4 -m16 -D$SECS"
	h2load -c4 -m16 -D"$SECS" -d "$DIR/small.json" -H content-type:application/json "$URL" |
		awk '/^requests:/ {print $8, "requests in"}' > "$DIR/wrk.txt"
else
	LOADCMD="wrk -t1 -c4 -d${SECS}s"
	wrk -t1 -c4 -d"${SECS}s" -s "$DIR/small.lua" "$URL" > "$DIR/wrk.txt"
fi
kill -INT $GW
wait $GW || true
PIDS=""
n=$(awk '/requests in/ {print $1}' "$DIR/wrk.txt")
total=$(callgrind_annotate "$CG" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "commit: $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "requests: $n ($LOADCMD), instructions in the event loop: $total"
echo "instructions per request: $((total / n))"
echo "most (inclusive, per request):"
callgrind_annotate --inclusive=yes "$CG" 2>/dev/null | awk -v n="$n" '
	/^ *[0-9,]+ +\(/ && c < 25 {
		ir = $1; gsub(",", "", ir); f = $NF; if ($NF ~ /^\[/) f = $(NF-1); sub(/.*:/, "", f)
		if (f ~ /^(TOTALS|ig_loop_run|ig_loop_run_once|clone|start_thread|worker_main)$/ || seen[f]++) next
		printf "  %7d  %s\n", ir / n, f; c++
	}'

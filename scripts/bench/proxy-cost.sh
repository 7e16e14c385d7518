#!/bin/sh
# Proxy cost (BENCHMARKS.md scenarios 1 and 2): the same zero-latency
# simulators reached directly, through nginx (round robin, keep-alive) and
# through infergate (which also parses the body, resolves the model and
# picks the endpoint). Prints markdown tables on stdout.
#
#   scripts/bench/proxy-cost.sh [SECONDS] [WORKERS]
set -e
SECS=${1:-5}
WORKERS=${2:-2}
IG=${IG_BIN:-$(pwd)/build/infergate}
NET=127.0.77
DIR=$(mktemp -d /tmp/ig-bench.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	[ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

for i in 1 2 3 4; do
	"$IG" sim --host $NET.$i --port 18000 --ttft-ms 0 --itl-ms 0 --prefill-us-per-token 0 \
		--max-model-len 100000000 --enable-lora --lora-modules tweet-summary-1=x \
		> "$DIR/sim$i.log" 2>&1 &
	PIDS="$PIDS $!"
done

cat > "$DIR/m.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners: [{name: llm, protocol: HTTP, port: 18081}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: p}]}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec:
  targetPortNumber: 18000
  selector: {app: sim}
  extensionRef: {name: epp}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec:
  modelName: tweet-summary
  criticality: Critical
  poolRef: {name: p}
  targetModels: [{name: tweet-summary-1, weight: 100}]
YAML
for i in 1 2 3 4; do
	printf -- "---\napiVersion: v1\nkind: Pod\nmetadata: {name: sim-%s, labels: {app: sim}}\nstatus: {podIP: %s.%s}\n" \
		$i $NET $i
done > "$DIR/pods.yaml"
"$IG" gateway -f "$DIR/m.yaml" -f "$DIR/pods.yaml" --bind $NET.100 --workers "$WORKERS" \
	--max-body-bytes 4194304 --log-level warn > "$DIR/gw.log" 2>&1 &
PIDS="$PIDS $!"

cat > "$DIR/nginx.conf" <<NGINX
worker_processes $WORKERS;
daemon on;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 4m;
  client_body_buffer_size 4m;
  upstream sims {
    server $NET.1:18000; server $NET.2:18000; server $NET.3:18000; server $NET.4:18000;
    keepalive 256;
  }
  server {
    listen $NET.101:18082;
    location / {
      proxy_pass http://sims;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -c "$DIR/nginx.conf" -p "$DIR" -e "$DIR/nginx-error.log"
sleep 1

# wrk scripts: a small completion; and prompts of 200 KB and 1 MB.
mkbody() { # $1 model, $2 prompt bytes, $3 file
	python3 - "$1" "$2" "$3" <<'PY'
import json, sys
model, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
words = "the quick brown fox jumps over a lazy dog and runs far away "
prompt = (words * (size // len(words) + 1))[:size] if size else "hi"
body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 1})
open(out, "w").write("wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = %s\n" % json.dumps(body))
PY
}
mkbody tweet-summary 0 "$DIR/ig.lua"
mkbody tweet-summary-1 0 "$DIR/direct.lua"
for kb in 200 1024; do
	mkbody tweet-summary $((kb * 1024)) "$DIR/ig-$kb.lua"
	mkbody tweet-summary-1 $((kb * 1024)) "$DIR/direct-$kb.lua"
done

# run NAME URL SCRIPT CONNS -> "rps p50_us p99_us errors"
run() {
	out=$(wrk -t1 -c"$4" -d"${SECS}s" -s "$3" --latency "$2" 2>&1)
	rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(printf '%s\n' "$out" | awk '$1=="50%" {print $2}')
	p99=$(printf '%s\n' "$out" | awk '$1=="99%" {print $2}')
	errs=$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $4} /Socket errors/ {print "sock"}' | head -1)
	echo "$rps $(us "$p50") $(us "$p99") ${errs:-0}"
}
us() { # wrk prints 812.00us / 1.23ms / 1.01s
	case "$1" in
	*us) awk -v v="${1%us}" 'BEGIN {printf "%.0f", v}' ;;
	*ms) awk -v v="${1%ms}" 'BEGIN {printf "%.0f", v * 1000}' ;;
	*s) awk -v v="${1%s}" 'BEGIN {printf "%.0f", v * 1000000}' ;;
	*) echo "?" ;;
	esac
}
DIRECT=http://$NET.1:18000/v1/completions
NGX=http://$NET.101:18082/v1/completions
IGW=http://$NET.100:18081/v1/completions

echo "### 1. Proxy cost: small completions, keep-alive (${SECS}s per run, $WORKERS workers each)"
echo
echo "| target | connections | requests/s | p50 µs | p99 µs | non-2xx |"
echo "|---|---|---|---|---|---|"
for c in 1 64; do
	set -- $(run direct $DIRECT "$DIR/direct.lua" $c); d50=$2; [ $c = 1 ] && base50=$2 && base99=$3
	echo "| direct (one simulator) | $c | $1 | $2 | $3 | $4 |"
	set -- $(run nginx $NGX "$DIR/direct.lua" $c); [ $c = 64 ] && ngx_rps=$1; [ $c = 1 ] && n50=$2 && n99=$3
	echo "| nginx round robin | $c | $1 | $2 | $3 | $4 |"
	set -- $(run infergate $IGW "$DIR/ig.lua" $c); [ $c = 64 ] && ig_rps=$1; [ $c = 1 ] && i50=$2 && i99=$3
	echo "| infergate (parse, resolve, pick) | $c | $1 | $2 | $3 | $4 |"
done
echo
echo "Added latency at 1 connection (proxy minus direct): nginx p50 $((n50 - base50)) µs, p99 $((n99 - base99)) µs;" \
	"infergate p50 $((i50 - base50)) µs, p99 $((i99 - base99)) µs."
echo "Throughput at 64 connections: infergate / nginx = $(awk -v a="$ig_rps" -v b="$ngx_rps" 'BEGIN {printf "%.2f", a / b}')."
echo
echo "### 2. Large prompts (1 connection)"
echo
echo "| prompt | direct p50 µs | nginx p50 µs | infergate p50 µs | infergate added p50 µs | infergate added p99 µs |"
echo "|---|---|---|---|---|---|"
for kb in 200 1024; do
	set -- $(run direct $DIRECT "$DIR/direct-$kb.lua" 1); d50=$2; d99=$3
	set -- $(run nginx $NGX "$DIR/direct-$kb.lua" 1); n50=$2
	set -- $(run infergate $IGW "$DIR/ig-$kb.lua" 1); i50=$2; i99=$3
	echo "| $kb KB | $d50 | $n50 | $i50 | $((i50 - d50)) | $((i99 - d99)) |"
done

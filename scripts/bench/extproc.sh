#!/bin/bash
# `make bench-extproc`: the endpoint picker over Envoy's ext_proc (issue 11,
# point 5): what `infergate epp` decides per second, and what the trip
# gateway → external picker adds to a request against the built-in picker.
#
#   scripts/bench/extproc.sh [OUTDIR]        (default build/bench-extproc)
#
# Model servers: four `infergate sim` (the LoRA adapters the tests use,
# zero simulated latency), InferenceModel tweet-summary → tweet-summary-1,
# so the picker rewrites the body's model as it does in the tests.
#
# Table 1, decisions: `infergate epp` (1 worker, -secureServing=false) on
# CPU 1; build/bench/extproc_bench on CPU 0 (with the simulators, idle but
# for the picker's scrapes every 50 ms): K Process streams in a closed loop
# over one HTTP/2 connection, each a request_headers message (FULL_DUPLEX
# request body, response body NONE), the completions body in 64 KiB chunks,
# the headers answer and the body streamed back up to end_of_stream, then
# the half-close. K = 1, 8, 32; bodies of 4 KB and 400 KB; then the same at
# K = 8 over TLS (a second epp with its self-signed certificate).
#
# Table 2, the gateway path: `infergate gateway` (1 worker, CPU 1) with
# its built-in picker, and a second one (also 1 worker, CPU 1) whose pool
# names a Service with clusterIP = the epp's address and appProtocol
# kubernetes.io/h2c, so it follows the epp (on CPU 1 as well) for every
# request as Envoy would: request_headers + body → pick + body back, then
# response_headers → answer, then the half-close. `infergate bench` on CPU
# 0 sends non-streamed completions with max_tokens 1 (4 KB prompts at 1
# and 8 in flight, 400 KB at 1), also straight to one simulator for
# reference; end-to-end p50/p90 and the difference external - built-in.
#
# Environment (defaults in brackets): BENCH_RUNS [3] runs per cell, the
# median reported (by decisions/s, resp. by p50); BENCH_SECS [4] measured
# seconds per run (after 1 s of warm-up); IG_BIN [build/infergate];
# XP_BENCH [build/bench/extproc_bench]. About 5 minutes.
#
# Prints markdown tables and the exact commands; writes OUTDIR/RESULTS.md,
# OUTDIR/*.json and the manifests.
set -eu
OUT=${1:-build/bench-extproc}
SECS=${BENCH_SECS:-4}
RUNS=${BENCH_RUNS:-3}
IG=${IG_BIN:-$(pwd)/build/infergate}
XP=${XP_BENCH:-$(pwd)/build/bench/extproc_bench}
NET=127.0.84
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

for tool in taskset ss python3; do
	command -v $tool >/dev/null || { echo "extproc.sh: $tool is missing (make bench-deps)" >&2; exit 1; }
done
[ -x "$IG" ] || { echo "extproc.sh: no infergate binary at $IG (make all)" >&2; exit 1; }
[ -x "$XP" ] || { echo "extproc.sh: no extproc_bench at $XP (make build/bench/extproc_bench)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "extproc.sh: needs at least 2 CPUs" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DIR=$(mktemp -d /tmp/ig-extproc.XXXXXX)
PIDS=""
trap remove_scratch EXIT
trap 'exit 130' INT TERM

SIMPORT=$(free_port $NET.1)
EPPPORT=$(free_port $NET.102)
TLSPORT=$(free_port $NET.103)
GWPORT=$(free_port $NET.100)
rm -f "$OUT/commands" "$OUT"/*.json "$OUT/runs.jsonl"

say() { # CMD...: recorded in the list of commands, then run
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

# ---- manifests -------------------------------------------------------------------

LORA0='{"name": "tweet-summary-0", "path": "SriSanth2345/Qwen-1.5B-Tweet-Generations", "base_model_name": "Qwen/Qwen2.5-1.5B"}'
LORA1='{"name": "tweet-summary-1", "path": "SriSanth2345/Qwen-1.5B-Tweet-Generations", "base_model_name": "Qwen/Qwen2.5-1.5B"}'
SIM_ARGS="--ttft-ms 0 --itl-ms 0 --prefill-us-per-token 0 --decode-us-per-seq 0
	--max-model-len 262144 --max-num-batched-tokens 1048576 --max-num-seqs 1024
	--num-gpu-blocks 300000 --enable-lora --max-loras 4"

# The pool, its model and pods: what the epp and both gateways read.
pool_manifests() {
	cat <<YAML
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec:
  targetPortNumber: $SIMPORT
  selector: {app: sim}
  extensionRef: {name: epp, portNumber: $EPPPORT, failureMode: FailClose}
YAML
	seed_model_manifest
	for i in 1 2 3 4; do
		printf -- "---\napiVersion: v1\nkind: Pod\nmetadata: {name: sim-%s, labels: {app: sim}}\nstatus: {podIP: %s.%s}\n" \
			"$i" "$NET" "$i"
	done
}

# gateway_manifests GWPORT: the Gateway and its route to the pool.
gateway_manifests() {
	cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners: [{name: llm, protocol: HTTP, port: $1}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: p}]}]
YAML
}

# The Service the pool's extensionRef names: the epp's address, h2c.
service_manifest() {
	cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: epp}
spec:
  clusterIP: $NET.102
  selector: {app: epp}
  ports: [{name: grpc, port: $EPPPORT, appProtocol: kubernetes.io/h2c}]
YAML
}

mkdir -p "$OUT/pool" "$OUT/gw-builtin" "$OUT/gw-extproc"
pool_manifests > "$OUT/pool/pool.yaml"
gateway_manifests "$GWPORT" > "$OUT/gw-builtin/gateway.yaml"
cp "$OUT/pool/pool.yaml" "$OUT/gw-builtin/pool.yaml"
gateway_manifests "$GWPORT" > "$OUT/gw-extproc/gateway.yaml"
cp "$OUT/pool/pool.yaml" "$OUT/gw-extproc/pool.yaml"
service_manifest > "$OUT/gw-extproc/service.yaml"

# ---- processes ----------------------------------------------------------------------

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for i in 1 2 3 4; do
	# shellcheck disable=SC2086
	spawn "$DIR/sim$i.log" taskset -c 0 "$IG" sim --host $NET.$i --port "$SIMPORT" $SIM_ARGS \
		--lora-modules "$LORA0" "$LORA1"
done
for i in 1 2 3 4; do wait_port $NET.$i "$SIMPORT"; done

# epp_start PORT SECURE: `infergate epp` on CPU 1 at NET.102 (plain) or
# NET.103 (TLS); sets EPP to its pid.
epp_start() {
	host=$NET.102 sec=-secureServing=false
	[ "$2" = tls ] && { host=$NET.103; sec=-secureServing=true; }
	spawn "$DIR/epp-$2.log" taskset -c 1 "$IG" epp -poolName p -f "$OUT/pool" --bind "$host" \
		-grpcPort "$1" -grpcHealthPort 0 -metricsPort 0 $sec --workers 1 --log-level warn
	EPP=$!
	wait_port "$host" "$1"
	sleep 0.5 # the first scrapes put the simulators in rotation
}

# ---- table 1: decisions per second ----------------------------------------------------

# xp_run NAME ARGS...: one extproc_bench run, its JSON line kept.
xp_run() {
	name=$1
	shift
	rec=""
	[ "$run" = 1 ] && rec=say
	$rec taskset -c 0 "$XP" "$@" --duration "$SECS" --warmup 1 --json > "$OUT/$name.json" ||
		echo "extproc.sh: $name: errors (see $OUT/$name.json)" >&2
	python3 - "$OUT/$name.json" "$name" >> "$OUT/runs.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["table"], r["name"] = "decisions", sys.argv[2]
print(json.dumps(r))
PY
	echo "== $name: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%(decisions_per_s).0f/s p50 %(p50_us).0f us, %(errors)d errors" % r)' "$OUT/$name.json")" >&2
}

epp_start "$EPPPORT" plain
PLAIN_EPP=$EPP
for run in $(seq 1 "$RUNS"); do
	for bytes in 4096 409600; do
		for k in 1 8 32; do
			xp_run "xp-h2c-$bytes-c$k-$run" --target "$NET.102:$EPPPORT" --concurrency "$k" \
				--body-bytes "$bytes" --cpu-of "$PLAIN_EPP"
		done
	done
done
epp_start "$TLSPORT" tls
TLS_EPP=$EPP
for run in $(seq 1 "$RUNS"); do
	for bytes in 4096 409600; do
		xp_run "xp-tls-$bytes-c8-$run" --target "$NET.103:$TLSPORT" --tls --concurrency 8 \
			--body-bytes "$bytes" --cpu-of "$TLS_EPP"
	done
done
kill "$TLS_EPP"
wait "$TLS_EPP" 2>/dev/null || true
PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$TLS_EPP" | tr '\n' ' ')

# ---- table 2: the gateway path --------------------------------------------------------

spawn "$DIR/gw-builtin.log" taskset -c 1 "$IG" gateway -f "$OUT/gw-builtin" --bind $NET.100 \
	--workers 1 --log-level warn
spawn "$DIR/gw-extproc.log" taskset -c 1 "$IG" gateway -f "$OUT/gw-extproc" --bind $NET.101 \
	--workers 1 --log-level warn
wait_port $NET.100 "$GWPORT"
wait_port $NET.101 "$GWPORT"
sleep 0.5

# cpu_ns PID: the run time of a process, all its threads.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }

# e2e_run NAME URL MODEL WORDS CONC: one `infergate bench` run, with the
# epp's CPU time over it (nonzero only when the gateway asks the epp).
e2e_run() {
	name=$1 url=$2 model=$3 words=$4 conc=$5
	rec=""
	[ "$run" = 1 ] && rec=say
	args="--model $model --input-len $words --output-len 1 --no-stream --seed $run --no-progress"
	# shellcheck disable=SC2086
	taskset -c 0 "$IG" bench --url "$url" $args --concurrency "$conc" --requests $((20 * conc)) \
		--quiet > /dev/null 2>&1 || true
	e0=$(cpu_ns "$PLAIN_EPP")
	# shellcheck disable=SC2086
	$rec taskset -c 0 "$IG" bench --url "$url" $args --concurrency "$conc" \
		--duration "${SECS}s" --json "$OUT/$name.json" --quiet > /dev/null ||
		echo "extproc.sh: $name: failed requests (see $OUT/$name.json)" >&2
	e1=$(cpu_ns "$PLAIN_EPP")
	python3 - "$OUT/$name.json" "$name" "$words" "$conc" $((e1 - e0)) >> "$OUT/runs.jsonl" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))["targets"][0]["stages"][0]
epp_us = int(sys.argv[5]) / 1e3 / max(st["ok"], 1)
e = st["latency_ms"]["e2e"]
print(json.dumps({"table": "e2e", "name": sys.argv[2], "words": int(sys.argv[3]),
                  "concurrency": int(sys.argv[4]), "rps": st["requests_per_s"],
                  "ok": st["ok"], "failed": st["failed"], "p50_ms": e["p50"],
                  "p90_ms": e["p90"], "p99_ms": e["p99"], "epp_us_per_req": epp_us}))
PY
}

# ~4 KB and ~400 KB bodies: the bench's words average 5.1 bytes with their space.
for run in $(seq 1 "$RUNS"); do
	for cell in "780 1" "780 8" "80300 1"; do
		read -r words conc <<< "$cell"
		e2e_run "e2e-direct-$words-c$conc-$run" "http://$NET.1:$SIMPORT" tweet-summary-1 "$words" "$conc"
		e2e_run "e2e-builtin-$words-c$conc-$run" "http://$NET.100:$GWPORT" tweet-summary "$words" "$conc"
		e2e_run "e2e-extproc-$words-c$conc-$run" "http://$NET.101:$GWPORT" tweet-summary "$words" "$conc"
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# A picker or gateway that misbehaved shows in its log (the built-in
# gateway's word that it serves the pool itself is expected).
for f in "$DIR"/epp-*.log "$DIR"/gw-*.log; do
	if grep -iE 'error|warn|sanitizer' "$f" | grep -qv 'the built-in picker serves the pool'; then
		echo "extproc.sh: $(basename "$f") has warnings:" >&2
		grep -iE 'error|warn|sanitizer' "$f" | head -5 >&2
		cp "$f" "$OUT/"
	fi
done

{
	echo "### The picker over ext_proc (\`make bench-extproc\`)"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs"
	echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
	echo "load average $LOAD_BEFORE before, $LOAD_AFTER after; median of $RUNS runs of ${SECS}s per cell."
	echo "The picker (and the gateways) on CPU 1, one worker each; the load generators and the"
	echo "four simulators on CPU 0."
	echo
	python3 "$HERE/extproc-report.py" "$OUT/runs.jsonl"
	echo
	echo "Took $(($(date +%s) - START)) s. Commands (first run of each cell):"
	echo
	grep -v '^ *$' "$OUT/commands"
} | tee "$OUT/RESULTS.md"

#!/bin/bash
# Proxy cost (BENCHMARKS.md scenarios 1 and 2): the same zero-latency
# simulators reached directly, through nginx (round robin, keep-alive) and
# through infergate (which also parses the body, resolves the model and
# picks the endpoint). Prints markdown tables on stdout.
#
#   scripts/bench/proxy-cost.sh [SECONDS] [REPS]
#
# Two core layouts, the same for nginx and infergate:
#   pinned: the proxy (1 worker) alone on CPU 1; wrk and the 4 simulators on
#           CPU 0. The proxy never competes with the load it is measured by.
#   shared: no pinning, 2 workers each; everything fights for both CPUs.
# Each (layout, target, connections) cell is run REPS times, interleaving
# the targets so drifts of the VM hit them alike; tables show medians.
set -e
SECS=${1:-3}
REPS=${2:-5}
LAYOUTS=${LAYOUTS:-pinned shared}
IG=${IG_BIN:-$(pwd)/build/infergate}
NET=127.0.77
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
SIMPORT=$(free_port $NET.1)
GWPORT=$(free_port $NET.100)
NGXPORT=$(free_port $NET.101)
DIR=$(mktemp -d /tmp/ig-bench.XXXXXX)
PIDS=""
trap remove_scratch EXIT
trap 'exit 130' INT TERM

manifests() {
	gateway_pool_manifests "$GWPORT" "$SIMPORT" "$NET" 4
	seed_model_manifest
}

# start LAYOUT: simulators, gateway and nginx with that layout's pinning.
start() {
	if [ "$1" = pinned ]; then
		LOAD="taskset -c 0"; PROXY="taskset -c 1"; W=1
	else
		LOAD=""; PROXY=""; W=2
	fi
	for i in 1 2 3 4; do
		$LOAD "$IG" sim --host $NET.$i --port "$SIMPORT" --ttft-ms 0 --itl-ms 0 \
			--prefill-us-per-token 0 --decode-us-per-seq 0 --max-model-len 100000000 \
			--enable-lora --lora-modules tweet-summary-1=x > "$DIR/sim$i.log" 2>&1 &
		PIDS="$PIDS $!"
	done
	manifests > "$DIR/m.yaml"
	# A session of its own, as nginx has once daemonized: autogroup
	# scheduling shares the CPUs evenly among sessions (see proxy.sh).
	$PROXY setsid "$IG" gateway -f "$DIR/m.yaml" --bind $NET.100 --workers $W \
		--max-body-bytes 4194304 --log-level warn > "$DIR/gw.log" 2>&1 &
	PIDS="$PIDS $!"
	cat > "$DIR/nginx.conf" <<NGINX
worker_processes $W;
daemon on;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 4m;
  client_body_buffer_size 4m;
  upstream sims {
    server $NET.1:$SIMPORT; server $NET.2:$SIMPORT; server $NET.3:$SIMPORT; server $NET.4:$SIMPORT;
    keepalive 256;
  }
  server {
    listen $NET.101:$NGXPORT;
    location / {
      proxy_pass http://sims;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
	$PROXY nginx -c "$DIR/nginx.conf" -p "$DIR" -e "$DIR/nginx-error.log"
	for i in 1 2 3 4; do wait_port $NET.$i "$SIMPORT"; done
	wait_port $NET.100 "$GWPORT"
	wait_port $NET.101 "$NGXPORT"
	sleep 0.3
}

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
mkbody tweet-summary 0 "$DIR/ig-0.lua"
mkbody tweet-summary-1 0 "$DIR/direct-0.lua"
for kb in 200 1024; do
	mkbody tweet-summary $((kb * 1024)) "$DIR/ig-$kb.lua"
	mkbody tweet-summary-1 $((kb * 1024)) "$DIR/direct-$kb.lua"
done

us() { # wrk prints 812.00us / 1.23ms / 1.01s
	case "$1" in
	*us) awk -v v="${1%us}" 'BEGIN {printf "%.0f", v}' ;;
	*ms) awk -v v="${1%ms}" 'BEGIN {printf "%.0f", v * 1000}' ;;
	*s) awk -v v="${1%s}" 'BEGIN {printf "%.0f", v * 1000000}' ;;
	*) echo "?" ;;
	esac
}
# run LAYOUT TARGET BODY CONNS: one wrk run, appended to $DIR/results as
# "layout target body conns rps p50_us p99_us errors".
run() {
	case $2 in
	direct) url=http://$NET.1:$SIMPORT/v1/completions; s=direct ;;
	nginx) url=http://$NET.101:$NGXPORT/v1/completions; s=direct ;;
	infergate) url=http://$NET.100:$GWPORT/v1/completions; s=ig ;;
	esac
	out=$($LOAD wrk -t1 -c"$4" -d"${SECS}s" -s "$DIR/$s-$3.lua" --latency "$url" 2>&1)
	rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
	p50=$(printf '%s\n' "$out" | awk '$1=="50%" {print $2}')
	p99=$(printf '%s\n' "$out" | awk '$1=="99%" {print $2}')
	errs=$(printf '%s\n' "$out" | awk '/Non-2xx/ {n += $4} /Socket errors/ {n += 1} END {print n + 0}')
	echo "$1 $2 $3 $4 ${rps:-0} $(us "$p50") $(us "$p99") $errs" >> "$DIR/results"
}

# med LAYOUT TARGET BODY CONNS FIELD: the median over the repetitions
# (FIELD 5 rps, 6 p50, 7 p99, 8 errors: the sum).
med() {
	awk -v l="$1" -v t="$2" -v b="$3" -v c="$4" -v f="$5" '
		$1 == l && $2 == t && $3 == b && $4 == c { v[n++] = $f; s += $f }
		END {
			if (f == 8) { print s; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
				if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			print (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		}' "$DIR/results"
}

for layout in $LAYOUTS; do
	start "$layout"
	r=1
	while [ $r -le "$REPS" ]; do
		for t in direct nginx infergate; do
			for c in 1 64; do run "$layout" $t 0 $c; done
			for kb in 200 1024; do run "$layout" $t $kb 1; done
		done
		r=$((r + 1))
	done
	stop_all
done

echo "### 1. Proxy cost: small completions, keep-alive"
echo
echo "wrk \`-t1 -d${SECS}s --latency\`, medians of $REPS runs per cell; non-2xx/socket errors summed over the runs."
echo
for layout in $LAYOUTS; do
	if [ "$layout" = pinned ]; then
		echo "**pinned**: proxy with 1 worker alone on CPU 1 (\`taskset -c 1\`); wrk and the simulators on CPU 0."
	else
		echo "**shared**: no pinning, 2 workers each; wrk, 4 simulators and the proxy share both CPUs."
	fi
	echo
	echo "| target | connections | requests/s | p50 µs | p99 µs | added p50 µs | added p99 µs | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for c in 1 64; do
		d50=$(med "$layout" direct 0 $c 6); d99=$(med "$layout" direct 0 $c 7)
		for t in direct nginx infergate; do
			p50=$(med "$layout" $t 0 $c 6); p99=$(med "$layout" $t 0 $c 7)
			add50="—"; add99="—"
			[ $t != direct ] && add50=$(awk -v a="$p50" -v b="$d50" 'BEGIN {print a - b}') \
				&& add99=$(awk -v a="$p99" -v b="$d99" 'BEGIN {print a - b}')
			echo "| $t | $c | $(med "$layout" $t 0 $c 5) | $p50 | $p99 | $add50 | $add99 | $(med "$layout" $t 0 $c 8) |"
		done
	done
	echo
	for c in 1 64; do
		echo "- $layout, $c connection(s): infergate / nginx requests/s = $(awk -v a="$(med "$layout" infergate 0 $c 5)" \
			-v b="$(med "$layout" nginx 0 $c 5)" 'BEGIN {printf "%.2f", a / b}')"
	done
	echo
done

echo "### 2. Large prompts (1 connection)"
echo
echo "| layout | prompt | direct p50 µs | nginx p50 µs | infergate p50 µs | nginx added p50 µs | infergate added p50 µs | infergate added p99 µs |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for layout in $LAYOUTS; do
	for kb in 200 1024; do
		d50=$(med "$layout" direct $kb 1 6); d99=$(med "$layout" direct $kb 1 7)
		n50=$(med "$layout" nginx $kb 1 6)
		i50=$(med "$layout" infergate $kb 1 6); i99=$(med "$layout" infergate $kb 1 7)
		sub() { awk -v a="$1" -v b="$2" 'BEGIN {print a - b}'; }
		echo "| $layout | $kb KB | $d50 | $n50 | $i50 | $(sub "$n50" "$d50") | $(sub "$i50" "$d50") | $(sub "$i99" "$d99") |"
	done
done
echo
if [ -n "$RAW" ]; then cp "$DIR/results" "$RAW"; fi

#!/bin/bash
# `make bench-proxy`: infergate, nginx and HAProxy side by side on this
# machine, measured the way /work/shared/tools/multicore-bench/run.sh
# measures them on 16 cores: the same 4 nginx-served fake pods answering
# the seed's small completion, the same request (the README's seed:
# model "tweet-summary", max_tokens 100), the same proxy configurations,
# 64 wrk connections per proxy worker. Prints markdown tables on stdout
# and writes OUTDIR/RESULTS.md, OUTDIR/raw.txt and the configs it ran.
#
#   scripts/bench/proxy.sh [OUTDIR]        (default build/bench-proxy)
#
# Environment (defaults in brackets): BENCH_RUNS [3] runs per cell, medians
# reported; BENCH_SECS [5] seconds per wrk run; LAYOUTS [pinned shared];
# IG_BIN [build/infergate]; KINDS [load small1 big1 h2]. About 8 minutes
# with the defaults.
#
# Layouts (CPU numbers as taskset counts them):
#   pinned: every proxy with 1 worker on CPU 1; wrk (-t1 -c64) and the fake
#           pods (one nginx worker) on CPU 0. The proxy never competes with
#           the load that measures it.
#   shared: every proxy with 2 workers on CPUs 0-1; wrk (-t2 -c128) and the
#           fake pods (two nginx workers) on the same two CPUs.
# Kinds: load (64 wrk connections per worker), small1 and big1 (1
# connection, the seed request and the same with a 1 MiB prompt), h2
# (HTTP/2 clients without TLS, prior knowledge: h2load, 4 connections per
# worker with 16 streams each; HTTP/1.1 to the pods still).
# In a layout all three proxies run at once (idle but for the one under
# load) and the targets take turns run by run, so drifts of a shared VM hit
# them alike.
set -eu
OUT=${1:-build/bench-proxy}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECS:-5}
LAYOUTS=${LAYOUTS:-pinned shared}
IG=${IG_BIN:-$(pwd)/build/infergate}
TARGETS=${TARGETS:-direct nginx haproxy infergate}
KINDS=${KINDS:-load small1 big1 h2} # 64 conns per worker; 1 conn; 1 MB prompt at 1 conn; h2c
NET=127.0.79
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

for tool in wrk h2load nginx haproxy taskset setsid curl ss python3; do
	command -v $tool >/dev/null || { echo "proxy.sh: $tool is missing (make bench-proxy installs it)" >&2; exit 1; }
done
[ -x "$IG" ] || { echo "proxy.sh: no infergate binary at $IG (make all)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "proxy.sh: needs at least 2 CPUs" >&2; exit 1; }

mkdir -p "$OUT/configs"
OUT=$(cd "$OUT" && pwd)
CFG=$OUT/configs
DIR=$(mktemp -d /tmp/ig-bench-proxy.XXXXXX)
chmod 755 "$DIR" # nginx workers (user nobody when started by root) look into it
# shellcheck disable=SC2034 # common.sh's spawn and stop_all use it
PIDS=""
stop_proxies() {
	for f in pods.pid front.pid; do
		[ -f "$DIR/$f" ] || continue
		kill "$(cat "$DIR/$f")" 2>/dev/null || true
		n=0
		while [ -f "$DIR/$f" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
	done
	stop_all
}
cleanup_all() {
	stop_proxies
	rm -rf "$DIR"
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

PODPORT=$(free_port $NET.1)
STATPORT=$(free_port $NET.1)
[ "$STATPORT" != "$PODPORT" ] || STATPORT=$((PODPORT + 1))
GWPORT=$(free_port $NET.100)
NGXPORT=$(free_port $NET.101)
HAPORT=$(free_port $NET.102)
NGXH2PORT=$(free_port $NET.103) # the HTTP/2 listeners of nginx and HAProxy
HAH2PORT=$(free_port $NET.104)
START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the request bodies (wrk scripts) ---------------------------------------

# The seed request of README.md, exactly as the multicore kit's post.lua.
cat > "$CFG/small.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco", "max_tokens": 100, "temperature": 0}'
LUA
echo '{"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco", "max_tokens": 100, "temperature": 0}' > "$DIR/small.json"
# The same request with a 1 MiB prompt (also as plain JSON for curl).
python3 - "$CFG/big.lua" "$DIR/big.json" <<'PY'
import json, sys
words = "Write as if you were a critic: San Francisco. "
prompt = (words * (2**20 // len(words) + 1))[:2**20]
body = json.dumps({"model": "tweet-summary", "prompt": prompt, "max_tokens": 100, "temperature": 0})
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' % json.dumps(body))
open(sys.argv[2], "w").write(body)
PY

# ---- the fake pods ----------------------------------------------------------

# One nginx serves the 4 pods (NET.1-4:PODPORT), as in the multicore kit:
# /metrics for infergate's scraper and the seed's completion for anything
# else, kept alive for long. Bodies of 10 kB or more go through a mirror
# (mirror_request_body reads the whole body first) so that the 1 MB answer
# leaves only after the prompt has arrived; `return` alone answers while
# the body is still coming in, and the small request stays that cheap.
# STATPORT's stub_status counts the connections the pods accepted: how many
# upstream connections each run made the proxy open.
pods_conf() { # WORKERS
	metrics='vllm:num_requests_waiting{model_name=\"m\"} 0\nvllm:num_requests_running{model_name=\"m\"} 0\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.1\n'
	body='{"id":"cmpl-1","object":"text_completion","model":"tweet-summary-1","choices":[{"index":0,"text":"ok","finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
	cat <<C
worker_processes $1;
pid $DIR/pods.pid;
error_log $DIR/pods.err;
daemon on;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_max_body_size 4m;
  client_body_buffer_size 4m;
  client_body_temp_path $DIR/tmp/pods-body;
C
	for i in 1 2 3 4; do
		cat <<C
  server {
    listen $NET.$i:$PODPORT reuseport;
    location /metrics { default_type text/plain; return 200 "$metrics"; }
    location / {
      if (\$http_content_length ~ "^[0-9]{5,}\$") { rewrite ^ /_body last; }
      if (\$http_transfer_encoding) { rewrite ^ /_body last; }
      default_type application/json; return 200 '$body';
    }
    location = /_body {
      internal; mirror /_read;
      root $DIR/none; log_not_found off; error_page 403 404 405 =200 @answer;
    }
    location = /_read { internal; return 204; }
    location @answer { default_type application/json; return 200 '$body'; }
  }
C
	done
	cat <<C
  server { listen $NET.1:$STATPORT; location / { stub_status; } }
}
C
}
pod_accepts() { # connections the pods accepted, this query's own included
	curl -s -m 2 "http://$NET.1:$STATPORT/" | awk 'NR == 3 {print $1}'
}

# ---- the proxies --------------------------------------------------------------

# nginx: the multicore kit's front.conf. Upstream keep-alive as long and as
# many requests as the pods allow (nginx closes an upstream connection after
# 1000 requests by default). worker_cpu_affinity auto would put worker 0 on
# CPU 0 whatever taskset said, so the pinned layout leaves it out.
front_conf() { # WORKERS AFFINITY
	cat <<C
worker_processes $1;
$2
pid $DIR/front.pid;
error_log $DIR/front.err;
daemon on;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_max_body_size 4m;
  client_body_buffer_size 4m;
  client_body_temp_path $DIR/tmp/front-body;
  proxy_temp_path $DIR/tmp/front-proxy;
  upstream pods {
    server $NET.1:$PODPORT; server $NET.2:$PODPORT; server $NET.3:$PODPORT; server $NET.4:$PODPORT;
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
  }
  server {
    listen $NET.101:$NGXPORT reuseport;
    location / { proxy_pass http://pods; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen $NET.103:$NGXH2PORT http2 reuseport;
    location / { proxy_pass http://pods; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
C
}

# HAProxy: the multicore kit's hap.cfg; idle server connections kept for
# long (pool-purge-delay, default 5s) like the other two.
haproxy_cfg() { # THREADS
	haproxy_head "$1"
	cat <<C
frontend fe
  bind $NET.102:$HAPORT
  default_backend pods
frontend fe_h2
  bind $NET.104:$HAH2PORT proto h2
  default_backend pods
backend pods
  balance roundrobin
  default-server pool-purge-delay 600s
  server p1 $NET.1:$PODPORT
  server p2 $NET.2:$PODPORT
  server p3 $NET.3:$PODPORT
  server p4 $NET.4:$PODPORT
C
}

# infergate: Gateway, HTTPRoute, InferencePool and a Pod per fake pod
# (common.sh), and the seed's InferenceModel tweet-summary -> tweet-summary-1.
manifests() {
	gateway_pool_manifests "$GWPORT" "$PODPORT" "$NET" 4
	seed_model_manifest
}

# layout NAME: the CPUs, worker counts and wrk settings of that layout.
layout() {
	case $1 in
	pinned) PCPU=1; LCPU=0; W=1; AFF="" ;;
	shared) PCPU=0-1; LCPU=0-1; W=2; AFF="worker_cpu_affinity auto;" ;;
	*) echo "proxy.sh: unknown layout $1" >&2; exit 1 ;;
	esac
	CONNS=$((64 * W))
	THREADS=$W
}

# say CMD...: runs CMD and records its command line in $DIR/commands.
say() {
	echo "    $*" >> "$DIR/commands"
	"$@"
}
# (spawn, the same in the background: common.sh.)

# check_answer NAME URL [CURL-OPTION]: the seed request, and the same with
# the 1 MB prompt, must come back 200 from tweet-summary-1.
check_answer() {
	for f in small.json big.json; do
		a=$(curl -s ${3:-} -m 5 -o "$DIR/answer" -w '%{http_code}' -H 'Content-Type: application/json' \
			-H 'Expect:' --data-binary "@$DIR/$f" "$2" || true)
		if [ "$a" != 200 ] || ! grep -q '"tweet-summary-1"' "$DIR/answer"; then
			echo "proxy.sh: $1 at $2 answered $f with $a: $(head -c 300 "$DIR/answer" 2>/dev/null)" >&2
			for l in pods.err front.err haproxy.log gw.log; do
				[ -s "$DIR/$l" ] && { echo "--- $l" >&2; tail -5 "$DIR/$l" >&2; }
			done
			exit 1
		fi
	done
}

start() { # LAYOUT
	layout "$1"
	rm -f "$DIR/commands"
	mkdir -p "$DIR/tmp" "$CFG/$1"
	C="$CFG/$1"
	pods_conf "$W" > "$C/pods.conf"
	front_conf "$W" "$AFF" > "$C/nginx.conf"
	haproxy_cfg "$W" > "$C/haproxy.cfg"
	manifests > "$C/manifests.yaml"
	say taskset -c "$LCPU" nginx -c "$C/pods.conf" -p "$DIR" -e "$DIR/pods.err"
	say taskset -c "$PCPU" nginx -c "$C/nginx.conf" -p "$DIR" -e "$DIR/front.err"
	# Every proxy runs in a session of its own, as nginx does once it has
	# daemonized: with the kernel's autogroup scheduling (on in most
	# distributions' kernels) a session is one group and groups share the
	# CPUs evenly, so a proxy left in this script's session would share one
	# group's CPU with wrk while nginx had a group to itself (in the shared
	# layout, infergate 0.71-0.76x nginx that way, 0.90-0.95x in its own).
	spawn "$DIR/haproxy.log" taskset -c "$PCPU" setsid haproxy -db -f "$C/haproxy.cfg"
	HAPID=$!
	spawn "$DIR/gw.log" taskset -c "$PCPU" setsid "$IG" gateway -f "$C/manifests.yaml" --bind $NET.100 \
		--workers "$W" --upstream-max-idle 64 --upstream-idle-timeout 600s --log-level warn
	GWPID=$!
	for i in 1 2 3 4; do wait_port $NET.$i "$PODPORT"; done
	wait_port $NET.101 "$NGXPORT"
	wait_port $NET.102 "$HAPORT"
	wait_port $NET.103 "$NGXH2PORT"
	wait_port $NET.104 "$HAH2PORT"
	wait_port $NET.100 "$GWPORT"
	sleep 0.5 # the gateway's first scrapes put the pods in rotation
	for t in $TARGETS; do check_answer $t "$(url $t)"; done
	case " $KINDS " in *" h2 "*)
		for t in $TARGETS; do measured $t h2 && check_answer $t "$(url $t h2)" --http2-prior-knowledge; done ;;
	esac
}

url() { # TARGET [KIND]: HTTP/2 clients reach nginx and HAProxy on listeners of their own
	case $1/${2:-} in
	direct/*) echo "http://$NET.1:$PODPORT/v1/completions" ;;
	nginx/h2) echo "http://$NET.103:$NGXH2PORT/v1/completions" ;;
	nginx/*) echo "http://$NET.101:$NGXPORT/v1/completions" ;;
	haproxy/h2) echo "http://$NET.104:$HAH2PORT/v1/completions" ;;
	haproxy/*) echo "http://$NET.102:$HAPORT/v1/completions" ;;
	infergate/*) echo "http://$NET.100:$GWPORT/v1/completions" ;;
	esac
}

# Whether TARGET is measured with KIND: the pods speak no HTTP/2.
measured() { [ "$1/$2" != direct/h2 ]; }

# wrk_cmd KIND SECS: the wrk command line of that kind in this layout.
wrk_cmd() {
	case $1 in
	load) echo "taskset -c $LCPU wrk -t$THREADS -c$CONNS -d$2s --latency -s $CFG/small.lua" ;;
	small1) echo "taskset -c $LCPU wrk -t1 -c1 -d$2s --latency -s $CFG/small.lua" ;;
	big1) echo "taskset -c $LCPU wrk -t1 -c1 -d$2s --latency -s $CFG/big.lua" ;;
	h2) echo "taskset -c $LCPU h2load -t$THREADS -c$((4 * W)) -m16 -D$2 -d $DIR/small.json -H content-type:application/json" ;;
	esac
}

us() { # wrk prints 812.00us / 1.23ms / 1.01s
	case "$1" in
	*us) awk -v v="${1%us}" 'BEGIN {printf "%.0f", v}' ;;
	*ms) awk -v v="${1%ms}" 'BEGIN {printf "%.0f", v * 1000}' ;;
	*m) awk -v v="${1%m}" 'BEGIN {printf "%.0f", v * 60000000}' ;;
	*s) awk -v v="${1%s}" 'BEGIN {printf "%.0f", v * 1000000}' ;;
	*) echo 0 ;;
	esac
}

# Upstream connections the target holds to the pods, halfway through a
# run (ss): the proxy's own process name, wrk's for direct.
ss_sample() { # TARGET
	case $1 in direct) p=wrk ;; *) p=$1 ;; esac
	sleep "$(awk -v s="$SECS" 'BEGIN {print s / 2}')"
	ss -Htnp state established "( dport = :$PODPORT )" 2>/dev/null | grep -c "((\"$p\"" || true
}

# cpu_ticks TARGET: "user system" clock ticks the target's processes have
# used so far (nginx: master and workers); "0 0" for direct.
cpu_ticks() {
	case $1 in
	nginx) ps="$(cat "$DIR/front.pid" 2>/dev/null) $(pgrep -P "$(cat "$DIR/front.pid" 2>/dev/null)" 2>/dev/null)" ;;
	haproxy) ps=$HAPID ;;
	infergate) ps=$GWPID ;;
	*) ps="" ;;
	esac
	for p in $ps; do cat "/proc/$p/stat" 2>/dev/null; done |
		awk '{sub(/^.*\) /, ""); u += $12; s += $13} END {print u + 0, s + 0}'
}

# run LAYOUT TARGET KIND: one wrk run, appended to $OUT/raw.txt as
# "layout target kind conns rps p50_us p99_us non2xx sockerr new_upstream
# ss_upstream user_us_per_req sys_us_per_req" (CPU time of the target's
# processes over the run divided by the requests it served; - for direct).
run() {
	a0=$(pod_accepts)
	c0=$(cpu_ticks "$2")
	ss_sample "$2" > "$DIR/ss" &
	sp=$!
	out=$($(wrk_cmd "$3" "$SECS") "$(url "$2" "$3")" 2>&1 || true)
	c1=$(cpu_ticks "$2")
	wait $sp || true
	a1=$(pod_accepts)
	if [ "$3" = h2 ]; then
		# h2load: "finished in 5.00s, 95000.00 req/s, ..."; "requests: N
		# total, N started, N done, N succeeded, N failed, N errored, N
		# timeout"; "status codes: N 2xx, ..."; "time for request: min max
		# mean sd" (no percentiles: the mean goes in the p50 field).
		rps=$(printf '%s\n' "$out" | awk '/^finished in/ {printf "%.0f", $4}')
		p50=$(printf '%s\n' "$out" | awk '/^time for request:/ {print $6}')
		p99=""
		bad=$(printf '%s\n' "$out" | awk '/^status codes:/ {print $5 + $7 + $9}')
		serr=$(printf '%s\n' "$out" | awk '/^requests:/ {print $10 + $12 + $14}')
		reqs=$(printf '%s\n' "$out" | awk '/^requests:/ {print $8}')
		c=$((4 * W))
	else
		rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
		p50=$(printf '%s\n' "$out" | awk '$1 == "50%" {print $2}')
		p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
		bad=$(printf '%s\n' "$out" | awk '/Non-2xx/ {n += $NF} END {print n + 0}')
		serr=$(printf '%s\n' "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
		reqs=$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')
		case $3 in load) c=$CONNS ;; *) c=1 ;; esac
	fi
	[ -n "$rps" ] || { echo "$3 run failed against $2:" >&2; printf '%s\n' "$out" | tail -5 >&2; }
	new=$((a1 - a0 - 1)) # less the second query's own connection
	cpu=$(awk -v a="$c0" -v b="$c1" -v n="${reqs:-0}" -v hz="$(getconf CLK_TCK)" -v t="$2" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (t == "direct" || n + 0 == 0) { print "- -"; exit }
		printf "%.2f %.2f", (y[1] - x[1]) / hz * 1e6 / n, (y[2] - x[2]) / hz * 1e6 / n }')
	echo "$1 $2 $3 $c ${rps:-0} $(us "${p50:-}") $(us "${p99:-}") ${bad:-0} ${serr:-0} $new $(cat "$DIR/ss") $cpu" >> "$OUT/raw.txt"
	echo "  $1 $2 $3: ${rps:-0} req/s p50 ${p50:-?} p99 ${p99:-?} non2xx $bad socket-errors $serr new-upstream $new ss-upstream $(cat "$DIR/ss")" >&2
}

# med LAYOUT TARGET KIND FIELD: median over the runs (FIELD 5 rps, 6 p50,
# 7 p99, 10 new upstream connections, 11 ss, 12-13 user and system CPU µs
# per request); fields 8-9 are summed.
med() {
	awk -v l="$1" -v t="$2" -v k="$3" -v f="$4" '
		$1 == l && $2 == t && $3 == k && $f != "-" { v[n++] = $f + 0; s += $f }
		END {
			if (n == 0) { print "—"; exit }
			if (f == 8 || f == 9) { print s; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
				if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			print (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
		}' "$OUT/raw.txt"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "—" || b == "—") print "—"; else print a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "—"; else printf "%.2f", a / b}'; }
# The sum of error counts, a kind not run ("—") counting none.
errs() { awk 'BEGIN {s = 0; for (i = 1; i < ARGC; i++) if (ARGV[i] != "—") s += ARGV[i]; print s}' "$@"; }

# ---- the runs -------------------------------------------------------------------

: > "$OUT/raw.txt"
: > "$DIR/all-commands"
for l in $LAYOUTS; do
	echo "layout $l: starting pods and proxies..." >&2
	start "$l"
	{
		echo "**$l** commands:"
		echo
		cat "$DIR/commands"
		for k in $KINDS; do echo "    $(wrk_cmd $k "$SECS") URL"; done
		echo
	} >> "$DIR/all-commands"
	# Warm-up: every target and kind once, so the proxies hold their
	# upstream connections before the first measured run.
	for t in $TARGETS; do
		for k in $KINDS; do
			measured $t $k || continue
			ws=1; [ $k = load ] && ws=2
			$(wrk_cmd $k $ws) "$(url $t $k)" > /dev/null 2>&1 || true
		done
	done
	r=1
	while [ $r -le "$RUNS" ]; do
		for k in $KINDS; do
			for t in $TARGETS; do measured $t $k && run "$l" $t $k; done
		done
		r=$((r + 1))
	done
	grep -v -e '^\[NOTICE\]' -e '^$' "$DIR/haproxy.log" | head -5 | sed 's/^/haproxy: /' >&2 || true
	[ -s "$DIR/gw.log" ] && sed 's/^/infergate: /' "$DIR/gw.log" | head -5 >&2
	stop_proxies
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - START))

# ---- the report -----------------------------------------------------------------

report() {
	echo "## Proxies side by side: infergate, nginx, HAProxy (\`make bench-proxy\`)"
	echo
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $ELAPSED s in all."
	echo
	echo '```'
	echo "command: BENCH_RUNS=$RUNS BENCH_SECS=$SECS LAYOUTS=\"$LAYOUTS\" IG_BIN=$IG scripts/bench/proxy.sh $OUT"
	echo "nproc: $(nproc)"
	echo "cpu: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')"
	echo "kernel: $(uname -srm)"
	echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //')"
	echo "haproxy: $(haproxy -v | head -1)"
	echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
	echo '```'
	echo
	echo "Fake pods: one nginx serving 4 addresses, answering the seed's completion."
	echo "Request: the seed's (\`model: tweet-summary\`, \`max_tokens: 100\`), POSTed by wrk;"
	echo "the 1 MB case has a 1 MiB prompt. Medians of $RUNS runs of ${SECS}s per cell;"
	echo "errors are non-2xx answers plus wrk socket errors, summed over the runs. \`new upstream\`:"
	echo "connections the pods accepted during a run (median; 0 = every request on a kept-alive"
	echo "connection; for direct, wrk's own); \`ss upstream\`: established connections the target held to the pods halfway"
	echo "through a run, idle ones included (infergate's include its 4 metrics scrapes). CPU µs/request:"
	echo "the target's user and system CPU time over a run (/proc/PID/stat) divided by the requests"
	echo "it served; system time is the kernel's TCP work, the same for every proxy."
	echo
	for l in $LAYOUTS; do
		layout "$l"
		case $l in
		pinned) echo "**pinned** (1 worker): each proxy on CPU 1 (\`taskset -c 1\`); wrk -t1 and the fake pods (1 nginx worker) on CPU 0." ;;
		shared) echo "**shared** (2 workers): each proxy on CPUs 0-1; wrk -t2 and the fake pods (2 nginx workers) on the same two CPUs." ;;
		esac
		echo
	done
	echo "### Throughput: 64 connections per proxy worker"
	echo
	echo "| layout | target | workers | connections | requests/s | ÷ nginx | p50 µs | p99 µs | errors | new upstream | ss upstream | CPU µs/request: user | system |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for l in $LAYOUTS; do
		layout "$l"
		n=$(med "$l" nginx load 5)
		for t in $TARGETS; do
			w=$W; x=$(ratio "$(med "$l" $t load 5)" "$n")
			[ $t = direct ] && w="—" && x="—"
			e=$(errs "$(med "$l" $t load 8)" "$(med "$l" $t load 9)")
			echo "| $l | $t | $w | $CONNS | $(med "$l" $t load 5) | $x | $(med "$l" $t load 6) | $(med "$l" $t load 7) | $e | $(med "$l" $t load 10) | $(med "$l" $t load 11) | $(med "$l" $t load 12) | $(med "$l" $t load 13) |"
		done
	done
	echo
	echo "### Latency: 1 connection, small request and 1 MB prompt (added = target minus direct to a pod)"
	echo
	echo "| layout | target | p50 µs | p99 µs | added p50 µs | 1 MB p50 µs | 1 MB p99 µs | 1 MB added p50 µs | 1 MB added p99 µs | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for l in $LAYOUTS; do
		d50=$(med "$l" direct small1 6)
		b50=$(med "$l" direct big1 6); b99=$(med "$l" direct big1 7)
		for t in $TARGETS; do
			p50=$(med "$l" $t small1 6); q50=$(med "$l" $t big1 6); q99=$(med "$l" $t big1 7)
			a50="—"; aq50="—"; aq99="—"
			if [ $t != direct ]; then a50=$(sub "$p50" "$d50"); aq50=$(sub "$q50" "$b50"); aq99=$(sub "$q99" "$b99"); fi
			e=$(errs "$(med "$l" $t small1 8)" "$(med "$l" $t small1 9)" "$(med "$l" $t big1 8)" "$(med "$l" $t big1 9)")
			echo "| $l | $t | $p50 | $(med "$l" $t small1 7) | $a50 | $q50 | $q99 | $aq50 | $aq99 | $e |"
		done
	done
	case " $KINDS " in *" h2 "*)
		echo
		echo "### HTTP/2 clients (h2c, prior knowledge): h2load, 4 connections per proxy worker, 16 streams each"
		echo
		echo "HTTP/1.1 to the pods. h2load prints no percentiles: its mean time per request."
		echo
		echo "| layout | target | workers | requests/s | ÷ nginx | ÷ HAProxy | mean µs | errors | new upstream | CPU µs/request: user | system |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for l in $LAYOUTS; do
			layout "$l"
			n=$(med "$l" nginx h2 5); h=$(med "$l" haproxy h2 5)
			for t in $TARGETS; do
				measured $t h2 || continue
				r=$(med "$l" $t h2 5)
				e=$(errs "$(med "$l" $t h2 8)" "$(med "$l" $t h2 9)")
				echo "| $l | $t | $W | $r | $(ratio "$r" "$n") | $(ratio "$r" "$h") | $(med "$l" $t h2 6) | $e | $(med "$l" $t h2 10) | $(med "$l" $t h2 12) | $(med "$l" $t h2 13) |"
			done
		done
		;;
	esac
	echo
	echo "Commands (configs and wrk scripts in \`$CFG/\`; -p is a scratch directory). URL:"
	for t in $TARGETS; do echo "$t \`$(url $t)\`"; done | paste -sd ',' | sed 's/,/, /g'
	case " $KINDS " in *" h2 "*)
		echo
		echo "HTTP/2 URL (h2load):"
		for t in $TARGETS; do measured $t h2 && echo "$t \`$(url $t h2)\`"; done | paste -sd ',' | sed 's/,/, /g'
		;;
	esac
	echo
	cat "$DIR/all-commands"
}
report | tee "$OUT/RESULTS.md"
echo "results: $OUT/RESULTS.md, runs: $OUT/raw.txt" >&2

#!/bin/bash
# Routing quality (BENCHMARKS.md scenario 3): 8 simulators with a measured
# latency profile, LoRA adapters (2 slots, 4 adapters) and prefix caching;
# a shared-prefix workload with a LoRA mix; a Poisson sweep past
# saturation. Every candidate gets fresh simulators (empty caches, no
# resident adapters) and exactly the same request sequence (same seed).
#
#   scripts/bench/routing.sh OUTDIR [CANDIDATE...]
#
# Candidates: nginx-rr nginx-lc ig-random ig-tree ig-gie llmd ig-default
# ig-x (default: nginx-rr ig-gie llmd ig-default). ig-gie, llmd and
# ig-default are the gateway's built-in configurations `--picker gie`,
# `--picker llm-d` and the default (`--picker infergate`); ig-x runs the
# EndpointPickerConfig in $X_CONFIG. Environment knobs (defaults in
# brackets): RATES [100,150,200,250,300,350,400] requests/s, STAGE [10s],
# SCALE [0.5] (sim --time-scale: the simulated H100s run at half of real
# speed, so the sweep goes past the anchors' saturation within what two
# CPUs can drive), LORA_SLOTS [2] (--max-loras), SEEDS [1 2 3] (one full
# run per seed; nginx with the first one only), GW_ARGS [] more flags for
# the gateway (e.g. --access-log FILE), MIX_GATEWAY [chat-a:40,chat-b:30,
# chat-c:20,chat-d:10] the gateway candidates' mix (chat-base is the
# simulators' base model).
# Writes OUTDIR/seed-S/CANDIDATE.{json,svg,txt} (infergate bench).
set -e
OUT=${1:?usage: routing.sh OUTDIR [CANDIDATE...]}
shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
IG=${IG_BIN:-$(pwd)/build/infergate}
RATES=${RATES:-100,150,200,250,300,350,400}
STAGE=${STAGE:-10s}
SCALE=${SCALE:-0.5}
SEEDS=${SEEDS:-1 2 3}
NET=127.0.78
NSIM=8
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
SIMPORT=$(free_port $NET.1)
GWPORT=$(free_port $NET.100)
NGXPORT=$(free_port $NET.101)
DIR=$(mktemp -d /tmp/ig-routing.XXXXXX)
PIDS=""
trap remove_scratch EXIT
trap 'exit 130' INT TERM

# The workload: 16 groups x 8 questions over a 4000-word system prompt, 30
# output tokens, four adapters in a 40/30/20/10 mix. The simulator keys the
# prefix cache by adapter, so there are 64 distinct 4000-token prefixes
# (256k tokens) against 64k tokens of KV cache per simulator: a router that
# keeps each (adapter, group) on one simulator can hit the cache almost
# always; one that spreads them cannot.
ADAPTERS="lora-a lora-b lora-c lora-d"
MIX_DIRECT="lora-a:40,lora-b:30,lora-c:20,lora-d:10"
MIX_GATEWAY=${MIX_GATEWAY:-chat-a:40,chat-b:30,chat-c:20,chat-d:10}
BENCH_ARGS="--workload shared-prefix --groups 16 --prompts-per-group 8
	--system-prompt-len 4000 --question-len 20 --output-len 30 --stream
	--load poisson --rates $RATES --stage-duration $STAGE
	--max-inflight 2000 --timeout 300s --no-progress --max-error-rate 1"
BASE_MODEL=Qwen/Qwen2.5-1.5B-Instruct # what the simulators serve (chat-base)
SIM_ARGS="--model $BASE_MODEL --profile llama3.1-8b-h100 --time-scale $SCALE --enable-lora --max-loras ${LORA_SLOTS:-2}
	--num-gpu-blocks 4000 --enable-prefix-caching"

start_sims() {
	mods=""
	for a in $ADAPTERS; do mods="$mods $a=/adapters/$a"; done
	i=1
	while [ $i -le $NSIM ]; do
		# shellcheck disable=SC2086
		"$IG" sim --host $NET.$i --port "$SIMPORT" $SIM_ARGS --seed $i \
			--lora-modules $mods > "$DIR/sim$i.log" 2>&1 &
		PIDS="$PIDS $!"
		i=$((i + 1))
	done
	i=1
	while [ $i -le $NSIM ]; do
		wait_port $NET.$i "$SIMPORT"
		i=$((i + 1))
	done
}

manifests() {
	gateway_pool_manifests "$GWPORT" "$SIMPORT" "$NET" "$NSIM"
	for a in $ADAPTERS; do
		printf -- "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
		printf "metadata: {name: chat-%s}\nspec:\n  modelName: chat-%s\n  criticality: Critical\n" "${a#lora-}" "${a#lora-}"
		printf "  poolRef: {name: p}\n  targetModels: [{name: %s, weight: 100}]\n" "$a"
	done
	# chat-base: the simulators' base model, for MIX_GATEWAY with base traffic.
	printf -- "---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\n"
	printf "metadata: {name: chat-base}\nspec:\n  modelName: chat-base\n  criticality: Critical\n"
	printf "  poolRef: {name: p}\n  targetModels: [{name: %s, weight: 100}]\n" "$BASE_MODEL"
}

# picker_config NAME: the EndpointPickerConfig of an infergate candidate
# that is not a built-in one (empty output: none).
picker_config() {
	hdr="apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig"
	case $1 in
	ig-random) printf '%s\n%s\n' "$hdr" "plugins:
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: random-picker" ;;
	ig-tree) printf '%s\n%s\n' "$hdr" "plugins:
- type: decision-tree-filter
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decision-tree-filter
  - pluginRef: random-picker" ;;
	ig-x) cat "${X_CONFIG:?ig-x needs X_CONFIG=FILE}" ;;
	esac
}

start_gateway() { # $1 candidate
	manifests > "$DIR/gw.yaml"
	pc=""
	picker_config "$1" > "$DIR/picker.yaml"
	[ -s "$DIR/picker.yaml" ] && pc="--picker-config $DIR/picker.yaml"
	case $1 in
	ig-gie) pc="--picker gie" ;;
	llmd) pc="--picker llm-d" ;;
	ig-default) pc="" ;; # --picker infergate
	esac
	# A session of its own, as nginx has once daemonized: autogroup
	# scheduling shares the CPUs evenly among sessions (see proxy.sh).
	# shellcheck disable=SC2086
	setsid "$IG" gateway -f "$DIR/gw.yaml" --bind $NET.100 --workers 2 --log-level warn \
		$pc $GW_ARGS > "$DIR/gw.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_port $NET.100 "$GWPORT"
}

start_nginx() { # $1 balancing directive ("" = round robin, "least_conn;")
	servers=""
	i=1
	while [ $i -le $NSIM ]; do
		servers="$servers server $NET.$i:$SIMPORT;"
		i=$((i + 1))
	done
	cat > "$DIR/nginx.conf" <<NGINX
worker_processes 2;
daemon on;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_max_body_size 4m;
  client_body_buffer_size 256k;
  upstream sims { $1 $servers keepalive 256; }
  server {
    listen $NET.101:$NGXPORT;
    location / {
      proxy_pass http://sims;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
NGINX
	nginx -c "$DIR/nginx.conf" -p "$DIR" -e "$DIR/nginx-error.log"
	wait_port $NET.101 "$NGXPORT"
}

run_candidate() { # $1 candidate, $2 seed, $3 output directory
	start_sims
	case $1 in
	nginx-rr) start_nginx "" ; url=http://$NET.101:$NGXPORT; mix=$MIX_DIRECT ;;
	nginx-lc) start_nginx "least_conn;" ; url=http://$NET.101:$NGXPORT; mix=$MIX_DIRECT ;;
	ig-*|llmd) start_gateway "$1"; url=http://$NET.100:$GWPORT; mix=$MIX_GATEWAY ;;
	*) echo "unknown candidate $1" >&2; exit 2 ;;
	esac
	sleep 0.5 # let the gateway scrape every simulator once
	echo "== $1: infergate bench --target $1=$url --models $mix $BENCH_ARGS --seed $2" | tr -s ' \t\n' ' ' >&2
	echo >&2
	# shellcheck disable=SC2086
	"$IG" bench --target "$1=$url" --models "$mix" $BENCH_ARGS --seed "$2" \
		--json "$3/$1.json" --svg "$3/$1.svg" > "$3/$1.txt" || true
	stop_all
}

CANDS=${*:-"nginx-rr ig-gie llmd ig-default"}
# nginx is the baseline, overloaded from the first stage on: its runs take
# about 7 minutes (the drains), so it runs with the first seed only.
first=""
for seed in $SEEDS; do
	mkdir -p "$OUT/seed-$seed"
	for c in $CANDS; do
		case $c in nginx-*) [ -n "$first" ] && continue ;; esac
		run_candidate "$c" "$seed" "$OUT/seed-$seed"
	done
	first=$seed
done

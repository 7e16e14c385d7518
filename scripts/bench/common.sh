# Helpers shared by the benchmark scripts (sourced, not run). They expect
# $DIR (a scratch directory) and $PIDS (processes this script started).

# free_port ADDR: a TCP port nothing listens on at ADDR or on the wildcard.
free_port() {
	p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	while ss -Htln 2>/dev/null | awk '{print $4}' | grep -q -e "^$1:$p\$" -e "^0.0.0.0:$p\$" -e "^\*:$p\$" -e "^\[::\]:$p\$"; do
		p=$((p + 1))
	done
	echo $p
}

# wait_port ADDR PORT: until something accepts there (5 s at most).
wait_port() {
	n=0
	while ! (exec 3<>/dev/tcp/$1/$2) 2>/dev/null; do
		n=$((n + 1))
		[ $n -gt 100 ] && { echo "nothing listens on $1:$2" >&2; return 1; }
		sleep 0.05
	done
}

# spawn LOG CMD...: CMD in the background, its output in LOG, its command
# line in $DIR/commands and its pid (taskset execs CMD) added to PIDS.
spawn() {
	log=$1
	shift
	echo "    $*" >> "$DIR/commands"
	"$@" > "$log" 2>&1 &
	PIDS="$PIDS $!"
}

# remove_scratch: stop_all, then $DIR goes (the scripts' EXIT trap).
remove_scratch() {
	stop_all
	rm -rf "$DIR"
}

# stop_all: ends the processes in $PIDS and the nginx of $DIR, and waits.
stop_all() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	if [ -f "$DIR/nginx.pid" ]; then
		kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
		n=0
		while [ -f "$DIR/nginx.pid" ] && [ $n -lt 50 ]; do sleep 0.05; n=$((n + 1)); done
	fi
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	PIDS=""
}

# gateway_pool_manifests GWPORT SIMPORT NET NSIM: a Gateway with one HTTP
# listener, an HTTPRoute to InferencePool p (selector app: sim, target port
# SIMPORT) and a ready Pod per simulator at NET.1 .. NET.NSIM. The callers
# add their InferenceModels.
gateway_pool_manifests() {
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
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec:
  targetPortNumber: $2
  selector: {app: sim}
  extensionRef: {name: epp}
YAML
	i=1
	while [ "$i" -le "$4" ]; do
		printf -- "---\napiVersion: v1\nkind: Pod\nmetadata: {name: sim-%s, labels: {app: sim}}\nstatus: {podIP: %s.%s}\n" \
			"$i" "$3" "$i"
		i=$((i + 1))
	done
}

# seed_model_manifest: the seed's InferenceModel, tweet-summary ->
# tweet-summary-1 in pool p (a document of its own, "---" first).
seed_model_manifest() {
	cat <<'YAML'
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: tweet-summary}
spec:
  modelName: tweet-summary
  criticality: Critical
  poolRef: {name: p}
  targetModels: [{name: tweet-summary-1, weight: 100}]
YAML
}

# haproxy_head THREADS: the global and defaults sections HAProxy runs with
# in every benchmark (the multicore kit's hap.cfg).
haproxy_head() {
	cat <<C
global
  nbthread $1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
C
}

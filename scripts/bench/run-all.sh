#!/bin/bash
# `make bench`: every scenario of docs/BENCHMARKS.md in one run (about 40
# minutes on 2 cores). Results go to OUTDIR (markdown, JSON, SVG); the
# charts are also copied to docs/plots/.
#
#   scripts/bench/run-all.sh OUTDIR
set -e
OUT=${1:?usage: run-all.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/routing"
SLO_MS=${SLO_MS:-2000}
{
	echo "# infergate benchmark run, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null)"
	echo
	echo '```'
	echo "nproc: $(nproc)"
	lscpu | head -20 | grep -E 'Architecture|Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L1d|L2|L3'
	echo "nginx: $(nginx -v 2>&1)"
	echo "wrk: $(wrk -v 2>&1 | head -1)"
	echo '```'
	echo
} > "$OUT/RESULTS.md"
echo "proxy cost (scenarios 1 and 2)..." >&2
RAW="$OUT/proxy-cost.raw" "$HERE/proxy-cost.sh" "${PROXY_SECS:-3}" "${PROXY_REPS:-5}" >> "$OUT/RESULTS.md"
echo "routing quality (scenario 3)..." >&2
"$HERE/routing.sh" "$OUT/routing"
{
	echo "### 3. Routing quality"
	echo
	python3 "$HERE/routing-report.py" "$OUT/routing" "$SLO_MS" "$OUT/routing/all.svg"
} >> "$OUT/RESULTS.md"
if [ -d docs/plots ] || mkdir -p docs/plots; then
	cp "$OUT/routing/all.svg" docs/plots/routing-all.svg
	first=$(ls -d "$OUT"/routing/seed-* | head -1)
	for f in "$first"/*.json; do
		c=$(basename "$f" .json)
		cp "$first/$c.svg" "docs/plots/routing-$c.svg"
	done
fi
cat "$OUT/RESULTS.md"

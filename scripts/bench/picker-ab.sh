#!/bin/sh
# picker-ab.sh BASE [BLOCKS]: make bench-picker's loop for the library of
# commit BASE (A) and the library of the work tree (B), linked into one
# process with their symbols renamed, in alternating blocks of picks (see
# scripts/bench/picker_ab.c). On a machine with other load, separate runs
# of picker_bench vary by 30 %; here both sides see the same load. Pinned
# to CPU 1 like the figures in docs/BENCHMARKS.md when there is one.
set -e
BASE=${1:?usage: picker-ab.sh BASE_COMMIT [BLOCKS]}
BLOCKS=${2:-50}
DIR=$(mktemp -d /tmp/ig-picker-ab.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
mkdir "$DIR/base"
git archive "$BASE" src Makefile | tar -x -C "$DIR/base"
make -C "$DIR/base" -j2 build/libinfergate.a >/dev/null
make -j2 build/libinfergate.a >/dev/null
for side in A B; do
	if [ $side = A ]; then lib=$DIR/base/build/libinfergate.a; else lib=build/libinfergate.a; fi
	nm -g --defined-only "$lib" 2>/dev/null | awk -v p=$side 'NF == 3 {print $3 " " p "_" $3}' |
		sort -u >"$DIR/syms$side"
	objcopy --redefine-syms="$DIR/syms$side" "$lib" "$DIR/lib$side.a"
done
cc -std=c17 -Wall -Wextra -Werror -Wno-unused-parameter -O2 -D_GNU_SOURCE -Isrc -o "$DIR/ab" scripts/bench/picker_ab.c "$DIR/libA.a" \
	"$DIR/libB.a" -lyaml -lxxhash -lpthread -lm
PIN=""
[ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null && PIN="taskset -c 1"
echo "A = $BASE, B = work tree"
$PIN "$DIR/ab" "$BLOCKS"

#!/usr/bin/env bash
# CPU time per operation of the shadow library's untagged benchmarks, for a
# shared machine: go test's ns/op is wall time, which on a busy machine
# counts the time the benchmark waits for a core. Each untagged benchmark
# runs for N iterations (about a second's worth) and for 1, and the
# difference of the process's CPU time (user+sys, /usr/bin/time) over N-1
# is its CPU time per operation; medians of RUNS runs. Cache and
# hyper-thread contention still count, so a busy machine still reads high.
#
# Usage: test/bench/shadow_cpu.sh [REV]   (REV: a git revision of the
#        library, default the work tree; RUNS=5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$root/shadow
if [ -n "${1:-}" ]; then
	git -C "$root" archive "$1" shadow | tar -x -C "$tmp"
	src=$tmp/shadow
fi
(cd "$src" && go test -c -o "$tmp/shadow.test" .)
bin=$tmp/shadow.test

run() { # benchmark, iterations: CPU seconds of one run
	/usr/bin/time -f '%U %S' -o "$tmp/t" "$bin" -test.run '^$' -test.cpu 1 \
		-test.bench "^Benchmark${1%%/*}\$/^${1#*/}\$" -test.benchtime "$2x" >/dev/null
	awk '{print $1 + $2}' "$tmp/t"
}

"$bin" -test.run '^$' -test.bench '/^untagged' -test.benchtime 100ms -test.cpu 1 |
	awk '/^Benchmark/ {sub(/^Benchmark/, "", $1); print $1, $3}' >"$tmp/names"
while read -r name ns; do
	n=$(awk -v ns="$ns" 'BEGIN {n = int(1e9 / ns); print (n < 1000 ? 1000 : n)}')
	for _ in $(seq "${RUNS:-5}"); do
		echo "$(run "$name" "$n") $(run "$name" 1) $n"
	done | awk -v name="$name" '{v[NR] = ($1 - $2) / ($3 - 1) * 1e9}
		END {asort(v); m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%-50s %8.1f CPU ns/op (median of %d)\n", name, m, NR}'
done <"$tmp/names"

#!/usr/bin/env bash
# The shadow library costs untagged (production) work no allocation on any
# entry point: runs the shadow module's untagged benchmarks (every
# sub-benchmark named untagged*) with -benchmem and fails when one reports
# allocs/op > 0, or when an entry point has no untagged benchmark at all (a
# rename must not turn the guard off). Allocation counts are stable; times
# are printed, not asserted (CI machines are shared).
#
# Usage: test/bench/shadow_allocs.sh   (BENCHTIME=iterations per benchmark,
#        default 20000x)
set -euo pipefail
cd "$(dirname "$0")/../../shadow"

entry_points="Middleware Transport UnaryServerInterceptor StreamServerInterceptor
UnaryClientInterceptor StreamClientInterceptor Extract Inject Table Key Topic ID Effect"

out=$(go test -run '^$' -bench '/^untagged' -benchmem -benchtime "${BENCHTIME:-20000x}" -cpu 1 -count 1 .)
echo "$out"
echo "$out" | awk -v want="$entry_points" '
	/^Benchmark[^ \t]*\/untagged/ {
		name = $1; sub(/^Benchmark/, "", name); top = name; sub(/\/.*/, "", top)
		seen[top] = 1
		for (i = 2; i <= NF; i++) if ($i == "allocs/op") allocs = $(i - 1)
		if (allocs + 0 > 0) { printf "shadow_allocs: %s allocates %s times per untagged call, want 0\n", name, allocs; bad = 1 }
	}
	END {
		n = split(want, eps, /[ \n]+/)
		for (i = 1; i <= n; i++) if (eps[i] != "" && !seen[eps[i]]) { printf "shadow_allocs: no untagged benchmark for %s\n", eps[i]; bad = 1 }
		if (bad) exit 1
		print "shadow_allocs: every untagged path allocates nothing"
	}'

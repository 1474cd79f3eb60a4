#!/usr/bin/env bash
# Generator memory with 10,000 requests in flight, on loopback only.
#
# Per run: starts `loadcap target` on 127.0.0.1:$PORT, then
#   loadcap run --url http://127.0.0.1:$PORT/sleep?ms=1000 --rate 10000
#     --duration 10s --max-vus 12000 --pre-allocated-vus 10000
# under GNU time: every request takes 1 s at the target, so at 10,000 req/s
# ~10,000 are in flight (and as many connections open) from t = 1 s on.
# Prints per run, as "run=K metric=<name> value=<number>" lines:
#   peak_rss_mb       generator peak RSS (GNU time %M; goal <= 300 MB)
#   rps, completed, failed, dropped, p50_ms, p99_ms, max_ms   from run.json
#   inflight_min_1s   smallest in-flight count at the end of intervals 1..9 s
#   inflight_max      largest in-flight count at an interval end
#   target_max_in_flight  highest in-flight count the target saw (its /stats)
#   target_peak_rss_mb    the target's peak RSS (VmHWM), for scale
#   cpu_s, wall_s     generator user+sys CPU and wall seconds
# and, to stderr, the in-flight values of every interval. Raw files in
# $RESULTS (run.json, GNU time output, target stats and log).
#
# Bounded: each run lasts 10 s (+ 1 s for the last responses; `timeout`
# kills it after 60 s); the target stops itself after 120 s and is killed
# when the script exits. Both processes need > 10k file descriptors, so the
# script raises `ulimit -n`.
#
# Usage: test/bench/memory.sh     (N=runs, default 3; PORT, default 18380;
#        RESULTS, default /tmp/loadcap-memory; BUILD=0 reuses $LOADCAP)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
N=${N:-3}
PORT=${PORT:-18380}
RESULTS=${RESULTS:-/tmp/loadcap-memory}
LOADCAP=${LOADCAP:-/tmp/loadcap-bench/loadcap}
RATE=10000
SLEEP_MS=1000
mkdir -p "$RESULTS" "$(dirname "$LOADCAP")"
exec > >(tee "$RESULTS/memory.txt")

if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi
echo "# loadcap $(sha256sum "$LOADCAP")" >&2

# 12,000 VUs + target connections + slack, in each of the two processes.
want_fds=32768
if (($(ulimit -n) < want_fds)); then
	ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if (($(ulimit -n) < 12500)); then
	echo "# ulimit -n is $(ulimit -n): too few descriptors for 10k connections" >&2
	exit 1
fi

TPID=
stop_target() {
	if [[ -n $TPID ]]; then
		kill "$TPID" 2>/dev/null || true
		wait "$TPID" 2>/dev/null || true
		TPID=
	fi
}
trap stop_target EXIT
trap 'exit 130' INT TERM

start_target() { # log file
	if curl -fs -o /dev/null "http://127.0.0.1:$PORT/stats"; then
		echo "# something already listens on 127.0.0.1:$PORT; set PORT" >&2
		return 1
	fi
	"$LOADCAP" target --listen "127.0.0.1:$PORT" --duration 120s >"$1" 2>&1 &
	TPID=$!
	local i
	for i in $(seq 50); do
		curl -fs -o /dev/null "http://127.0.0.1:$PORT/stats" && return 0
		sleep 0.1
	done
	echo "# target did not come up (see $1)" >&2
	return 1
}

# wait_quiet: the machine is shared; wait (up to 120 s) until the other
# processes use under 10 % of all cpus over one second.
wait_quiet() {
	local i a b
	for i in $(seq 120); do
		a=$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat)
		sleep 1
		b=$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat)
		(((b - a) * 100 / $(getconf CLK_TCK) / $(nproc) < 10)) && return 0
	done
	echo "# WARNING: machine still busy after 120 s; measuring anyway" >&2
}

metric() { printf 'run=%s metric=%s value=%s\n' "$1" "$2" "$3"; }

for k in $(seq "$N"); do
	pre="$RESULTS/memory.run$k"
	rm -f "$pre".*
	start_target "$pre.target.log"
	wait_quiet
	curl -fs -o /dev/null "http://127.0.0.1:$PORT/stats?reset=1" || true
	echo "# run $k/$N: $RATE req/s of /sleep?ms=$SLEEP_MS for 10 s" >&2
	rc=0
	/usr/bin/time -f '%M %e %U %S' -o "$pre.time" timeout -k 5 60 \
		"$LOADCAP" run --url "http://127.0.0.1:$PORT/sleep?ms=$SLEEP_MS" --rate "$RATE" \
		--duration 10s --max-vus 12000 --pre-allocated-vus 10000 -q --out "$pre.json" \
		>"$pre.summary.txt" 2>"$pre.err" || rc=$?
	curl -fs "http://127.0.0.1:$PORT/stats" >"$pre.target-stats.json" || echo '{}' >"$pre.target-stats.json"
	thwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$TPID/status" 2>/dev/null || echo 0)
	stop_target
	((rc == 0)) || echo "# run $k: loadcap exited with $rc (see $pre.err)" >&2
	read -r rss wall usr sys < <(grep -E '^[0-9]+ [0-9.]+ [0-9.]+ [0-9.]+$' "$pre.time" | tail -1)
	metric "$k" exit_code "$rc"
	metric "$k" peak_rss_mb "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
	metric "$k" wall_s "$wall"
	metric "$k" cpu_s "$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')"
	if [[ -s $pre.json ]]; then
		jq -r --arg k "$k" '
			def m(n; v): "run=\($k) metric=\(n) value=\(v)";
			m("rps"; .totals.rps), m("completed"; .totals.completed), m("failed"; .totals.failed),
			m("dropped"; .totals.dropped), m("peak_vus"; .meta.max_vus),
			m("p50_ms"; .latency_ms.p50), m("p99_ms"; .latency_ms.p99), m("max_ms"; .latency_ms.max),
			m("inflight_min_1s"; [.intervals[] | select(.t >= 1 and .t <= 9) | .inflight] | min),
			m("inflight_max"; [.intervals[].inflight] | max)' "$pre.json"
		echo "# run $k inflight per interval: $(jq -c '[.intervals[].inflight]' "$pre.json")" >&2
	fi
	metric "$k" target_max_in_flight "$(jq -r '.max_in_flight // 0' "$pre.target-stats.json")"
	metric "$k" target_peak_rss_mb "$(awk -v k="${thwm:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
done

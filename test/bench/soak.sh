#!/usr/bin/env bash
# A soak on loopback: does the generator's memory stay flat over a long run?
#
# Starts `loadcap target` on 127.0.0.1:$PORT, then `loadcap run` of a
# scenario of 20 request names at $RATE req/s for $DURATION (default 1h,
# 200 req/s) with --out run.json, and samples the generator's RSS
# (/proc/PID/status VmRSS) every $EVERY seconds (default 60). Prints one
# "t_s=... rss_mb=..." line per sample and at the end
#   rss_first_mb, rss_last_mb, rss_max_mb
#   slope_mb_per_h   least-squares slope of RSS over the samples taken
#                    after the first $WARMUP seconds (default 300: the heap
#                    and the retained tail of seconds fill up first)
#   run_json_kb, intervals_kb   the result and its intervals file
#   report_s         `loadcap report` of the result (its HTML) in seconds
# Raw files in $RESULTS (run.json, run.intervals, rss.tsv, logs).
#
# SCRIPT=1 runs the same load as a k6 script (soak.js: 20 request names by
# their name tag, constant-arrival-rate) instead: the samples are then of
# loadcap (rss_mb) and of its k6 child (child_rss_mb), and the summary
# adds child_rss_first_mb, child_rss_last_mb and child_slope_mb_per_h.
# K6ARGS (space-separated) are passed to "k6 run", e.g. K6ARGS=--no-thresholds.
#
# Bounded: the run lasts $DURATION, the target stops itself $DURATION +
# 5 min later, and both are killed when the script exits.
#
# Usage: test/bench/soak.sh   (DURATION=1h RATE=200 EVERY=60 WARMUP=300
#        PORT=18390 RESULTS=/tmp/loadcap-soak SCRIPT=0; BUILD=0 reuses
#        $LOADCAP)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-1h}
RATE=${RATE:-200}
EVERY=${EVERY:-60}
WARMUP=${WARMUP:-300}
PORT=${PORT:-18390}
RESULTS=${RESULTS:-/tmp/loadcap-soak}
LOADCAP=${LOADCAP:-/tmp/loadcap-soak-bin/loadcap}
mkdir -p "$RESULTS" "$(dirname "$LOADCAP")"
if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi
secs() { # a Go duration (1h, 20m, 90s, 1h30m) in seconds
	local d=$1 t=0
	[[ $d =~ ([0-9]+)h ]] && t=$((t + BASH_REMATCH[1] * 3600))
	[[ $d =~ ([0-9]+)m ]] && t=$((t + BASH_REMATCH[1] * 60))
	[[ $d =~ ([0-9]+)s$ ]] && t=$((t + BASH_REMATCH[1]))
	echo "$t"
}
dur_s=$(secs "$DURATION")

# 20 request names, equal weights, a few status codes and sizes: "name path" lines.
names() {
	for i in $(seq -w 1 20); do
		case $((10#$i % 4)) in
		0) p="/bytes/$((10#$i * 100))" ;;
		1) p="/sleep?ms=$((10#$i % 7 + 1))" ;;
		2) p="/item/$i" ;;
		3) p="/status/$((10#$i % 2 ? 200 : 404))" ;;
		esac
		echo "r$i $p"
	done
}
scen=$RESULTS/soak.yaml
{
	echo "target: http://127.0.0.1:$PORT"
	echo "http: {timeout: 5s}"
	echo "scenarios:"
	echo "  soak: {executor: constant-arrival-rate, rate: $RATE, timeUnit: 1s, duration: $DURATION, preAllocatedVUs: 50, maxVUs: 500, gracefulStop: 5s}"
	echo "requests:"
	names | while read -r name p; do echo "  - {name: $name, path: \"$p\"}"; done
} >"$scen"
if [[ ${SCRIPT:-0} != 0 ]]; then
	scen=$RESULTS/soak.js
	{
		echo "import http from 'k6/http';"
		echo "const paths = ["
		names | while read -r name p; do echo "  ['$name', '$p'],"; done
		echo "];"
		echo "export const options = { scenarios: { soak: { executor: 'constant-arrival-rate', rate: $RATE, timeUnit: '1s', duration: '$DURATION', preAllocatedVUs: 50, maxVUs: 500, gracefulStop: '5s' } } };"
		echo "let n = 0;"
		echo "export default function () {"
		echo "  const [name, path] = paths[n++ % paths.length];"
		echo "  http.get('http://127.0.0.1:$PORT' + path, { tags: { name }, timeout: '5s' });"
		echo "}"
	} >"$scen"
fi

TPID= GPID=
cleanup() {
	[[ -n $GPID ]] && kill "$GPID" 2>/dev/null || true
	[[ -n $TPID ]] && kill "$TPID" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT
"$LOADCAP" target --listen "127.0.0.1:$PORT" --workers 0 --service-time 1ms \
	--duration "$((dur_s + 300))s" >"$RESULTS/target.log" 2>&1 &
TPID=$!
for _ in $(seq 50); do
	curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
	sleep 0.1
done

rm -f "$RESULTS/run.json" "$RESULTS/run.intervals"
extra=()
for a in ${K6ARGS:-}; do extra+=("--k6-arg=$a"); done
"$LOADCAP" run "$scen" --out "$RESULTS/run.json" --no-summary "${extra[@]}" >"$RESULTS/run.log" 2>&1 &
GPID=$!
start=$(date +%s)
: >"$RESULTS/rss.tsv"
while kill -0 "$GPID" 2>/dev/null; do
	kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$GPID/status" 2>/dev/null || true)
	[[ -n $kb ]] || break
	t=$(($(date +%s) - start))
	ckb=0
	for c in $(pgrep -P "$GPID" 2>/dev/null || true); do # the k6 child
		ckb=$((ckb + $(awk '/^VmRSS:/ {print $2}' "/proc/$c/status" 2>/dev/null || echo 0)))
	done
	printf '%d\t%d\t%d\n' "$t" "$kb" "$ckb" >>"$RESULTS/rss.tsv"
	if [[ ${SCRIPT:-0} != 0 ]]; then
		printf 't_s=%d rss_mb=%.1f child_rss_mb=%.1f\n' "$t" "$(echo "$kb/1024" | bc -l)" "$(echo "$ckb/1024" | bc -l)"
	else
		printf 't_s=%d rss_mb=%.1f\n' "$t" "$(echo "$kb/1024" | bc -l)"
	fi
	for _ in $(seq "$EVERY"); do
		kill -0 "$GPID" 2>/dev/null || break
		sleep 1
	done
done
set +e
wait "$GPID"
rc=$?
set -e
GPID=
echo "run_exit=$rc"
slope() { # column $1 of rss.tsv (KB), named $2
	awk -v w="$WARMUP" -v c="$1" -v p="$2" '
	NR == 1 { first = $c } { last = $c; if ($c > mx) mx = $c }
	$1 >= w { n++; sx += $1; sy += $c; sxx += $1 * $1; sxy += $1 * $c }
	END {
		printf "%s_first_mb=%.1f\n%s_last_mb=%.1f\n%s_max_mb=%.1f\n", p, first / 1024, p, last / 1024, p, mx / 1024
		if (n >= 2 && n * sxx - sx * sx > 0) {
			b = (n * sxy - sx * sy) / (n * sxx - sx * sx) # KB per second
			printf "samples_after_warmup=%d\n%s_slope_mb_per_h=%.2f\n", n, p, b * 3600 / 1024
		} else {
			printf "%s_slope_mb_per_h=unknown (fewer than 2 samples after the warm-up)\n", p
		}
	}' "$RESULTS/rss.tsv"
}
slope 2 rss | sed 's/^rss_slope_/slope_/'
if [[ ${SCRIPT:-0} != 0 ]]; then
	slope 3 child_rss | grep -v '^samples_after'
fi
printf 'run_json_kb=%d\n' "$(($(stat -c %s "$RESULTS/run.json") / 1024))"
if [[ -f $RESULTS/run.intervals ]]; then
	printf 'intervals_kb=%d\n' "$(($(stat -c %s "$RESULTS/run.intervals") / 1024))"
fi
t0=$(date +%s.%N)
"$LOADCAP" report "$RESULTS/run.json" -o "$RESULTS/report.html" >/dev/null 2>"$RESULTS/report.log" || true
printf 'report_s=%.1f\n' "$(echo "$(date +%s.%N) - $t0" | bc -l)"

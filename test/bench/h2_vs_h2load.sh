#!/usr/bin/env bash
# HTTP/2 efficiency beside h2load (nghttp2-client), in the same run: each
# generator saturates GET /fast on `loadcap target --h2c` (h2c with prior
# knowledge) for DURATION_S (5 s) with CONNS (50) concurrent streams on one
# connection (h2load -c1 -m50; loadcap --http2 --vus 50, which multiplexes
# its VUs on one connection per host), generator pinned to GEN_CPU (0) and
# target to TARGET_CPU (1). The figure compared is requests per CPU-second
# of the generator: requests served at the target (its /stats) / user+sys
# CPU of the generator process, as ../shared/bench/peers_max_rps.sh
# measures it. Tools run interleaved (h2load, loadcap, [loadcap-before],
# h2load, ...) so that all see the same machine.
#
# Usage: test/bench/h2_vs_h2load.sh   (N=runs, default 3; LOADCAP=binary
#        under test (default /tmp/loadcap-bench/loadcap, built from this
#        tree unless BUILD=0, as the other scripts here do); BEFORE=a second loadcap
#        binary measured too, tool=loadcap-before (default /tmp/loadcap-before
#        when it exists, "" = none); H2_TARGET=the loadcap binary serving the
#        target (default $BEFORE or $LOADCAP, the same for every tool);
#        HTTP_PORT, default 18480)
# Prints medians; metric lines and raw output in $RESULTS (default
# /tmp/loadcap-h2-vs-h2load). Loopback only, every run bounded in time.
# Needs h2load (apt-get install nghttp2-client) and jq.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
N=${N:-3}
RESULTS=${RESULTS:-/tmp/loadcap-h2-vs-h2load}
LOADCAP=${LOADCAP:-/tmp/loadcap-bench/loadcap}
if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	mkdir -p "$(dirname "$LOADCAP")"
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi
if [[ -z ${BEFORE+x} ]]; then
	BEFORE=""
	[[ -x /tmp/loadcap-before ]] && BEFORE=/tmp/loadcap-before
fi
export HTTP_PORT=${HTTP_PORT:-18480} GRPC_PORT=${GRPC_PORT:-18481}
DURATION_S=${DURATION_S:-5}
CONNS=${CONNS:-50}
H2_TARGET=${H2_TARGET:-${BEFORE:-$LOADCAP}}
# shellcheck source=/dev/null
source "$BENCH/lib.sh" # log, emit, calc, wait_quiet, cpu_ticks, target_ticks
command -v h2load >/dev/null || { log "missing h2load (apt-get install nghttp2-client)"; exit 1; }
mkdir -p "$RESULTS/raw"
URL="$BASE_URL/fast"

start_h2_target() {
	taskset -c "$TARGET_CPU" "$H2_TARGET" target --listen "$HOST:$HTTP_PORT" --h2c \
		--duration $(((DURATION_S + 60) * N * 4))s >>"$OUT_DIR/target.log" 2>&1 &
	TPID=$!
	trap stop_target EXIT
	local i
	for i in $(seq 50); do
		curl -fs -o /dev/null "$BASE_URL/stats" && return 0
		sleep 0.1
	done
	log "target did not come up"
	return 1
}

# run_h2 TOOL CMD...: one pinned run under GNU time, counted at the target
# (requests served between two /stats?reset=1 reads).
run_h2() {
	local tool=$1 out rc=0 t0 t1 wall usr sys b0 w0 b1 w1
	shift
	out="$OUT_DIR/$tool"
	wait_quiet
	curl -fs -o /dev/null "$BASE_URL/stats?reset=1"
	t0=$(target_ticks)
	read -r b0 w0 < <(cpu_ticks)
	taskset -c "$GEN_CPU" /usr/bin/time -f '%e %U %S' -o "$out.time" \
		timeout -k 5 "$((DURATION_S + 30))" "$@" >"$out.out" 2>"$out.err" || rc=$?
	t1=$(target_ticks)
	read -r b1 w1 < <(cpu_ticks)
	curl -fs "$BASE_URL/stats" >"$out.stats"
	read -r wall usr sys < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+$' "$out.time" | tail -1)
	local cpu served
	cpu=$(calc "$usr + $sys")
	served=$(jq -r .served "$out.stats")
	emit "$tool" exit_code "$rc"
	emit "$tool" wall_s "$wall"
	emit "$tool" cpu_s "$cpu"
	emit "$tool" server_count "$served"
	emit "$tool" server_rps "$(jq -r .served_rate_per_sec "$out.stats")"
	emit "$tool" target_cpu_util "$(calc "($t1 - $t0) / $CLK_TCK / $wall")"
	emit "$tool" other_cpu_pct "$(calc "100 * ($b1 - $b0) / $CLK_TCK / ($wall * $(nproc))")"
	[[ $cpu == 0 ]] || emit "$tool" rps_per_cpu_s "$(calc "$served / $cpu")"
}

run_loadcap() { # tool binary
	local od="$OUT_DIR/$1"
	run_h2 "$1" "$2" run --url "$URL" --http2 --vus "$CONNS" --duration "${DURATION_S}s" \
		--quiet --no-summary --out "$od-run.json"
	emit "$1" errors "$(jq -r .totals.failed "$od-run.json" 2>/dev/null || echo null)"
	emit "$1" p99_ms "$(jq -r .latency_ms.p99 "$od-run.json" 2>/dev/null || echo null)"
}

rm -f "$RESULTS"/run*.txt
OUT_DIR=$(mktemp -d "$RESULTS/raw/target.XXXXXX")
start_h2_target
log "target $H2_TARGET on $BASE_URL (cpu$TARGET_CPU), generators on cpu$GEN_CPU; raw output in $OUT_DIR"
for i in $(seq "$N"); do
	log "run $i/$N"
	{
		run_h2 h2load h2load -c 1 -m "$CONNS" -t 1 -D "$DURATION_S" "$URL"
		emit h2load errors "$(awk '/^requests:/ {print $12 + $10}' "$OUT_DIR/h2load.out")"
		sleep "$PAUSE_S"
		run_loadcap loadcap "$LOADCAP"
		sleep "$PAUSE_S"
		if [[ -n $BEFORE ]]; then
			run_loadcap loadcap-before "$BEFORE"
			sleep "$PAUSE_S"
		fi
	} >"$RESULTS/run$i.txt"
	cp -r "$OUT_DIR" "$RESULTS/raw/r$i" 2>/dev/null || true
done

median() { # tool metric
	awk -v t="tool=$1" -v m="metric=$2" '$1 == t && $2 == m {sub("value=", "", $3); print $3}' "$RESULTS"/run*.txt |
		sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
for t in h2load loadcap ${BEFORE:+loadcap-before}; do
	printf '%-15s median server_rps=%s cpu_s=%s rps_per_cpu_s=%s errors=%s target_cpu=%s\n' "$t" \
		"$(median "$t" server_rps)" "$(median "$t" cpu_s)" "$(median "$t" rps_per_cpu_s)" \
		"$(median "$t" errors)" "$(median "$t" target_cpu_util)"
done | tee "$RESULTS/summary.txt"

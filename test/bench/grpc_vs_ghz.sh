#!/usr/bin/env bash
# gRPC efficiency beside ghz, in the same harness run (../shared/bench):
# both saturate grpc.health.v1.Health/Check on the harness target for
# DURATION_S (5 s) with CONNS (50) concurrent callers (ghz -c50: 50 workers
# on one HTTP/2 connection; loadcap: 50 VUs, constant-vus), generator and
# target pinned to different cores. The figure compared is requests per
# CPU-second of the generator (server-counted calls / user+sys CPU of the
# process), as peers_max_rps.sh measures it. Runs are interleaved (ghz,
# loadcap, ghz, loadcap, ...) so that both see the same machine.
#
# Usage: test/bench/grpc_vs_ghz.sh   (N=runs, default 3; GRPC_CONNECTIONS=
#        loadcap's connections: (default 1, like ghz; "" = loadcap's default
#        min(VUs, 32)); GRPC_TRANSPORT=loadcap's transport: (loadcap,
#        the default, or grpc-go); BUILD=0 to reuse $LOADCAP; HTTP_PORT/GRPC_PORT for
#        the target, default 18380/18381, not the harness's defaults, which
#        other sessions may use)
# Prints the medians and the ratio; results in $RESULTS (default
# /tmp/loadcap-grpc-vs-ghz). Loopback only, every run bounded in time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
N=${N:-3}
RESULTS=${RESULTS:-/tmp/loadcap-grpc-vs-ghz}
LOADCAP=${LOADCAP:-/tmp/loadcap-bench/loadcap}
GRPC_CONNECTIONS=${GRPC_CONNECTIONS-1}
export HTTP_PORT=${HTTP_PORT:-18380} GRPC_PORT=${GRPC_PORT:-18381}
export DURATION_S=${DURATION_S:-5} CONNS=${CONNS:-50}
mkdir -p "$RESULTS/raw" "$(dirname "$LOADCAP")"
if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi
[[ -x ${PEERS_BIN:-/tmp/peers/bin}/ghz ]] || "$BENCH/install_peers.sh" >&2

conns=""
[[ -n $GRPC_CONNECTIONS ]] && conns=", connections: $GRPC_CONNECTIONS"
[[ -n ${GRPC_TRANSPORT:-} ]] && conns="$conns, transport: $GRPC_TRANSPORT"
# The scenario is written into each run's output directory: the target's
# address is only known to the harness ({GRPC_ADDR}).
scenario="printf '%s\n' 'scenarios:' '  s: {executor: constant-vus, vus: {CONNS}, duration: {DURATION}, gracefulStop: 5s}' 'requests:' '  - {name: check, protocol: grpc, target: \"{GRPC_ADDR}\", method: grpc.health.v1.Health/Check, reflection: true, message: \"{}\"$conns}' >{OUT_DIR}/grpc.yaml"
out='--quiet --no-summary --out {OUT_DIR}/loadcap-run.json'
metrics="rc=\$?; jq -r '\"metric=rps value=\\(.totals.rps)\",
  \"metric=requests value=\\(.totals.completed + .totals.failed)\",
  \"metric=errors value=\\(.totals.failed)\",
  \"metric=p50_ms value=\\(.latency_ms.p50)\", \"metric=p90_ms value=\\(.latency_ms.p90)\",
  \"metric=p99_ms value=\\(.latency_ms.p99)\", \"metric=max_ms value=\\(.latency_ms.max)\"' {OUT_DIR}/loadcap-run.json; exit \$rc"

rm -f "$RESULTS"/run*.txt
for i in $(seq "$N"); do
	od=$(mktemp -d "$RESULTS/raw/r$i.XXXXXX")
	echo "# run $i/$N (raw output in $od)" >&2
	OUT_DIR="$od" PEERS=ghz PROJECT_NAME=loadcap \
		PROJECT_CMD="$scenario; $LOADCAP run {OUT_DIR}/grpc.yaml $out; $metrics" \
		"$BENCH/peers_max_rps.sh" >"$RESULTS/run$i.txt"
done
"$BENCH/summarize.sh" "$RESULTS"/run*.txt | tee "$RESULTS/summary.txt" >&2

median() { # tool metric
	awk -v t="tool=$1" -v m="metric=$2" '$1 == t && $2 == m {sub("value=", "", $3); print $3}' "$RESULTS"/run*.txt |
		sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ghz=$(median ghz-grpc rps_per_cpu_s)
lc=$(median loadcap rps_per_cpu_s)
printf 'ghz      median rps=%s  cpu_s=%s  rps_per_cpu_s=%s  p99_ms=%s\n' "$(median ghz-grpc server_rps)" "$(median ghz-grpc cpu_s)" "$ghz" "$(median ghz-grpc p99_ms)"
printf 'loadcap  median rps=%s  cpu_s=%s  rps_per_cpu_s=%s  p99_ms=%s\n' "$(median loadcap server_rps)" "$(median loadcap cpu_s)" "$lc" "$(median loadcap p99_ms)"
awk -v a="$lc" -v b="$ghz" 'BEGIN { if (b > 0) printf "ratio loadcap/ghz requests per CPU-second: %.2f (bar: 1.5)\n", a / b }'

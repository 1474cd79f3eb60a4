#!/usr/bin/env bash
# Runs loadcap beside the peer load generators (wrk, k6, vegeta, hey, ghz) in
# the shared harness (../shared/bench), in the same run, on loopback only:
#
#   efficiency  peers_max_rps.sh: /fast, 50 connections, 5 s, requests per
#               CPU-second of the generator (generator and target pinned to
#               different cores)
#   rate        peers_rate_accuracy.sh at 1,000 and 20,000 req/s for 10 s,
#               counted at the target
#   co          peers_co.sh: 1,000 req/s for 10 s against a target that
#               stalls 200 ms every second; loadcap with --max-vus 300 and 50
#
# Usage: test/bench/vs_peers.sh [efficiency|rate|co|all]   (N=runs, default 3;
#        BUILD=0 to reuse $LOADCAP; HTTP_PORT/GRPC_PORT for the target, 18280/18281)
# Results (default /tmp/loadcap-vs-peers): <name>.runK.txt metric lines,
# <name>.summary.txt (min/median/max), raw tool output in raw/<name>-rK.*/.
# Needs the peers: ../shared/bench/install_peers.sh (wrk, jq from apt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
N=${N:-3}
RESULTS=${RESULTS:-/tmp/loadcap-vs-peers}
LOADCAP=${LOADCAP:-/tmp/loadcap-bench/loadcap}
# Our own ports (the harness defaults 18080/18081 may be in use by another
# session on this shared machine: its load would then reach our target).
export HTTP_PORT=${HTTP_PORT:-18280} GRPC_PORT=${GRPC_PORT:-18281}
TRIES=${TRIES:-3} # a harness run that fails (e.g. its target vanished) is retried
what=${1:-all}
mkdir -p "$RESULTS/raw" "$(dirname "$LOADCAP")"

# BUILD=0 measures an existing $LOADCAP as is (the tree may be mid-edit).
if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi
echo "$(date -u +%FT%TZ) $what N=$N $(sha256sum "$LOADCAP")" >>"$RESULTS/loadcap-binary.txt"
[[ -x ${PEERS_BIN:-/tmp/peers/bin}/k6 ]] || "$BENCH/install_peers.sh" >&2

# loadcap writes its run result; jq turns it into the harness's metric lines
# (also when loadcap exits non-zero; its exit code is kept for exit_code).
out='--quiet --no-summary --out {OUT_DIR}/loadcap-run.json'
metrics="rc=\$?; jq -r '\"metric=rps value=\\(.totals.rps)\",
  \"metric=requests value=\\(.totals.completed + .totals.failed)\",
  \"metric=errors value=\\(.totals.failed)\", \"metric=dropped value=\\(.totals.dropped)\",
  \"metric=p50_ms value=\\(.latency_ms.p50)\", \"metric=p90_ms value=\\(.latency_ms.p90)\",
  \"metric=p99_ms value=\\(.latency_ms.p99)\", \"metric=max_ms value=\\(.latency_ms.max)\",
  \"metric=service_p99_ms value=\\(.service_ms.p99)\", \"metric=peak_vus value=\\(.meta.max_vus)\",
  \"metric=late_arrivals value=\\(.totals.late_arrivals // 0)\",
  \"metric=max_pacer_lag_ms value=\\(.totals.max_pacer_lag_ms // 0)\"' {OUT_DIR}/loadcap-run.json; exit \$rc"

# series NAME SCRIPT [VAR=value ...]: N runs of one harness script.
series() {
	local name=$1 script=$2 i
	shift 2
	local try od
	rm -f "$RESULTS/$name".run*
	for i in $(seq "$N"); do
		for try in $(seq "$TRIES"); do
			od=$(mktemp -d "$RESULTS/raw/$name-r$i.XXXXXX")
			echo "# $name run $i/$N (try $try, raw output in $od)" >&2
			env "$@" OUT_DIR="$od" "$BENCH/$script" >"$RESULTS/$name.run$i.txt" && break
			echo "# $name run $i: $script failed (exit $?)" >&2
			mv "$RESULTS/$name.run$i.txt" "$RESULTS/$name.run$i.failed$try"
			((try < TRIES)) || return 1
		done
	done
	"$BENCH/summarize.sh" "$RESULTS/$name".run*.txt | tee "$RESULTS/$name.summary.txt"
}

if [[ $what == efficiency || $what == all ]]; then
	series efficiency peers_max_rps.sh PROJECT_NAME=loadcap \
		PROJECT_CMD="$LOADCAP run --url {URL} --vus {CONNS} --duration {DURATION} $out; $metrics"
fi
if [[ $what == rate || $what == all ]]; then
	for rate in 1000 20000; do
		series "rate$rate" peers_rate_accuracy.sh RATE=$rate DURATION_S=10 PROJECT_NAME=loadcap \
			PROJECT_CMD="$LOADCAP run --url {URL} --rate {RATE} --duration {DURATION} --max-vus 1000 $out; $metrics"
	done
fi
if [[ $what == co || $what == all ]]; then
	series co peers_co.sh PROJECT_NAME=loadcap \
		PROJECT_CMD="$LOADCAP run --url {URL} --rate {RATE} --duration {DURATION} --max-vus {CONNS} $out; $metrics"
	series co-maxvus50 peers_co.sh PEERS=none PROJECT_NAME=loadcap-maxvus50 \
		PROJECT_CMD="$LOADCAP run --url {URL} --rate {RATE} --duration {DURATION} --max-vus 50 $out; $metrics"
fi

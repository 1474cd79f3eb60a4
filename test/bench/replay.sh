#!/usr/bin/env bash
# Replay efficiency against the synthetic generator, in the same run, on
# loopback only: requests per CPU-second of the generator.
#
# Per run, both against `loadcap target` on 127.0.0.1:$PORT (pinned to the
# other core when there are two), closed model, 50 VUs, 20 s (the recording is scanned once before a replay starts; 20 s amortizes that as a drill would):
#   synthetic  a scenario file with three requests (one with generators)
#   replay     the same routes from a 100,000-request JSON-lines recording,
#              replay.mode: rate (the recording cycled by the VUs)
# Prints "run=K mode=<synthetic|replay> metric=<name> value=<number>" lines
# (requests, cpu_s, req_per_cpu_s) and, at the end, the medians and the
# replay/synthetic ratio of req_per_cpu_s (goal >= 0.8).
#
# Usage: test/bench/replay.sh   (N=runs, default 5; PORT, default 18390;
#        RESULTS, default /tmp/loadcap-replay; BUILD=0 reuses $LOADCAP)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
N=${N:-5}
PORT=${PORT:-18390}
RESULTS=${RESULTS:-/tmp/loadcap-replay}
LOADCAP=${LOADCAP:-/tmp/loadcap-bench/loadcap}
mkdir -p "$RESULTS" "$(dirname "$LOADCAP")"
if [[ ${BUILD:-1} != 0 || ! -x $LOADCAP ]]; then
	(cd "$root" && go build -o "$LOADCAP" ./cmd/loadcap)
fi

gen=() tgt=()
if (($(nproc) >= 2)); then gen=(taskset -c 0) tgt=(taskset -c 1); fi

"${tgt[@]}" timeout 600 "$LOADCAP" target --listen "127.0.0.1:$PORT" >"$RESULTS/target.log" 2>&1 &
target_pid=$!
trap 'kill $target_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
	sleep 0.1
done

# The recording: 100,000 requests over 100 s, the same three routes.
rec=$RESULTS/traffic.jsonl
awk 'BEGIN {
	for (i = 0; i < 100000; i++) {
		s = int(i / 1000); ns = (i % 1000) * 1000000
		t = sprintf("2026-11-11T00:%02d:%02d.%09dZ", int(s / 60), s % 60, ns)
		r = i % 6
		if (r < 3) printf "{\"time\":\"%s\",\"method\":\"GET\",\"path\":\"/\"}\n", t
		else if (r < 5) printf "{\"time\":\"%s\",\"method\":\"GET\",\"path\":\"/product/%d?ref=a\",\"headers\":[[\"X-Req\",\"%d\"]]}\n", t, i % 1000 + 1, i
		else printf "{\"time\":\"%s\",\"method\":\"POST\",\"path\":\"/checkout\",\"headers\":[[\"Content-Type\",\"application/json\"]],\"body\":\"{\\\"order\\\": %d, \\\"sku\\\": %d}\"}\n", t, i, i % 500 + 1
	}
}' >"$rec"

cat >"$RESULTS/synthetic.yaml" <<EOF
target: http://127.0.0.1:$PORT
scenarios:
  s: {executor: constant-vus, vus: 50, duration: 20s}
requests:
  - {name: home, path: /, weight: 3}
  - name: product
    path: /product/{{randInt 1 1000}}?ref={{pick "a" "b"}}
    headers: {X-Req: "{{seq}}"}
    weight: 2
  - name: checkout
    method: POST
    path: /checkout
    headers: {Content-Type: application/json}
    body: '{"order": {{seq 1000}}, "sku": {{randInt 1 500}}}'
EOF
cat >"$RESULTS/replay.yaml" <<EOF
target: http://127.0.0.1:$PORT
drill_id: bench
replay: {file: $rec, mode: rate}
scenarios:
  s: {executor: constant-vus, vus: 50, duration: 20s}
EOF

declare -A eff
for i in $(seq "$N"); do
	for mode in synthetic replay; do
		out=$RESULTS/$mode.run$i.json
		/usr/bin/time -f '%U %S' -o "$RESULTS/$mode.time$i" \
			"${gen[@]}" timeout 60 "$LOADCAP" run -q --no-summary "$RESULTS/$mode.yaml" --out "$out"
		n=$(jq '.totals.completed + .totals.failed' "$out")
		cpu=$(awk '{print $1 + $2}' "$RESULTS/$mode.time$i")
		e=$(awk -v n="$n" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
		eff[$mode]+="$e "
		echo "run=$i mode=$mode metric=requests value=$n"
		echo "run=$i mode=$mode metric=cpu_s value=$cpu"
		echo "run=$i mode=$mode metric=req_per_cpu_s value=$e"
	done
done | tee "$RESULTS/replay.txt"

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
s=$(grep 'mode=synthetic metric=req_per_cpu_s' "$RESULTS/replay.txt" | sed 's/.*value=//' | median)
r=$(grep 'mode=replay metric=req_per_cpu_s' "$RESULTS/replay.txt" | sed 's/.*value=//' | median)
echo "median req_per_cpu_s: synthetic $s, replay $r, ratio $(awk -v r="$r" -v s="$s" 'BEGIN {printf "%.2f", r / s}')" | tee -a "$RESULTS/replay.txt"

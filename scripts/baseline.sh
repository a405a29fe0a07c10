#!/usr/bin/env bash
# Baseline throughput and per-hop latency of the example saga (release build, every process on this machine):
# N slips (default 2000) sent as fast as the broker confirms them, through the four processors.
# Run it through `make baseline`, which starts a private broker and stops it after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make baseline' (it starts one)}"
count=${1:-2000}

echo "baseline: release build (.build-release)"
swift build -c release --scratch-path .build-release
bin=$(swift build -c release --scratch-path .build-release --show-bin-path)
work=.slipway/baseline
rm -rf "$work" && mkdir -p "$work"
export SLIPWAY_STATE_DIR=$work/state SLIPWAY_EXAMPLE_LEDGER=$work/ledger.sqlite SLIPWAY_LOG_LEVEL=warning

source scripts/processors.sh
start_processors "$bin" "$work" >/dev/null
start_sink "$bin" "$work" "$work/audit.sqlite" >/dev/null
# Warm-up: queues declared, connections open.
"$bin/slip" send Slips/order-fulfillment.yaml --var orderId=warmup --wait >/dev/null

echo "baseline: $count slips through reserve-stock -> charge-card -> ship-order -> notify-customer"
"$bin/slip" send Slips/order-fulfillment.yaml --var orderId=bench --count "$count" --wait --timeout 600 --json \
  >"$work/results.jsonl"
last=$(tail -n 1 "$work/results.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["slipId"])')
sink_start=$(date +%s%N)
wait_recorded "$bin" "$work/audit.sqlite" "$last"
echo "baseline: the audit sink had recorded the last slip's end $(( ($(date +%s%N) - sink_start) / 1000000 )) ms after it was reported"
for pid in "${processor_pids[@]}"; do
  ps -o rss=,times=,comm= -p "$pid" | awk '{printf "baseline: %-16s resident %5.1f MB, CPU %4d s\n", $3, $1/1024, $2}'
done
if [[ -s ${SLIPWAY_BROKER_DIR:-}/node.pid ]]; then
  ps -o times= -p "$(cat "$SLIPWAY_BROKER_DIR/node.pid")" | awk '{printf "baseline: %-16s CPU %4d s\n", "rabbitmq", $1}'
fi
stop_processors

python3 - "$work/results.jsonl" <<'PY'
import json, sys
from datetime import datetime

def t(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

rows = [json.loads(line) for line in open(sys.argv[1])]
states = {}
for row in rows:
    states[row["state"]] = states.get(row["state"], 0) + 1
start = min(t(r["createdAt"]) for r in rows)
end = max(t(r["endedAt"]) for r in rows)
hops = sum(len(r["hops"]) for r in rows)
per_hop, end_to_end = [], []
for r in rows:
    starts = [t(h["startedAt"]) for h in r["hops"]] + [t(r["endedAt"])]
    per_hop += [b - a for a, b in zip(starts, starts[1:])]
    end_to_end.append(t(r["endedAt"]) - t(r["createdAt"]))

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000

elapsed = end - start
print(f"baseline: {len(rows)} slips {states}, {hops} hops in {elapsed:.2f} s")
print(f"baseline: throughput {len(rows) / elapsed:.0f} slips/s, {hops / elapsed:.0f} hops/s")
print(f"baseline: per hop   p50 {pct(per_hop, 50):.2f} ms  p99 {pct(per_hop, 99):.2f} ms  (hop start to next hop start)")
print(f"baseline: end to end p50 {pct(end_to_end, 50):.1f} ms  p99 {pct(end_to_end, 99):.1f} ms  (all sent at once)")
PY

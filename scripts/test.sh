#!/usr/bin/env bash
# Every test: unit tests, the wire-format schema check, and the tests against the real RabbitMQ at $SLIPWAY_AMQP_URL
# with processors as separate processes. Run it through `make test`, which starts that broker and stops it after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make test' (it starts one)}"
# Each phase's line says how long the run has taken so far (make test should stay near 20 minutes).
say() { printf 'test.sh: [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

say "building (first build fetches and compiles the dependencies: a few minutes)"
swift build --build-tests
SLIPWAY_BIN_DIR=$(swift build --show-bin-path)
export SLIPWAY_BIN_DIR

python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install --quiet jsonschema
say "checking the JSON Schema against the slip fixtures"
python3 scripts/check-schema.py
say "checking that the docs name every park code, outcome, state and limit the code names"
python3 scripts/check-docs.py

# Two runs: the unit tests, then the tests against RabbitMQ with processors as processes. Apart, a machine saturated
# by dozens of processor processes cannot starve the unit tests' timeouts (they share one test process otherwise).
log=$(mktemp)
# PostgreSQL for the shared hop record's tests: a private server on loopback (scripts/postgres.sh), stopped at the end.
scripts/postgres.sh start --fresh
trap 'rm -f "$log"; scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
export SLIPWAY_POSTGRES_TESTS=1
say "unit tests"
# Every test target but the integration tests: a new module's test target runs without being listed here.
swift test --skip-build --skip 'IntegrationTests' 2>&1 | tee -a "$log"
say "tests against RabbitMQ, processors as processes"
swift test --skip-build --filter 'IntegrationTests' 2>&1 | tee -a "$log"

# A 3-node RabbitMQ cluster of our own (scripts/cluster.sh, started by the suite and stopped when it ends): processors
# given the nodes' URL list, with quorum queues, lose the node they use while slips flow (docs/deploy.md).
say "tests against a 3-node RabbitMQ cluster"
SLIPWAY_CLUSTER_TESTS=1 swift test --skip-build --filter 'IntegrationTests.ClusterTests' 2>&1 | tee -a "$log"

# The deploy build (scripts/build-release.sh: static Swift libraries, linked by lld with the hot code packed) through
# the suites that run sagas, compensations, broker restarts, signing and the benchmark's chain: a processor linked
# that way behaves as the debug build does. Its processors run with a thread per connection (SLIPWAY_IO=threads), the
# mode for steps that block; everything else runs them on one loop, the default.
say "the deploy build, SLIPWAY_IO=threads, through the saga, failure, restart, signing and bench suites"
# Only what those suites run: the order API (Hummingbird) and the chaos tool would add minutes of release build.
release_products=()
for product in reserve-stock charge-card ship-order notify-customer slip probe-step bench-forwarder slipway-bench; do
  release_products+=(--product "$product")
done
release_bin=$(scripts/build-release.sh "${release_products[@]}")
SLIPWAY_IO=threads SLIPWAY_BIN_DIR=$release_bin swift test --skip-build \
  --filter 'IntegrationTests.(SagaTests|SigningIntegrationTests|FailureSemanticsIntegrationTests|BrokerRestartTests|BenchTests)' 2>&1 \
  | tee -a "$log"

# The short chaos run against the same broker (docs/chaos.md): 300 slips while processors and the audit sink are
# SIGKILLed and RabbitMQ restarts twice; then its checks (nothing lost, doubled, or missing from the audit trail).
say "short chaos run"
chaos_failed=0
scripts/chaos.sh --slips 300 --kills 8 --broker-restarts 2 --timeout 300 --state-dir .slipway/chaos-test \
  --json .slipway/chaos-test/report.json || chaos_failed=1

# The same saga with two instances of every step, each with a hop record of its own (as on two hosts), and 30 slips
# sent twice: a duplicate that reaches the other instance runs its step again. The run must say so (its run-twice
# check fails, counting the hops run twice), so that it is known to catch what a shared hop record prevents.
say "chaos run with two instances a step and a hop record each: it must find hops run twice"
split_failed=0
scripts/chaos.sh --slips 100 --instances 2 --duplicates 30 --kills 0 --broker-restarts 0 --timeout 240 \
  --state-dir .slipway/chaos-split --json .slipway/chaos-split/report.json >/dev/null 2>&1 || true
python3 - .slipway/chaos-split/report.json <<'PY' || split_failed=1
import json, sys
report = json.load(open(sys.argv[1]))
checks = {check["name"]: check for check in report["checks"]}
twice = checks["run-twice"]["found"]
others = [name for name, check in checks.items() if name != "run-twice" and not check["passed"]]
print(f"test.sh: hops run twice with a hop record per instance: {twice}; other checks failed: {others or 'none'}")
sys.exit(0 if twice > 0 and not others else 1)
PY
chaos_failed=$((chaos_failed + split_failed))

# The short cluster chaos run (make chaos-cluster is the full one): 200 slips on a 3-node cluster with quorum queues,
# two instances a step, each with a state directory of its own and all sharing a hop record in a PostgreSQL of the
# script's own (port 5481), 20 slips sent twice, 10 processes and 3 nodes killed (one at a time).
say "short chaos run on a 3-node RabbitMQ cluster"
scripts/chaos-cluster.sh --slips 200 --kills 10 --broker-restarts 3 --duplicates 20 --timeout 400 \
  --state-dir .slipway/chaos-cluster-test --json .slipway/chaos-cluster-test/report.json || chaos_failed=$((chaos_failed + 1))

# One closing line over both runs and the chaos run (swift test's XCTest half always reports "Executed 0 tests").
passed=$(grep -oE 'Test run with [0-9]+ tests? in [0-9]+ suites? passed' "$log" | awk '{s += $4} END {print s + 0}')
say "$((passed + 3 - chaos_failed)) passed, $chaos_failed failed"
exit "$chaos_failed"


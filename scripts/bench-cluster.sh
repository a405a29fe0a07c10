#!/usr/bin/env bash
# The chain-K benchmark (slipway-bench, docs/performance.md) on a 3-node RabbitMQ cluster of our own: the framework's
# chain with quorum queues and then with classic queues, in the same run, every process given all three nodes' URLs.
# The broker's CPU time is the three nodes' together. Starts the cluster (scripts/cluster.sh, nodes on
# $SLIPWAY_CLUSTER_PORT, 5770) and always stops it.
#   scripts/bench-cluster.sh [slipway-bench options]   (make bench-cluster BENCH_ARGS="--mode throughput")
# The hop record is SQLite, so that the queue type is the only difference; BENCH_POSTGRES=1 adds the PostgreSQL record
# (scripts/bench.sh starts and stops it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || echo "bench-cluster.sh: could not stop the cluster" >&2' EXIT
scripts/cluster.sh start
SLIPWAY_AMQP_URL=$(scripts/cluster.sh urls)
export SLIPWAY_AMQP_URL
base=${SLIPWAY_CLUSTER_PORT:-5770}
dir=${SLIPWAY_CLUSTER_DIR:-/tmp/slipway-cluster-$base}
nodes=()
for ((n = 1; n <= ${SLIPWAY_CLUSTER_NODES:-3}; n++)); do nodes+=(--broker-pid-file "$dir/node$n/node.pid"); done
# Not the single broker's pid file (bench.sh reads it from SLIPWAY_BROKER_DIR): the nodes' are given here.
unset SLIPWAY_BROKER_DIR
BENCH_POSTGRES=${BENCH_POSTGRES:-0} BENCH_DIR=${BENCH_DIR:-.slipway/bench-cluster} \
  scripts/bench.sh --queue-type quorum --queue-type classic "${nodes[@]}" "$@"

#!/usr/bin/env bash
# The chaos run on a 3-node RabbitMQ cluster of our own (docs/chaos.md): quorum queues, two instances of every step
# sharing their hop record, duplicates sent on purpose, processes SIGKILLed, and nodes SIGKILLed and started again one
# at a time. Starts the cluster (scripts/cluster.sh, nodes on $SLIPWAY_CLUSTER_PORT, 5770) and always stops it.
#   scripts/chaos-cluster.sh [slipway-chaos options]   (they override the defaults below)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || echo "chaos-cluster.sh: could not stop the cluster" >&2' EXIT
scripts/cluster.sh start
export SLIPWAY_QUEUE_TYPE=quorum
SLIPWAY_AMQP_URL=$(scripts/cluster.sh urls)
export SLIPWAY_AMQP_URL
scripts/chaos.sh --cluster-nodes 3 --instances 2 --shared-state \
  --slips 2000 --kills 40 --broker-restarts 3 --duplicates 100 --state-dir .slipway/chaos-cluster "$@"

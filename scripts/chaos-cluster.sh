#!/usr/bin/env bash
# The chaos run on a 3-node RabbitMQ cluster of our own (docs/chaos.md): quorum queues, two instances of every step,
# each with a state directory of its own (as on hosts of their own) and all sharing one hop record in a private
# PostgreSQL, duplicates sent on purpose, processes SIGKILLed, and nodes SIGKILLed and started again one at a time.
# Starts the cluster (scripts/cluster.sh, nodes on $SLIPWAY_CLUSTER_PORT, 5770) and PostgreSQL (scripts/postgres.sh,
# on $SLIPWAY_CHAOS_PG_PORT, 5481, fresh) and always stops both.
#   scripts/chaos-cluster.sh [--sqlite-per-instance] [slipway-chaos options]   (they override the defaults below)
# --sqlite-per-instance: no PostgreSQL; each instance keeps a SQLite record of its own, as on hosts without a shared
# record. The run then shows the failure the shared record prevents: its run-twice check counts the hops run twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SLIPWAY_PG_PORT=${SLIPWAY_CHAOS_PG_PORT:-5481}
export SLIPWAY_PG_DIR=/tmp/slipway-postgres-$SLIPWAY_PG_PORT
stop_all() {
  scripts/cluster.sh stop >/dev/null 2>&1 || echo "chaos-cluster.sh: could not stop the cluster" >&2
  scripts/postgres.sh stop >/dev/null 2>&1 || echo "chaos-cluster.sh: could not stop PostgreSQL" >&2
}
trap stop_all EXIT
record=(--store "$(scripts/postgres.sh url)")
if [[ ${1:-} == --sqlite-per-instance ]]; then
  shift
  record=()
else
  scripts/postgres.sh start --fresh
fi
scripts/cluster.sh start
export SLIPWAY_QUEUE_TYPE=quorum
SLIPWAY_AMQP_URL=$(scripts/cluster.sh urls)
export SLIPWAY_AMQP_URL
scripts/chaos.sh --cluster-nodes 3 --instances 2 "${record[@]}" \
  --slips 2000 --kills 40 --broker-restarts 3 --duplicates 100 --state-dir .slipway/chaos-cluster "$@"

#!/usr/bin/env bash
# A RabbitMQ cluster of private nodes on 127.0.0.1, for the cluster tests and the cluster chaos run: each node is a
# scripts/broker.sh node with its own port and directory, joined to the first with `rabbitmqctl join_cluster`.
#   scripts/cluster.sh start | stop | kill-node N | restart-node N | status | urls
#   start: a fresh cluster (every node's data wiped first); stop: every node, gracefully
#   kill-node N: SIGKILL node N (1-based), as a host lost would; restart-node N: (stop and) start node N again, which
#   rejoins the cluster with its data; urls: the nodes' AMQP URLs, comma-separated (SLIPWAY_AMQP_URLS form)
# Env: SLIPWAY_CLUSTER_PORT (5770: nodes on 5770, 5771, ...), SLIPWAY_CLUSTER_NODES (3),
#      SLIPWAY_CLUSTER_DIR (/tmp/slipway-cluster-$PORT).
set -euo pipefail
me=cluster.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${SLIPWAY_CLUSTER_PORT:-5770}
COUNT=${SLIPWAY_CLUSTER_NODES:-3}
DIR=${SLIPWAY_CLUSTER_DIR:-/tmp/slipway-cluster-$BASE}

say() { echo "$me: $*"; }
die() { echo "$me: $*" >&2; exit 1; }

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "SLIPWAY_CLUSTER_NODES must be a positive number"
port() { echo $((BASE + $1 - 1)); }
node_name() { echo "slipway$(port "$1")@localhost"; }
# scripts/broker.sh for node N.
broker() {
  local n=$1
  shift
  SLIPWAY_BROKER_PORT=$(port "$n") SLIPWAY_BROKER_DIR="$DIR/node$n" SLIPWAY_BROKER_TLS_PORT='' "$here/broker.sh" "$@"
}
check_index() {
  [[ ${1:-} =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= COUNT)) || die "node number must be 1 to $COUNT, got '${1:-}'"
}
ctl() { local n=$1; shift; timeout 60 rabbitmqctl -q -n "$(node_name "$n")" -t 50 "$@"; }

# The nodes node N sees running in its cluster, one per line.
running_nodes() {
  ctl "$1" cluster_status --formatter json 2>/dev/null \
    | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).get("running_nodes", [])))'
}

start() {
  local n first
  "$here/deps.sh" >/dev/null
  first=$(node_name 1)
  for ((n = 1; n <= COUNT; n++)); do
    broker "$n" start --fresh
    ((n == 1)) && continue
    # A fresh node joins the first; join_cluster needs the node's app stopped and its data empty.
    ctl "$n" stop_app >/dev/null
    ctl "$n" reset >/dev/null
    ctl "$n" join_cluster "$first" >/dev/null 2>"$DIR/join$n.log" || { cat "$DIR/join$n.log" >&2; die "node $n could not join $first"; }
    ctl "$n" start_app >/dev/null
  done
  local seen
  seen=$(running_nodes 1 | wc -l)
  ((seen == COUNT)) || die "the cluster has $seen running nodes, expected $COUNT"
  say "cluster of $COUNT nodes running: $(urls)"
}

stop() {
  local n
  for ((n = COUNT; n >= 1; n--)); do broker "$n" stop; done
}

kill_node() { check_index "$1"; broker "$1" kill; }

restart_node() {
  check_index "$1"
  broker "$1" stop
  broker "$1" start
  # Back in the cluster? (Its data says it is a member, so it rejoins as it boots.)
  running_nodes "$1" | grep -qx "$(node_name "$1")" || die "node $1 started but is not running in the cluster"
}

status() {
  local n up=0
  for ((n = 1; n <= COUNT; n++)); do
    if broker "$n" status >/dev/null 2>&1; then
      up=$((up + 1))
      say "node $n $(node_name "$n") on 127.0.0.1:$(port "$n"): running"
    else
      say "node $n $(node_name "$n") on 127.0.0.1:$(port "$n"): down"
    fi
  done
  ((up > 0)) || return 1
  for ((n = 1; n <= COUNT; n++)); do
    if broker "$n" status >/dev/null 2>&1; then
      say "running in the cluster, as node $n sees it: $(running_nodes "$n" | paste -sd ' ')"
      break
    fi
  done
}

urls() {
  local n list=()
  for ((n = 1; n <= COUNT; n++)); do list+=("amqp://guest:guest@127.0.0.1:$(port "$n")/"); done
  (IFS=,; echo "${list[*]}")
}

[[ ${1:-} == urls || $(id -u) -eq 0 ]] || die "must run as root (the nodes run as user rabbitmq)"
case ${1:-} in
  start) start ;;
  stop) stop ;;
  kill-node) kill_node "${2:-}" ;;
  restart-node) restart_node "${2:-}" ;;
  status) status ;;
  urls) urls ;;
  *) die "usage: $0 start|stop|kill-node N|restart-node N|status|urls" ;;
esac

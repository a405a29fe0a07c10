#!/usr/bin/env bash
# Runs CMD against a fresh private broker, which is always stopped afterwards.
#   scripts/with-broker.sh CMD [ARGS...]   (exports SLIPWAY_AMQP_URL; exit code is CMD's)
set -euo pipefail
me=with-broker.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($#)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

"$here/deps.sh"
export SLIPWAY_BROKER_PORT=${SLIPWAY_BROKER_PORT:-5680}
export SLIPWAY_BROKER_DIR=${SLIPWAY_BROKER_DIR:-/tmp/slipway-broker-$SLIPWAY_BROKER_PORT}

trap 'rc=$?; trap - EXIT INT TERM; "$here/broker.sh" stop || echo "$me: could not stop the broker" >&2; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$here/broker.sh" status >/dev/null 2>&1; then
  echo "$me: a broker is already running on port $SLIPWAY_BROKER_PORT; restarting it fresh"
  "$here/broker.sh" stop
fi
"$here/broker.sh" start --fresh
SLIPWAY_AMQP_URL=$("$here/broker.sh" url)
export SLIPWAY_AMQP_URL
echo "$me: SLIPWAY_AMQP_URL=$SLIPWAY_AMQP_URL; running: $*"
set +e
"$@"
rc=$?
set -e
echo "$me: $1 exited with $rc"
exit "$rc"

#!/usr/bin/env bash
# The chain-K benchmark (`slip bench`) on a release build, against the broker at $SLIPWAY_AMQP_URL. Run it through
# `make bench`, which starts a private broker and stops it after. Arguments go to `slip bench` (see `slip bench --help`);
# results are also written to .slipway/bench/results.json.
#
# The processors are built as they would be deployed (scripts/build-release.sh): `--static-swift-stdlib`, one
# self-contained binary per step that needs no Swift toolchain on its host, linked to keep its resident code small
# (docs/performance.md, memory, has the figures).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make bench' (it starts one)}"

bin=$(scripts/build-release.sh)
work=.slipway/bench
rm -rf "$work" && mkdir -p "$work"
pid_file=${SLIPWAY_BROKER_DIR:+$SLIPWAY_BROKER_DIR/node.pid}
exec "$bin/slip" bench --state-dir "$work" --json "$work/results.json" \
  ${pid_file:+--broker-pid-file "$pid_file"} "$@"

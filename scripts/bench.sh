#!/usr/bin/env bash
# The chain-K benchmark (`slip bench`) on a release build, against the broker at $SLIPWAY_AMQP_URL. Run it through
# `make bench`, which starts a private broker and stops it after. Arguments go to `slip bench` (see `slip bench --help`);
# results are also written to .slipway/bench/results.json.
#
# The processors are built as they would be deployed: `--static-swift-stdlib`, one self-contained binary per step that
# needs no Swift toolchain on its host (docs/performance.md, memory, has the figures both ways).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make bench' (it starts one)}"

echo "bench: static release build (.build-static; the first one takes a few minutes)"
swift build -c release --static-swift-stdlib --scratch-path .build-static
bin=$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)
work=.slipway/bench
rm -rf "$work" && mkdir -p "$work"
pid_file=${SLIPWAY_BROKER_DIR:+$SLIPWAY_BROKER_DIR/node.pid}
exec "$bin/slip" bench --state-dir "$work" --json "$work/results.json" \
  ${pid_file:+--broker-pid-file "$pid_file"} "$@"

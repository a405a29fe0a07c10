#!/usr/bin/env bash
# The chaos run: the example saga under SIGKILLs and RabbitMQ restarts, then checks of what it kept (docs/chaos.md).
#   scripts/chaos.sh [--release] [slipway-chaos options...]     e.g. --slips 300 --seed 7
# Needs the broker at $SLIPWAY_AMQP_URL to be the node scripts/broker.sh restarts ($SLIPWAY_BROKER_PORT): run it
# through `make chaos`, which starts that broker and stops it after. Debug build by default; --release builds in
# .build-release, as scripts/baseline.sh does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make chaos' (it starts one)}"

build=(swift build)
if [[ ${1:-} == --release ]]; then
  shift
  build=(swift build -c release --scratch-path .build-release)
fi
echo "chaos.sh: building (${build[*]})"
"${build[@]}"
bin=$("${build[@]}" --show-bin-path)
exec "$bin/slipway-chaos" "$@"

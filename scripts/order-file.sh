#!/usr/bin/env bash
# Makes scripts/processor.order again: the functions a processor runs, found by running the chain-5 benchmark with
# two of its five probe-steps under callgrind (one in the middle, and the last, which ends the slips). Run it through
#   scripts/with-broker.sh scripts/order-file.sh
# after changes to the hot path or a new toolchain; a stale list still links, it just packs less of the code that runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run it through scripts/with-broker.sh}"
me=order-file.sh

if ! command -v valgrind >/dev/null; then
  echo "$me: installing valgrind"
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

bin=$(scripts/build-release.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/traced"
cp "$bin/slipway-bench" "$bin/slip" "$bin/bench-forwarder" "$work/bin/"
# valgrind cannot read this toolchain's DWARF; the symbol table is enough to name functions.
strip --strip-debug -o "$work/traced/probe-step" "$bin/probe-step"
cat >"$work/bin/probe-step" <<WRAPPER
#!/bin/sh
case "\$*" in
  *"--step s3"*|*"--step s5"*)
    exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" "$work/traced/probe-step" "\$@" ;;
  *) exec "$bin/probe-step" "\$@" ;;
esac
WRAPPER
chmod +x "$work/bin/probe-step"

echo "$me: running the benchmark with s3 and s5 under callgrind (a few minutes)"
for mode in "--mode latency --rates 20 --duration 20" "--mode throughput --slips 400"; do
  # shellcheck disable=SC2086 # the mode's words are separate arguments
  "$work/bin/slipway-bench" $mode --no-baseline --state-dir "$work/state" >"$work/bench.log" 2>&1 \
    || { cat "$work/bench.log" >&2; exit 1; }
done
scripts/order-file.py "$work/traced/probe-step" "$work"/callgrind.* >scripts/processor.order
echo "$me: wrote scripts/processor.order; rebuild with scripts/build-release.sh"

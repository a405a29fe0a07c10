#!/usr/bin/env bash
# The chain-K benchmark (slipway-bench, a tool of this repository, not a product) on a release build, against the
# broker at $SLIPWAY_AMQP_URL. Run it through `make bench`, which starts a private broker and stops it after. Arguments
# go to slipway-bench (see `swift run slipway-bench --help`); results are also written to $BENCH_DIR/results.json
# (.slipway/bench).
#
# The framework's chain is measured with the SQLite hop record and then with the PostgreSQL one, in the same run:
# this script starts a fresh private PostgreSQL (scripts/postgres.sh, on $SLIPWAY_PG_PORT) and always stops it after.
# BENCH_POSTGRES=0, or a --store of your own among the arguments, leaves PostgreSQL out.
#
# The processors are built as they would be deployed (scripts/build-release.sh): `--static-swift-stdlib`, one
# self-contained binary per step that needs no Swift toolchain on its host, linked to keep its resident code small
# (docs/performance.md, memory, has the figures). BENCH_BIN=DIR uses binaries built already instead (.build/debug, say):
# to try the script quickly, not for figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${SLIPWAY_AMQP_URL:?needs a broker: run 'make bench' (it starts one)}"

bin=${BENCH_BIN:-$(scripts/build-release.sh)}
work=${BENCH_DIR:-.slipway/bench}
rm -rf "$work" && mkdir -p "$work"
args=(--state-dir "$work" --json "$work/results.json")
pid_file=${SLIPWAY_BROKER_DIR:+$SLIPWAY_BROKER_DIR/node.pid}
[[ -n $pid_file ]] && args+=(--broker-pid-file "$pid_file")

postgres=${BENCH_POSTGRES:-1}
for arg in "$@"; do [[ $arg == --store || $arg == --store=* ]] && postgres=0; done
if [[ $postgres == 1 ]]; then
  trap 'scripts/postgres.sh stop >/dev/null || echo "bench.sh: could not stop PostgreSQL" >&2' EXIT
  # Fresh: the record starts empty for every benchmark.
  scripts/postgres.sh start --fresh
  pg_dir=${SLIPWAY_PG_DIR:-/tmp/slipway-postgres-${SLIPWAY_PG_PORT:-5480}}
  args+=(--store sqlite --store "$(scripts/postgres.sh url)" --postgres-pid-file "$pg_dir/data/postmaster.pid")
fi
"$bin/slipway-bench" "${args[@]}" "$@"

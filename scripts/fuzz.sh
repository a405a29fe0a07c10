#!/usr/bin/env bash
# The long fuzz run of the slip decoder and validator (docs/fuzzing.md): N inputs (default 1,000,000) through
# Tests/SlipwayCoreTests/FuzzTests.swift in a release build.
#
#   scripts/fuzz.sh [N]                       N inputs from the default seed
#   SLIPWAY_FUZZ_SEED=123 scripts/fuzz.sh     another seed (decimal, or 0x... hex)
#   SLIPWAY_FUZZ_FIRST=4200 scripts/fuzz.sh 1 replay input 4200 alone
#
# The release build lives in .build-release, apart from the debug build in .build. Tests need -enable-testing in
# release (they use @testable import). Inputs that break a property are written to .build-release/fuzz-failures/.
# The closing lines give inputs, time, inputs/s and the outcome of every input by strategy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

iterations=${1:-1000000}
export SLIPWAY_FUZZ_ITERATIONS=$iterations
export SLIPWAY_FUZZ_ARTIFACTS=${SLIPWAY_FUZZ_ARTIFACTS:-$PWD/.build-release/fuzz-failures}
flags=(-c release --scratch-path .build-release -Xswiftc -enable-testing)

echo "fuzz.sh: building in release (.build-release)"
swift build "${flags[@]}" --build-tests
echo "fuzz.sh: $iterations inputs, seed ${SLIPWAY_FUZZ_SEED:-default}; failing inputs go to $SLIPWAY_FUZZ_ARTIFACTS"
start=$(date +%s)
status=0
swift test "${flags[@]}" --skip-build --filter 'FuzzTests/fuzzDecoder' 2>&1 | grep --line-buffered -v "^\s*$" || status=$?
echo "fuzz.sh: wall time $(( $(date +%s) - start )) s, exit status $status"
exit "$status"

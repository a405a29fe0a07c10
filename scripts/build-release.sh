#!/usr/bin/env bash
# Builds every executable (the products, and the tools probe-step, bench-forwarder and slipway-chaos) the way a
# processor is deployed, into .build-static, and prints the directory of the binaries.
#   scripts/build-release.sh [--product NAME]...
#
# - release, `--static-swift-stdlib`: one self-contained binary per step; its host needs only librabbitmq, OpenSSL,
#   SQLite and libstdc++, no Swift toolchain.
# - linked by lld (it comes with the toolchain) with:
#   - packed relative relocations (`-z pack-relative-relocs`, glibc 2.36+): the 2 MB relocation table a position-
#     independent binary of this size carries, read in full at every start, becomes 20 KB;
#   - no exported symbols (`--no-export-dynamic`): nothing loads a processor as a library, and the exported table
#     (1.2 MB) was read at start by every symbol lookup. Crash backtraces use the binary's own symbol table.
#   - the code a processor runs first, in the order of scripts/processor.order: each function in a section of its
#     own, the hot ones side by side. The kernel maps code 64 KB around each page touched, so code scattered over
#     20 MB kept 10 MB of it resident; packed, about 5 MB. scripts/order-file.sh makes the list again.
# docs/performance.md (memory) has the figures for each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

flags=(
  -c release --static-swift-stdlib --scratch-path .build-static
  -Xswiftc -use-ld=lld
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
  -Xlinker -z -Xlinker pack-relative-relocs
  -Xlinker --no-export-dynamic
  -Xlinker "--symbol-ordering-file=$PWD/scripts/processor.order" -Xlinker --no-warn-symbol-ordering
)
echo "build-release.sh: static release build in .build-static (the first one takes a few minutes)" >&2
bin=$(swift build "${flags[@]}" --show-bin-path)
# SwiftPM does not know the linker reads scripts/processor.order: a binary linked before the list last changed is
# removed, so that it is linked again with the new list.
for binary in "$bin"/*; do
  if [[ -f $binary && -x $binary && scripts/processor.order -nt $binary ]]; then rm -f "$binary"; fi
done
# SwiftPM builds only the last of several --product options: one build each.
products=()
while (($#)); do
  case $1 in
    --product) products+=("$2"); shift 2 ;;
    *) echo "build-release.sh: unknown argument '$1' (usage: scripts/build-release.sh [--product NAME]...)" >&2; exit 2 ;;
  esac
done
if ((${#products[@]})); then
  for product in "${products[@]}"; do swift build "${flags[@]}" --product "$product" >&2; done
else
  swift build "${flags[@]}" >&2
fi
# A list gone stale (renamed functions, another toolchain) still links; it just packs less. Say how much it matched.
if [[ -x $bin/probe-step ]]; then
  listed=$(wc -l <scripts/processor.order)
  found=$(nm --defined-only "$bin/probe-step" | awk '{print $3}' | sort -u | comm -12 - <(sort -u scripts/processor.order) | wc -l)
  echo "build-release.sh: probe-step has $found of the $listed functions in scripts/processor.order" \
    "(remake it with scripts/order-file.sh when many are missing)" >&2
fi
echo "$bin"

#!/usr/bin/env bash
# Installs the Debian packages Slipway needs, if any are missing (idempotent).
#   scripts/deps.sh [postgres]   (postgres: the PostgreSQL server too, for scripts/postgres.sh)
set -euo pipefail
me=deps.sh
# libssl-dev: shim.h calls OpenSSL for TLS checks; openssl: the TLS tests make their certificates with it.
PACKAGES=(librabbitmq-dev libssl-dev openssl rabbitmq-server libsqlite3-dev sqlite3 pkg-config)
for extra in "$@"; do
  case $extra in
    postgres) PACKAGES+=(postgresql) ;;
    *) echo "$me: unknown extra '$extra' (known: postgres)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "$me: all present (${PACKAGES[*]})"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "$me: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

# Keep package scripts from starting a system-wide rabbitmq-server (it would fail
# without systemd, and its postinst turns that into an install error).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

echo "$me: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for p in "${missing[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] \
    || { echo "$me: $p is still not installed" >&2; exit 1; }
done
echo "$me: installed ${missing[*]}"

#!/usr/bin/env bash
# Installs everything jobwire's build, tests and demo need from Debian 12's archive.
# Idempotent: packages already installed are detected with dpkg-query, and apt-get runs only
# when something is missing. Runs as root, or through sudo otherwise.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config git
    libwebsockets-dev libwebsockets-evlib-ev libev-dev
    libhiredis-dev libevent-dev libjansson-dev libjwt-dev libssl-dev
    libcmocka-dev
    redis-server redis-tools
    python3 python3-websockets python3-redis python3-pytest
    valgrind clang-format curl ca-certificates
    groff-base man-db systemd iproute2
    unzip python3-yaml chromium
    python3-jwt python3-cryptography
)
# Node.js (for npm: helm for the chart tests, playwright-core for the browser tests) may come from
# elsewhere than Debian (nodesource); install Debian's only when no npm is on PATH at all.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [[ "$status" == ii* ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo" >&2; exit 1; }
    SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" </dev/null

#!/usr/bin/env bash
# Installs redis-server (Debian's package) when it is missing. The tests
# start their own redis-server on a free loopback port; nothing is left
# running and no system service is needed.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || { echo "setup-redis: redis-server is missing and apt-get is not available" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Keep the package from starting a system-wide server on port 6379.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
redis-server --version

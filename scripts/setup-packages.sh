#!/usr/bin/env bash
# Installs the Debian packages named on the command line whose command is
# missing (package:command, or just the package when they share a name),
# e.g. `setup-packages.sh redis-server openssl`. The tests start their own
# redis-server on a free loopback port; no system service is started.
set -euo pipefail
missing=()
for spec in "$@"; do
  pkg="${spec%%:*}"; cmd="${spec#*:}"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "setup-packages: missing ${missing[*]} and apt-get is not available" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Keep packages (redis-server) from starting system-wide servers.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup-packages: installed ${missing[*]}" >&2

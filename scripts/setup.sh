#!/usr/bin/env bash
# Installs what sluice and its tests need on Debian 12 (run as root), then the npm packages,
# which also builds the WASM core, its JS twin and the TypeScript (npm's prepare step).
#   bash scripts/setup.sh          everything the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: tshark (differential decoder tests); iproute2, iptables and conntrack (the
# gateway); iputils-ping, curl and dnsutils (dig: its namespace tests). Nothing comes from
# anywhere but Debian and npm.
APT_PACKAGES=(tshark iproute2 iptables conntrack iputils-ping curl dnsutils)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: sluice needs Node.js 20 or newer (found $(node --version))" >&2
  exit 1
fi

# npm ci installs exactly the locked versions; its prepare step builds everything. The lock has
# no entries for msgpackr-extract's macOS, Windows and 32-bit ARM prebuilds (optional packages
# this registry does not serve), and npm ci refuses such a lock as "out of sync": then npm
# install resolves the same versions from the lock and builds the same way.
if ! npm ci --no-audit --no-fund; then
  echo "setup: npm ci refused the lock file; installing with npm install instead" >&2
  npm install --no-audit --no-fund
fi

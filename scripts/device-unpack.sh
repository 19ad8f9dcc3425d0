#!/usr/bin/env bash
# The other half of device-pack.sh, run on the GPU machine in the checkout's root.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/moe-node/bin
xz -d -c .device/node.xz > /tmp/moe-node/bin/node
chmod +x /tmp/moe-node/bin/node
[ -d node_modules ] || xz -d -c .device/node_modules.tar.xz | tar -xf -
echo "node $(/tmp/moe-node/bin/node --version) ready: export PATH=/tmp/moe-node/bin:\$PATH"

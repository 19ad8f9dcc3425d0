#!/usr/bin/env bash
# Packs what a GPU machine without Node needs to run this checkout: this machine's
# node binary and the installed node_modules, xz-compressed under .device/ (git-ignored).
# On the GPU machine: `bash scripts/device-unpack.sh` then use node from /tmp/moe-node/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
node_bin=$(command -v node)
[ .device/node.xz -nt "$node_bin" ] || xz -T2 -6 -c "$node_bin" > .device/node.xz
tar -cf - node_modules | xz -T2 -6 > .device/node_modules.tar.xz
ls -la .device

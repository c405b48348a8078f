#!/bin/bash
# Install Debian's headless-capable Chromium (used by the report tests). Needs root and
# Debian's package registry.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
chromium --version

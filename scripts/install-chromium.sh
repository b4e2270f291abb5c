#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (driven by Playwright in tests/console
# through its executable path, so Playwright never downloads a browser) unless it is
# already there. Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail

CHROMIUM="${SPINE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $CHROMIUM"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core

"$CHROMIUM" --version

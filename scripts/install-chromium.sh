#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (driven by Playwright in tests/console
# through its executable path, so Playwright never downloads a browser) unless it is
# already there. Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM="${SPINE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    already_installed chromium "$CHROMIUM"
fi

apt_get update
apt_get install -y --no-install-recommends chromium fonts-dejavu-core

"$CHROMIUM" --version

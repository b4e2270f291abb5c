#!/usr/bin/env bash
# Install `promtool` (checks and unit-tests deploy/prometheus/rules) from Debian's
# `prometheus` package unless it is already on PATH. Only the promtool binary is
# taken from the .deb: installing the package would also add a Prometheus server and
# its service. Idempotent; needs root (or sudo) for apt-get and /usr/local/bin.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v promtool >/dev/null 2>&1; then
    already_installed promtool "$(command -v promtool)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's sandbox user downloads into it
apt_get update
(cd "$work" && apt-get download prometheus)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
$SUDO install -m 0755 "$work/root/usr/bin/promtool" /usr/local/bin/promtool

promtool --version | head -1

#!/usr/bin/env bash
# Install a headless Java runtime from Debian (needed by DynamoDB Local) unless
# `java` is already on PATH. Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v java >/dev/null 2>&1; then
    already_installed java "$(command -v java)"
fi

apt_get update
apt_get install -y default-jre-headless

java -version

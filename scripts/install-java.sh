#!/usr/bin/env bash
# Install a headless Java runtime from Debian (needed by DynamoDB Local) unless
# `java` is already on PATH. Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail

if command -v java >/dev/null 2>&1; then
    echo "java already installed: $(command -v java)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y default-jre-headless

java -version

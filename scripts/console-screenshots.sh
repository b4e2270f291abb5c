#!/usr/bin/env bash
# Regenerate docs/console/*.png: the console's main pages over a real pipeline (local
# broker, SQLite, a sink worker), shot by Debian's Chromium through Playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-chromium.sh >/dev/null
mkdir -p docs/console
rm -f docs/console/*.png
SPINE_CONSOLE_SCREENSHOTS="$PWD/docs/console" \
    .venv/bin/python -m pytest tests/console/test_screenshots.py -q -p no:randomly
ls docs/console

"""docs/backends.md matches the code, and `spine worker --help` shows every default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from event_spine.backends.catalog import BACKENDS
from event_spine.backends.reference import config_model, render
from event_spine.sink_workers.settings import SinkSettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def test_the_backends_page_is_what_the_code_generates() -> None:
    page = PAGE.read_text()
    assert render(page) == page, (
        "docs/backends.md is stale: run `python -m event_spine.backends.reference`"
    )


def test_every_backend_has_its_config_keys_and_layout_on_the_page() -> None:
    page = PAGE.read_text()
    for backend in BACKENDS:
        assert f"## {backend.value}\n" in page
        assert f"<!-- generated:config:{backend.value} -->" in page
        block = page.split(f"<!-- generated:config:{backend.value} -->")[1].split("<!--")[0]
        for name, info in config_model(backend).model_fields.items():
            assert f"| `{info.alias or name}` |" in block, (backend, name)
        assert f"<!-- generated:queries:{backend.value} -->" in page
        assert f"<!-- generated:layout:{backend.value} -->" in page
    # The SQL backends show their tables as created.
    assert "CREATE TABLE IF NOT EXISTS spine_events" in page
    assert "CREATE TABLE IF NOT EXISTS {events}" in page


def test_worker_help_shows_every_default() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "250", "TERMINAL_WIDTH": "250"},
    ).stdout
    # The shared Kafka connection flags (their own panel) show their env var instead.
    kafka_panel = shown.split("Kafka connection")[1].split("╰")[0]
    options = [o for o in re.findall(r"│ (--[a-z-]+)", shown) if f"│ {o} " not in kafka_panel]
    assert "--registry" in options
    assert "--log-format" in options
    lines = shown.splitlines()
    for option in options:
        if option == "--help":
            continue
        start = next(n for n, line in enumerate(lines) if f"│ {option} " in line)
        end = next(
            (n for n in range(start + 1, len(lines)) if re.match(r"│ +(-|╰)", lines[n])),
            len(lines),
        )
        assert "[default:" in " ".join(lines[start:end]), option
    for name in ("topic", "group_id", "max_records", "session_timeout_ms", "http_port"):
        assert f"{SinkSettings.model_fields[name].default}; env SPINE_SINK_{name.upper()}" in shown

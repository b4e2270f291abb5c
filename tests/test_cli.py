"""The CLI: the main job end to end, and route management, as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support.pipeline import new_topic, read_topic


def spine(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(300)
def test_demo_emits_persists_and_reads_everything_back(tmp_path: Path) -> None:
    result = spine(
        "demo", "--events", "3000", "--rate", "3000", "--workdir", str(tmp_path / "demo")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: emitted 3000, persisted and read back 3000, out of order 0" in result.stdout
    assert (tmp_path / "demo" / "events-t_acme.db").exists()


def test_routes_set_switch_history_and_missing(tmp_path: Path) -> None:
    registry = f"sqlite:{tmp_path / 'registry.db'}"
    scope = ["event_spine", "t_acme", "dev", "p_core", "saas"]
    made = spine(
        "routes",
        "set",
        *scope,
        "--backend",
        "sqlite",
        "--config",
        '{"path": "/tmp/a.db"}',
        "--registry",
        registry,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    moved = spine(
        "routes",
        "switch",
        *scope,
        "--backend",
        "sqlite",
        "--config",
        '{"path": "/tmp/b.db"}',
        "--reason",
        "rebalance disks",
        "--actor",
        "ops",
        "--registry",
        registry,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    history = spine("routes", "history", *scope, "--registry", registry)
    assert "rebalance disks" in history.stdout
    assert "ops" in history.stdout
    updated = spine(
        "routes",
        "update",
        *scope,
        "--tier",
        "gold",
        "--health",
        "degraded",
        "--cost-notes",
        "$$",
        "--registry",
        registry,
    )
    assert updated.returncode == 0, updated.stdout + updated.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", "routes", "list", "--registry", registry],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "gold" in listed.stdout
    assert "degraded" in listed.stdout
    shown = spine("routes", "show", *scope, "--registry", registry)
    assert "/tmp/b.db" in shown.stdout
    missing = spine(
        "routes", "show", "event_spine", "t_none", "dev", "p_core", "saas", "--registry", registry
    )
    assert missing.returncode == 3  # configuration: no such route (docs/operations.md)
    assert "t_none" in missing.stderr
    refused = spine(
        "routes",
        "set",
        *scope,
        "--backend",
        "filesystem",
        "--config",
        '{"root": "/tmp/x"}',
        "--registry",
        registry,
    )
    assert refused.returncode == 3
    assert "only in mode 'lab'" in refused.stderr


async def test_route_changes_from_the_cli_are_audited_through_the_spine(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = f"sqlite:{tmp_path / 'registry.db'}"
    scope = ["event_spine", "t_acme", "dev", "p_core", "saas"]
    common = ["--registry", registry, "--bootstrap", broker.bootstrap_servers]
    env = {**os.environ, "SPINE_PRODUCER_TOPIC": topic}
    for args in (
        ["set", *scope, "--backend", "sqlite", "--config", '{"path": "/tmp/a.db"}'],
        [
            "switch",
            *scope,
            "--backend",
            "sqlite",
            "--config",
            '{"path": "/tmp/b.db"}',
            "--reason",
            "disk full",
            "--actor",
            "ops",
        ],
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "event_spine.cli.main",
                "routes",
                *args,
                *common,
                "--audit-topic",
                topic,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    records = await read_topic(broker.bootstrap_servers, topic, 3)
    types = [orjson.loads(r.value)["event_type"] for r in records]
    assert "audit.route.set" in types
    assert "audit.route.switch" in types
    assert any(t.startswith("timeline.") for t in types), types
    switch = next(
        orjson.loads(r.value)
        for r in records
        if orjson.loads(r.value)["event_type"] == "audit.route.switch"
    )
    assert switch["metadata"]["user_id"] == "ops"
    assert switch["routing"]["tenant_id"] == "t_acme"

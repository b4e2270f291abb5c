"""Replay applies the live sink's routing rules: unrouted and non-durable scopes are
skipped and counted by reason, unless --include-unrouted says otherwise."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from event_spine.errors import ConfigurationError
from event_spine.replay import ReplayTarget
from event_spine.replay.reader import StartFrom
from event_spine.replay.replayer import ReplayConfig, Replayer
from event_spine.schemas import ResourceRoute
from support.pipeline import ctx, new_topic, producer_for, registry_at, route_to_sqlite, unique


def stored_tenants(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT tenant_id, count(*) FROM spine_events GROUP BY tenant_id ORDER BY tenant_id"
        ).fetchall()
    conn.close()
    return found


async def test_replay_skips_and_counts_scopes_the_live_sink_does_not_store(
    broker, tmp_path: Path
) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=2)
    registry = await registry_at(tmp_path / "registry.db")
    routed, fragile, unrouted = ctx("t_acme"), ctx("t_globex", mode="saas"), ctx("t_initech")
    await route_to_sqlite(registry, routed, tmp_path / "live.db")
    # A memory route outside lab, as an older release let it into the registry.
    await registry.store.save(ResourceRoute.for_scope(fragile, "event_spine", "memory", {}), 0)
    await registry.store.close()
    producer = producer_for(broker.bootstrap_servers, topic)
    for n in range(12):
        producer.emit_event(routed, "e", f"s{n % 3}", {"n": n})
    for n in range(5):
        producer.emit_event(fragile, "e", "s", {"n": n})
    for n in range(7):
        producer.emit_event(unrouted, "e", "s", {"n": n})
    assert producer.flush(30)
    producer.close()

    def replay(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, "-m", "event_spine.cli.main", "replay",
            "--bootstrap", broker.bootstrap_servers, "--topic", topic,
            "--into-backend", "sqlite",
            "--into-config", orjson.dumps({"path": str(db)}).decode(),
            "--from-beginning", "--name", unique("routing"), *extra,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    registry_option = ["--registry", f"sqlite:{tmp_path / 'registry.db'}"]
    ruled = await asyncio.to_thread(replay, tmp_path / "ruled.db", *registry_option)
    assert ruled.returncode == 0, ruled.stdout + ruled.stderr
    assert "route_missing=7, route_not_durable=5" in ruled.stdout
    assert "written 12" in ruled.stdout
    assert stored_tenants(tmp_path / "ruled.db") == [("t_acme", 12)]

    everything = await asyncio.to_thread(
        replay, tmp_path / "all.db", *registry_option, "--include-unrouted"
    )
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert stored_tenants(tmp_path / "all.db") == [
        ("t_acme", 12),
        ("t_globex", 5),
        ("t_initech", 7),
    ]

    # Into a backend with neither the registry nor the flag: refused, nothing read.
    bare = await asyncio.to_thread(replay, tmp_path / "bare.db")
    assert bare.returncode == 3  # configuration (docs/operations.md, exit codes)
    assert "--include-unrouted" in bare.stderr
    assert not (tmp_path / "bare.db").exists()


async def test_the_library_refuses_a_backend_target_without_rules(tmp_path: Path) -> None:
    config = ReplayConfig(
        kafka="127.0.0.1:1",
        topic="t",
        name="x",
        target=ReplayTarget.of_backend("sqlite", {"path": str(tmp_path / "x.db")}),
        start=StartFrom.beginning(),
    )
    with pytest.raises(ConfigurationError, match="--registry"):
        await Replayer(config).run()

"""Helpers of the chaos tests: a sink worker as a real process, a routed topic."""

from __future__ import annotations

import subprocess
from pathlib import Path

from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.demo.job import worker_command
from support.pipeline import ctx, new_topic, registry_at, route_to_sqlite

#: Fast group timing for Tansu (it waits about half the session timeout on a join).
FAST_GROUP = ["--session-timeout-ms", "2000", "--heartbeat-interval-ms", "200"]


def spawn_worker(
    bootstrap: str,
    topic: str,
    registry_db: Path,
    log: Path,
    group: list[str] = FAST_GROUP,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        worker_command(
            bootstrap,
            registry_db,
            "--topic",
            topic,
            "--group",
            f"{topic}-sink",
            "--max-records",
            "50",
            *group,
            "--fetch-max-wait-ms",
            "50",
            "--http-port",
            "0",
        ),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def routed(broker_bootstrap: str, tmp_path: Path, partitions: int = 4):
    topic = await new_topic(broker_bootstrap, partitions)
    registry = await registry_at(tmp_path / "registry.db")
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    await registry.store.close()
    store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
    await store.open()
    return topic, c, store

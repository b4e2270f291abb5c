"""SIGKILL a sink worker process mid-stream, restart it: every event stored exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from event_spine.backends.sqlite import SqliteConfig, SqliteEventStore
from support.pipeline import ctx, new_topic, producer_for, registry_at, route_to_sqlite
from support.waiting import wait_until

pytestmark = pytest.mark.chaos


def spawn_worker(
    bootstrap: str, topic: str, registry_db: Path, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "event_spine.cli.main",
            "worker",
            "--bootstrap",
            bootstrap,
            "--registry",
            f"sqlite:{registry_db}",
            "--topic",
            topic,
            "--group",
            f"{topic}-sink",
            "--max-records",
            "50",
            "--http-port",
            "0",
            "--session-timeout-ms",
            "2000",
            "--heartbeat-interval-ms",
            "200",
            "--fetch-max-wait-ms",
            "50",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def count_rows(store: SqliteEventStore, scope, streams: list[str]) -> tuple[int, set[str]]:
    ids: list[str] = []
    for stream in streams:
        last = None
        while page := await store.list_after(scope, stream, last, 1000):
            ids.extend(e.event_id for e in page)
            last = page[-1].event_id
    return len(ids), set(ids)


async def test_sigkill_mid_stream_then_restart_stores_each_event_once(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers)
    c = ctx()
    registry = await registry_at(tmp_path / "registry.db")
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    await registry.store.close()
    streams = [f"s{i}" for i in range(6)]
    producer = producer_for(broker.bootstrap_servers, topic)
    emitted: set[str] = set()
    rng = random.Random(11)
    store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
    log = tmp_path / "worker.log"
    worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
    kills = 0
    try:
        for round_ in range(4):
            emitted |= {
                producer.emit_event(c, "e", rng.choice(streams), {"r": round_, "i": i})
                for i in range(600)
            }
            stored_before = (await count_rows(store, c.scope, streams))[0]
            # Kill once the worker is writing this round (mid-stream, not before or after).
            await wait_until(
                lambda floor=stored_before: _rows_above(store, c, streams, floor),
                60,
                message="worker writing",
            )
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            kills += 1
            worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
        assert producer.flush(30)

        async def all_stored() -> bool:
            return (await count_rows(store, c.scope, streams))[0] >= len(emitted)

        await wait_until(all_stored, 90, interval_s=0.25, message="all events stored")
        count, ids = await count_rows(store, c.scope, streams)
        assert kills == 4
        assert count == len(ids) == len(emitted)  # no duplicate rows
        assert ids == emitted  # no loss
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        producer.close()
        await store.close()


async def _rows_above(store: SqliteEventStore, c, streams: list[str], floor: int) -> bool:
    return (await count_rows(store, c.scope, streams))[0] > floor

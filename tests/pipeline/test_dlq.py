"""Dead letters can be listed, inspected and replayed once the cause is fixed."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from event_spine.backends import StoreFactory
from event_spine.dlq import read_dead_letters, replay_dead_letters
from event_spine.services import EventStreamService
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until


async def test_fix_the_route_then_replay_dead_letters(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers)
    registry = await registry_at(tmp_path / "registry.db")
    late = ctx("t_late")
    producer = producer_for(broker.bootstrap_servers, topic)
    ids = [producer.emit_event(late, "x", "s", {"n": n}) for n in range(5)]
    assert producer.flush(30)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(lambda: worker.stats.dead_lettered.get("route_missing") == 5, 30)
        letters = await read_dead_letters(broker.bootstrap_servers, f"{topic}.dlq")
        assert [x.reason for x in letters] == ["route_missing"] * 5
        assert [x.source[0] for x in letters] == [topic] * 5
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "event_spine.cli.main",
                "dlq",
                "list",
                "--bootstrap",
                broker.bootstrap_servers,
                "--topic",
                f"{topic}.dlq",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert "5 dead letter(s)" in listed.stdout
        assert "route_missing" in listed.stdout
        as_json = subprocess.run(
            [
                *listed.args,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        parsed = orjson.loads(as_json.stdout)
        assert [x["reason"] for x in parsed] == ["route_missing"] * 5
        assert [x["source"]["topic"] for x in parsed] == [topic] * 5
        assert sorted(x["source"]["offset"] for x in parsed) == sorted(x.source[2] for x in letters)
        assert all(x["error_class"] == "RouteNotFound" for x in parsed)

        await route_to_sqlite(registry, late, tmp_path / "late.db")
        replayed, skipped = await replay_dead_letters(
            broker.bootstrap_servers,
            f"{topic}.dlq",
            group_id=f"{topic}-dlq-replay",
            select=lambda x: x.reason == "route_missing",
        )
        assert (replayed, skipped) == (5, 0)
        service = EventStreamService(late, registry, StoreFactory())

        async def all_stored() -> bool:
            return [e.event_id for e in await service.list_after("s")] == ids

        await wait_until(all_stored, 30, message="replayed dead letters stored in order")
        again = await replay_dead_letters(
            broker.bootstrap_servers, f"{topic}.dlq", group_id=f"{topic}-dlq-replay", timeout_s=2
        )
        assert again == (0, 0)  # the replay group remembers its progress
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()

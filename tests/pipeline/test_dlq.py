"""Dead letters can be listed, inspected and replayed once the cause is fixed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import orjson

from event_spine.backends import StoreFactory
from event_spine.dlq import read_dead_letters, replay_dead_letters, replay_ledger_for
from event_spine.schemas.routes import BackendType
from event_spine.services import EventStreamService
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
    wait_routed,
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
        await wait_routed(worker, late)
        first = f"{letters[0].partition}:{letters[0].offset}"
        replay_cli = [
            *listed.args[:4],
            "replay",
            *listed.args[5:],
            "--registry",
            f"sqlite:{tmp_path / 'registry.db'}",
        ]
        # Exactly one letter by position (as the console's *Replay selected*) ...
        one = subprocess.run(
            [*replay_cli, "--letter", first],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (one.returncode, one.stdout.strip()) == (0, "replayed 1"), one.stderr
        # ... then every letter of the reason: the ledger skips the one already sent.
        ledger = replay_ledger_for(BackendType.SQLITE, {"path": str(tmp_path / "registry.db")})
        await ledger.open()
        try:
            report = await replay_dead_letters(
                broker.bootstrap_servers,
                f"{topic}.dlq",
                ledger,
                by="test",
                reason="route_missing",
            )
        finally:
            await ledger.close()
        assert report.replayed == [x.position for x in letters[1:]]
        assert list(report.already) == [letters[0].position]
        assert report.already[letters[0].position].by == "cli"
        service = EventStreamService(late, registry, StoreFactory())

        async def all_stored() -> bool:
            return [e.event_id for e in await service.list_after("s")] == ids

        await wait_until(all_stored, 30, message="replayed dead letters stored in order")
        # A second run sends nothing; a position the topic lacks is named, exit 1.
        again = subprocess.run(
            [*replay_cli, "--letter", first, "--letter", "0:999999"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 1, again.stderr
        said = " ".join(again.stdout.split())
        assert f"replayed 0; skipped 1 already replayed ({first})" in said
        assert "1 not in the topic (0:999999" in said
        with sqlite3.connect(tmp_path / "registry.db") as db:
            rows = db.execute(
                "SELECT dlq_topic, dlq_partition, dlq_offset, replayed_by FROM spine_dlq_replays"
                " ORDER BY dlq_partition, dlq_offset"
            ).fetchall()
        assert rows == [
            (f"{topic}.dlq", x.partition, x.offset, "cli" if n == 0 else "test")
            for n, x in enumerate(letters)
        ]
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()

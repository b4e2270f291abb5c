"""Through the real broker and a worker: identity per scope, conflicts and durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from event_spine.backends.base import content_digest
from event_spine.dlq import read_dead_letters
from event_spine.schemas import ResourceRoute, new_event_id
from event_spine.schemas.wire import decode_record
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


async def committed(bootstrap: str, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def drain(
    broker: Any, topic: str, registry_db: Path, end: int, dead: dict[str, int], written: int
) -> None:
    """Run a worker until it dead-lettered and wrote these counts and committed ``end``."""
    settings = sink_settings(broker.bootstrap_servers, topic, registry_db)
    worker = await started_worker(settings)

    async def all_committed() -> bool:
        return await committed(broker.bootstrap_servers, topic, settings.group_id) == end

    try:
        await wait_until(lambda: worker.stats.dead_lettered == dead, 30, message=str(dead))
        await wait_until(lambda: worker.stats.written == written, 30, message="written")
        await wait_until(all_committed, 30, message="offsets committed past the dead letters")
    finally:
        await worker.stop()


def rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(sql, args).fetchall()
    conn.close()
    return found


async def test_one_id_in_two_scopes_is_two_events_and_a_changed_repeat_is_dead_lettered(
    broker, tmp_path
) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    acme, globex = ctx("t_acme"), ctx("t_globex")
    db = tmp_path / "shared.db"  # both tenants routed to one file
    await route_to_sqlite(registry, acme, db)
    await route_to_sqlite(registry, globex, db)
    producer = producer_for(broker.bootstrap_servers, topic)
    shared = new_event_id()
    producer.emit_event(acme, "e", "s", {"n": 1}, event_id=shared)
    producer.emit_event(globex, "e", "s", {"n": 1}, event_id=shared)  # another scope
    producer.emit_event(acme, "e", "s", {"n": 1}, {"request_id": "retry"}, event_id=shared)
    producer.emit_event(acme, "e", "s", {"n": 2}, event_id=shared)  # same id, new content
    other = producer.emit_event(acme, "e", "s", {"n": 3})
    assert producer.flush(30)
    producer.close()
    await registry.store.close()
    await drain(broker, topic, tmp_path / "registry.db", 5, {"event_id_conflict": 1}, 3)
    stored = rows(db, "SELECT tenant_id, event_id, body FROM spine_events ORDER BY position")
    assert [(t, i) for t, i, _ in stored] == [
        ("t_acme", shared),
        ("t_globex", shared),
        ("t_acme", other),
    ]
    assert decode_record(stored[0][2]).payload == {"n": 1}  # the first content is kept
    assert rows(db, "SELECT tenant_id, position FROM spine_cursors ORDER BY tenant_id") == [
        ("t_acme", 4),
        ("t_globex", 1),
    ]
    (letter,) = await read_dead_letters(broker.bootstrap_servers, f"{topic}.dlq")
    assert letter.reason == "event_id_conflict"
    refused = decode_record(letter.value)
    assert (refused.event_id, refused.payload) == (shared, {"n": 2})
    assert letter.headers["spine-dlq-stored-digest"] == content_digest(decode_record(stored[0][2]))
    assert letter.headers["spine-dlq-event-digest"] == content_digest(refused)
    assert letter.headers["spine-dlq-offset"] == "3"


async def test_a_route_to_a_non_durable_backend_is_dead_lettered_not_stored(
    broker, tmp_path
) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    saas, lab = ctx("t_prod", mode="saas"), ctx("t_lab")
    # Written straight into the registry store, as an older release let it through.
    memory = ResourceRoute.for_scope(saas, "event_spine", "memory", {})
    await registry.store.save(memory, 0)
    await route_to_sqlite(registry, lab, tmp_path / "lab.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    for n in range(3):
        producer.emit_event(saas, "e", "s", {"n": n})
    kept = producer.emit_event(lab, "e", "s", {"n": 9})
    assert producer.flush(30)
    producer.close()
    await registry.store.close()
    await drain(broker, topic, tmp_path / "registry.db", 4, {"route_not_durable": 3}, 1)
    assert rows(tmp_path / "lab.db", "SELECT event_id FROM spine_events") == [(kept,)]
    letters = await read_dead_letters(broker.bootstrap_servers, f"{topic}.dlq")
    assert [letter.reason for letter in letters] == ["route_not_durable"] * 3
    assert all("not durable" in letter.headers["spine-dlq-message"] for letter in letters)

"""`read_dead_letters` with a limit reads only what it returns (a DLQ can be huge)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from event_spine.dlq import read_dead_letters
from event_spine.dlq import scan as scan_module
from event_spine.pipeline.dead_letters import REASON
from support.pipeline import new_topic

PER_PARTITION = 40


async def _fill(bootstrap: str, topic: str) -> None:
    """Letters at offsets 0..39 of partitions 0 and 1; every third has reason `b`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition in (0, 1):
            for n in range(PER_PARTITION):
                reason = b"b" if n % 3 == 0 else b"a"
                await producer.send_and_wait(
                    topic,
                    f"{partition}:{n}".encode(),
                    partition=partition,
                    headers=[(REASON, reason)],
                )
    finally:
        await producer.stop()


async def test_a_limited_read_stops_at_its_limit(broker, monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=2)
    await _fill(bootstrap, topic)
    everything = await read_dead_letters(bootstrap, topic)
    assert [x.position for x in everything] == [
        (p, o) for p in (0, 1) for o in range(PER_PARTITION)
    ]

    decoded: list[Any] = []
    real_batches = scan_module.letter_batches

    async def counting(*args: Any, **kw: Any) -> Any:
        async for batch in real_batches(*args, **kw):
            decoded.extend(batch)
            yield batch

    monkeypatch.setattr(scan_module, "letter_batches", counting)
    first = await read_dead_letters(bootstrap, topic, limit=5)
    assert first == everything[:5]
    assert {x.position[0] for x in decoded} == {0}  # partition 1 never read
    assert len(decoded) <= PER_PARTITION

    of_b = await read_dead_letters(bootstrap, topic, reason="b", limit=16)
    assert of_b == [x for x in everything if x.reason == "b"][:16]
    assert [x.position for x in of_b][-2:] == [(1, 0), (1, 3)]  # crosses into partition 1

    assert await read_dead_letters(bootstrap, topic, limit=500) == everything

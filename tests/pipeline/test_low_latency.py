"""The low_latency profile delivers: emit -> broker -> worker -> SQLite, every event once.

No timing assertion (the latency is measured by `spine bench e2e`): the worker and the
producer run with the profile's own values (no test overrides of the waits), and the
events are counted in the store.
"""

from __future__ import annotations

from pathlib import Path

from event_spine.backends import StoreFactory
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.profiles import PRODUCER_PROFILES, SINK_PROFILES
from event_spine.services import EventStreamService
from event_spine.sink_workers import SinkSettings
from support.pipeline import (
    FAST_GROUP,
    ctx,
    new_topic,
    registry_at,
    route_to_sqlite,
    started_worker,
)
from support.waiting import wait_until

EVENTS = 600
STREAMS = [f"live/s{i}" for i in range(3)]


async def _stored(service: EventStreamService) -> int:
    total = 0
    for stream in STREAMS:
        last: str | None = None
        while page := await service.list_after(stream, last, 500):
            total += len(page)
            last = page[-1].event_id
    return total


async def _at_least(service: EventStreamService, count: int) -> bool:
    return await _stored(service) >= count


async def test_low_latency_profile_delivers_every_event(broker, tmp_path: Path) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap)
    registry = await registry_at(tmp_path / "registry.db")
    context = ctx("t_live")
    await route_to_sqlite(registry, context, tmp_path / "live.db")
    # Not support.pipeline's helpers: their test-speed waits would hide the profile's.
    settings = SinkSettings(
        bootstrap_servers=bootstrap,
        topic=topic,
        group_id=f"{topic}-sink",
        registry_backend="sqlite",
        registry_config={"path": str(tmp_path / "registry.db")},
        profile="low_latency",
        session_timeout_ms=FAST_GROUP["session_timeout_ms"],
        heartbeat_interval_ms=FAST_GROUP["heartbeat_interval_ms"],
    )
    for name, value in SINK_PROFILES["low_latency"].items():
        assert getattr(settings, name) == value
    worker = await started_worker(settings)
    producer = EventSpineProducer(
        ProducerSettings(bootstrap_servers=bootstrap, topic=topic, profile="low_latency")
    )
    stores = StoreFactory()
    service = EventStreamService(context, registry, stores)
    try:
        assert producer.settings.linger_ms == PRODUCER_PROFILES["low_latency"]["linger_ms"]
        # Emitted in small steps while the worker runs: the live path, not one backlog.
        for n in range(EVENTS):
            producer.emit_event(context, "tick", STREAMS[n % len(STREAMS)], {"n": n})
            if n % 100 == 99:
                await wait_until(
                    lambda n=n: _at_least(service, n + 1), 30, message=f"{n + 1} stored"
                )
        await wait_until(lambda: _at_least(service, EVENTS), 30, message="all stored")
        assert await _stored(service) == EVENTS  # each once
        assert worker.stats.duplicates == 0
        assert not worker.stats.dead_lettered
    finally:
        producer.close(5)
        await worker.stop()
        await stores.close()
        await registry.store.close()

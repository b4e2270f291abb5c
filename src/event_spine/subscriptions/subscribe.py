"""subscribe(): catch up from the routed store, then follow the topic live.

The seam, step by step (no gap, no duplicate):

1. Before reading the store, capture per partition the high watermark ``hw[p]``
   and, for every stream to catch up, its cursor (watermark position) ``c[s]``.
2. Catch up: page each stream of ``after`` with list_after, in position order.
3. Live: a group-less consumer assigned to every partition starts at
   ``min(hw[p], c[s] + 1 for the catch-up streams s living in p)``. Every event not
   stored at step 2 has an offset above ``c[s]``, so the consumer reads it.
4. At the seam a live record is skipped when its offset is at or below the last
   position delivered for its stream (the store position IS the Kafka offset), or
   when its event_id was delivered already (a producer retry stores one event at
   two offsets). A stream not named in ``after`` is live only: from ``hw[p]`` on.

A caller that resumes after an event it got live, before the sink stored it, passes
that event's position in ``positions`` too: the store does not know the id yet, so
the catch-up reads the stream after that position (nothing when the stream's
watermark is below it) and the live phase skips everything up to it.

Only the caller's scope is delivered, whatever the filter says: a record of
another tenant (or env, mode, project) is dropped before the filter runs. Live
records are delivered as soon as the broker has them, before the sink stores them;
records the sink would dead-letter (undecodable, wrong key) are skipped.

Each subscriber reads the topic on its own (no consumer group), so any number of
subscribers and the sink group each get every event independently. That costs one
consumer (and its fetched records) per subscriber: a server with many followers uses
the shared readers of ``LiveHub`` (hub.py) with the same catch-up (catchup.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Collection, Mapping
from dataclasses import dataclass

from event_spine.backends.factory import StoreFactory
from event_spine.kafka.clients import make_consumer
from event_spine.kafka.keys import partition_of
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.watermarks import assign_all, high_watermarks
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.wire import StoredEvent
from event_spine.services.event_stream import EventStreamService
from event_spine.subscriptions.catchup import RecentIds, Resume, Seam, catch_up
from event_spine.subscriptions.filters import SubscriptionFilter

__all__ = ["RecentIds", "SubscribeOptions", "subscribe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """Tuning knobs of a subscription (defaults suit most callers)."""

    page_size: int = 500
    poll_timeout_ms: int = 200
    fetch_max_wait_ms: int = 100
    #: How many recent event ids are remembered for the by-id dedupe.
    dedupe_window: int = 100_000
    metadata_timeout_s: float = 10.0


async def subscribe(
    ctx: RequestContext,
    event_filter: SubscriptionFilter,
    *,
    registry: RoutingRegistry,
    stores: StoreFactory,
    kafka: KafkaTarget,
    topic: str = "spine.events",
    after: Mapping[str, str | None] | None = None,
    options: SubscribeOptions | None = None,
    positions: Mapping[str, int] | None = None,
    streams: Collection[str] | None = None,
) -> AsyncGenerator[StoredEvent, None]:
    """Events of the caller's scope matching ``event_filter``: stored ones, then live.

    ``after`` maps each stream to catch up to the last event_id the caller has seen
    (None: the stream from its start); other streams are delivered from now on. An
    id the stream does not hold raises UnknownCursor, unless ``positions`` gives the
    position the caller saw it at (a live event not stored yet). ``streams``: read
    only the partitions these streams live in (a one-stream follower reads one
    partition, not all; other streams of those partitions may still pass the
    filter). Runs until the caller stops:
    use ``contextlib.aclosing(subscribe(...))`` so the consumer closes at once.
    ``kafka``: the KafkaSettings, or bootstrap servers (security from SPINE_KAFKA_*).
    """
    opts = options or SubscribeOptions()
    after = dict(after or {})
    service = EventStreamService(ctx, registry, stores)
    settings = as_kafka(kafka)
    await wait_for_kafka(settings, "subscribe")
    consumer = make_consumer(
        settings,
        client_id=settings.client_id_for("spine-subscribe"),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=opts.fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic, opts.metadata_timeout_s)
        partition_count = len(tps)
        if streams is not None:
            wanted = {partition_of(ctx.tenant_id, s, partition_count) for s in streams}
            tps = [tp for tp in tps if tp.partition in wanted]
            consumer.assign(tps)
        # ListOffsets' answer is a lower bound of the end (exact on Kafka): fetching
        # from there reads little before the high watermark comes back.
        estimates = await consumer.end_offsets(tps)
        highs = await high_watermarks(consumer, estimates, opts.metadata_timeout_s)
        hw = {tp.partition: offset for tp, offset in highs.items()}
        start = await _start_offsets(ctx, service, after, hw, partition_count)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        seam = Seam(ctx, event_filter, hw, RecentIds(opts.dedupe_window))
        seen_at = dict(positions or {})
        for stream_id, last_seen in after.items():
            resume = Resume(stream_id, last_seen, seen_at.get(stream_id))
            async for event in catch_up(service, resume, seam, opts.page_size):
                yield event
        while True:
            batch = await consumer.getmany(timeout_ms=opts.poll_timeout_ms)
            for tp, records in batch.items():
                for rec in records:
                    live = seam.accept_live(tp.partition, rec.offset, rec.key, rec.value)
                    if live is not None:
                        yield live
    finally:
        await consumer.stop()


async def _start_offsets(
    ctx: RequestContext,
    service: EventStreamService,
    after: Mapping[str, str | None],
    hw: dict[int, int],
    partition_count: int,
) -> dict[int, int]:
    """Where the live consumer starts per partition (captured before the catch-up)."""
    start = dict(hw)
    for stream_id in after:
        cursor = await service.cursor(stream_id)
        first_unstored = cursor.position + 1 if cursor is not None else 0
        partition = partition_of(ctx.tenant_id, stream_id, partition_count)
        if partition in start:
            start[partition] = min(start[partition], first_unstored)
    return start

"""Read a dead-letter topic without a consumer group: every letter, or exactly some.

The partitions are assigned (no group: nothing is committed, nothing is hidden from a
later read) and read up to the high watermark one fetch response gave at the start,
so a read ends even while letters keep arriving (``end_offsets`` is wrong on the local
broker: see kafka.watermarks). Reading exactly some letters seeks to each wanted
offset in turn, so letters between two wanted ones far apart are not fetched.
A wanted offset the partition does not hold (past the high watermark, deleted by
retention, a gap of compaction or transaction markers) is simply never yielded:
the caller names it missing.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from event_spine.dlq.records import DeadLetterRecord, Position, as_record
from event_spine.errors import BrokerUnavailable
from event_spine.kafka.clients import make_consumer
from event_spine.kafka.internals import bootstrap_servers_of
from event_spine.kafka.settings import KafkaSettings, KafkaTarget, as_kafka
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.watermarks import high_watermarks, topic_partitions

#: Records per fetch round; also the size of the batches a scan yields at most.
BATCH_RECORDS: Final = 500


@dataclass(slots=True)
class _Partition:
    """What to read of one partition: below ``high``, every offset or the wanted ones."""

    tp: TopicPartition
    high: int
    wanted: list[int] | None  # sorted; None: every offset

    def next_from(self, position: int) -> int | None:
        """The next offset to read at or after ``position``; None when done."""
        if position >= self.high:
            return None
        if self.wanted is None:
            return position
        i = bisect.bisect_left(self.wanted, position)
        if i == len(self.wanted) or self.wanted[i] >= self.high:
            return None
        return self.wanted[i]

    def wants(self, offset: int) -> bool:
        """True for an offset this read returns."""
        if offset >= self.high:
            return False
        if self.wanted is None:
            return True
        i = bisect.bisect_left(self.wanted, offset)
        return i < len(self.wanted) and self.wanted[i] == offset


def dlq_consumer(settings: KafkaSettings, client: str) -> AIOKafkaConsumer:
    """A group-less consumer for reading a dead-letter topic (started by the caller)."""
    return make_consumer(
        settings,
        client_id=settings.client_id_for(client),
        enable_auto_commit=False,
        # A wanted offset retention already deleted: go on from the log start (the
        # letter is then reported missing), never from the end.
        auto_offset_reset="earliest",
    )


@asynccontextmanager
async def opened_dlq_consumer(kafka: KafkaTarget) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less DLQ consumer, once the broker answered; stopped on exit."""
    settings = as_kafka(kafka)
    await wait_for_kafka(settings, "dlq")
    consumer = dlq_consumer(settings, "spine-dlq")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def letter_batches(
    consumer: AIOKafkaConsumer,
    topic: str,
    positions: Collection[Position] | None,
    timeout_s: float,
    *,
    partitions: Collection[int] | None = None,
) -> AsyncGenerator[list[DeadLetterRecord], None]:
    """Batches of dead letters: every one up to the high watermark (``positions``
    None; of ``partitions`` only, when given), or exactly those at ``positions`` that
    the topic holds."""
    known = set(await topic_partitions(consumer, topic, timeout_s))
    if positions is None:
        chosen = known if partitions is None else known & set(partitions)
        wanted: dict[int, list[int] | None] = dict.fromkeys(sorted(chosen))
    else:
        by_partition: dict[int, set[int]] = {}
        for partition, offset in positions:
            if partition in known:
                by_partition.setdefault(partition, set()).add(offset)
        wanted = {p: sorted(offsets) for p, offsets in sorted(by_partition.items())}
    if not wanted:
        return
    tps = [TopicPartition(topic, p) for p in wanted]
    consumer.assign(tps)
    starts = {tp: (w[0] if (w := wanted[tp.partition]) else None) for tp in tps}
    highs = await high_watermarks(consumer, starts, timeout_s)
    active: dict[TopicPartition, _Partition] = {}
    for tp in tps:
        part = _Partition(tp, highs[tp], wanted[tp.partition])
        if part.wanted is None:
            await consumer.seek_to_beginning(tp)
            active[tp] = part
        elif (first := part.next_from(0)) is not None:
            consumer.seek(tp, first)
            active[tp] = part
    consumer.pause(*(tp for tp in tps if tp not in active))
    async for batch in _read(consumer, active, timeout_s):
        yield batch


async def _read(
    consumer: AIOKafkaConsumer, active: dict[TopicPartition, _Partition], timeout_s: float
) -> AsyncIterator[list[DeadLetterRecord]]:
    idle_until = time.monotonic() + timeout_s
    while active:
        fetched = await consumer.getmany(*active, timeout_ms=200, max_records=BATCH_RECORDS)
        out = [
            as_record(r)
            for tp, records in fetched.items()
            if (part := active.get(tp)) is not None
            for r in records
            if part.wants(r.offset)
        ]
        if fetched:
            idle_until = time.monotonic() + timeout_s
        for tp, part in list(active.items()):
            position = await consumer.position(tp)
            following = part.next_from(position)
            if following is None:
                del active[tp]
                consumer.pause(tp)
            elif following > position:
                consumer.seek(tp, following)
        if out:
            yield out
        if active and time.monotonic() > idle_until:
            parts = sorted(tp.partition for tp in active)
            raise BrokerUnavailable(
                f"No records of partitions {parts} of topic {next(iter(active)).topic!r} "
                f"from {bootstrap_servers_of(consumer)} for {timeout_s}s, below their high "
                f"watermarks: is the broker reachable?"
            )


async def read_dead_letters(
    kafka: KafkaTarget,
    dlq_topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> list[DeadLetterRecord]:
    """Every dead letter up to the current end (optionally of one reason), in
    (partition, offset) order; the first ``limit`` of them.

    With a ``limit`` the partitions are read one after the other and the read stops
    once ``limit`` letters matched: `spine dlq list` reads a few hundred records of a
    DLQ of millions, not all of it into memory.

    ``kafka``: the KafkaSettings, or bootstrap servers (security from SPINE_KAFKA_*).
    """
    if limit is None:
        found = await read_letters(kafka, dlq_topic, None, timeout_s=timeout_s)
        return [r for r in found if reason is None or r.reason == reason]
    taken: list[DeadLetterRecord] = []
    async with opened_dlq_consumer(kafka) as consumer:
        for partition in sorted(await topic_partitions(consumer, dlq_topic, timeout_s)):
            batches = letter_batches(consumer, dlq_topic, None, timeout_s, partitions=[partition])
            async with aclosing(batches):
                async for batch in batches:  # one partition: in offset order
                    taken += (r for r in batch if reason is None or r.reason == reason)
                    if len(taken) >= limit:
                        return taken[:limit]
    return taken


async def read_letters(
    kafka: KafkaTarget,
    dlq_topic: str,
    positions: Collection[Position] | None,
    *,
    timeout_s: float = 10.0,
) -> list[DeadLetterRecord]:
    """The dead letters at ``positions`` the topic holds (None: every one), in
    (partition, offset) order. A position not returned is not in the topic."""
    out: list[DeadLetterRecord] = []
    async with opened_dlq_consumer(kafka) as consumer:
        async for batch in letter_batches(consumer, dlq_topic, positions, timeout_s):
            out.extend(batch)
    out.sort(key=lambda r: r.position)
    return out

"""Group-less partition bookkeeping: assign every partition, read high watermarks.

Used by the lag probe, the replay reader, subscriptions and cutover. One failure
behaviour for all of them: a topic the broker does not know within ``timeout_s``
raises ``TopicNotFound`` (a ConfigurationError: create the topic or fix its name);
a partition whose high watermark no fetch response brought within ``timeout_s``
raises ``BrokerUnavailable`` (retriable), naming the topic, the partitions and
the bootstrap servers. Nothing is guessed: no partial answer is returned.

Why high watermarks come from fetch responses: the local broker (Tansu) answers
ListOffsets (``end_offsets``, ``seek_to_end``) with the base offset of the last
record batch after batched produces, while every fetch response carries the true
high watermark. This works against real Kafka as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from event_spine.errors import BrokerUnavailable, TopicNotFound
from event_spine.kafka.internals import bootstrap_servers_of, refresh_metadata

_RETRY_S = 0.1


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, timeout_s: float) -> list[int]:
    """The partition ids of ``topic``, refreshing metadata until known (TopicNotFound)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(KafkaError, OSError):  # no answer now: the deadline decides
            await refresh_metadata(consumer)
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if time.monotonic() >= deadline:
            raise TopicNotFound(topic, bootstrap_servers_of(consumer), timeout_s)
        await asyncio.sleep(_RETRY_S)


async def assign_all(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a started consumer (no group)."""
    tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic, timeout_s)]
    consumer.assign(tps)
    return tps


async def high_watermarks(
    consumer: AIOKafkaConsumer,
    start_at: Mapping[TopicPartition, int | None],
    timeout_s: float,
    fetch_max_wait_ms: int = 100,
) -> dict[TopicPartition, int]:
    """The high watermark (next offset) of each partition, read from fetch responses.

    Each partition is fetched from ``start_at`` (None: its beginning); choose an
    offset at or just below the end to fetch little. The fetched records are
    discarded: callers seek every partition again afterwards. The partitions must be
    assigned; positions are left wherever the fetch moved them.
    """
    tps = list(start_at)
    for tp, offset in start_at.items():
        if offset is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)
    deadline = time.monotonic() + timeout_s
    highs: dict[TopicPartition, int] = {}
    while True:
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None:
                highs.setdefault(tp, int(high))
        if len(highs) == len(tps):
            return highs
        if time.monotonic() >= deadline:
            missing = sorted(tp.partition for tp in tps if tp not in highs)
            raise BrokerUnavailable(
                f"No fetch response for partitions {missing} of topic {tps[0].topic!r} "
                f"from {bootstrap_servers_of(consumer)} within {timeout_s}s: is the broker "
                f"reachable?"
            )
        await consumer.getmany(*tps, timeout_ms=fetch_max_wait_ms, max_records=len(tps))

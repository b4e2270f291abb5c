"""Partition bookkeeping for group-less consumers: assignment, high watermarks, keys.

Why high watermarks come from fetch responses: the local broker (Tansu) answers
ListOffsets (``end_offsets``, ``seek_to_end``) with a stale offset after batched
produces, while every fetch response carries the true high watermark. This works
against real Kafka as well.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from event_spine.errors import ConfigurationError
from event_spine.producers.producer import kafka_key

_PARTITIONER: Final = DefaultPartitioner()


def partition_of(tenant_id: str, stream_id: str, partitions: int) -> int:
    """The partition a stream lives in: what the producer's default partitioner picks
    for the key ``<tenant_id>:<stream_id>`` (murmur2, like the Java client)."""
    ids = list(range(partitions))
    return int(_PARTITIONER(kafka_key(tenant_id, stream_id), ids, ids))


async def assign_all(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` (no group); ConfigurationError if unknown."""
    deadline = time.monotonic() + timeout_s
    while True:
        # aiokafka has no public metadata refresh; a new topic may not be known yet.
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            break
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"Topic {topic!r} is unknown to the broker: create it (ensure_topic) or "
                f"check `topic`."
            )
        await asyncio.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


async def capture_high_watermarks(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> dict[int, int]:
    """The next offset of every assigned partition right now (fetched, not listed).

    Seeks to ListOffsets' answer first (a lower bound), so little is fetched; what is
    fetched is discarded by the caller's next seek.
    """
    estimates = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, estimates[tp])
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in tps):
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"No fetch response for {tps[0].topic!r} within {timeout_s}s: is the "
                f"broker reachable?"
            )
        await consumer.getmany(*tps, timeout_ms=50)
    return {tp.partition: int(consumer.highwater(tp)) for tp in tps}

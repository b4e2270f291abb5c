"""Consumer lag per partition: high watermark minus the group's committed offset.

The high watermark comes from a fetch response, not from ListOffsets: on the local
broker ``end_offsets`` returns the base offset of the last record batch, not the end.
A paused worker fetches nothing, so the probe uses its own group-less consumer,
which reads the group's committed offsets without joining the group.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Lag of one partition."""

    partition: int
    committed: int
    high_watermark: int

    @property
    def lag(self) -> int:
        """Records produced but not yet committed by the group."""
        return max(self.high_watermark - self.committed, 0)


class LagProbe:
    """Measures a group's lag on one topic; results cached for ``max_age_s``."""

    def __init__(
        self, bootstrap_servers: str, topic: str, group_id: str, max_age_s: float = 2.0
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group_id = group_id
        self.max_age_s = max_age_s
        self._consumer: AIOKafkaConsumer | None = None
        self._cached: dict[int, PartitionLag] = {}
        self._measured_at = 0.0
        self._lock = asyncio.Lock()

    async def measure(self) -> dict[int, PartitionLag]:
        """Lag per partition (every partition of the topic)."""
        async with self._lock:
            if time.monotonic() - self._measured_at < self.max_age_s:
                return self._cached
            consumer = await self._started()
            tps = await self._partitions(consumer)
            committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
            highs = await self._high_watermarks(consumer, committed)
            self._cached = {
                tp.partition: PartitionLag(
                    tp.partition, committed[tp], highs.get(tp, committed[tp])
                )
                for tp in tps
            }
            self._measured_at = time.monotonic()
            return self._cached

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,  # only to read its committed offsets: never joins
                enable_auto_commit=False,
                max_partition_fetch_bytes=1024,
                fetch_max_wait_ms=50,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if set(tps) != consumer.assignment():
            consumer.assign(tps)
        return tps

    async def _high_watermarks(
        self, consumer: AIOKafkaConsumer, committed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        # Fetch from just below the committed offset so each partition that has records
        # answers with one, and its response carries the high watermark.
        for tp, offset in committed.items():
            consumer.seek(tp, max(offset - 1, 0))
        await consumer.getmany(timeout_ms=200, max_records=len(committed) or 1)
        return {tp: high for tp in committed if (high := consumer.highwater(tp)) is not None}

    async def close(self) -> None:
        """Stop the probe's consumer."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

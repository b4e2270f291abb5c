"""Consumer lag per partition: high watermark minus the group's committed offset.

The high watermark comes from a fetch response, not from ListOffsets: on the local
broker ``end_offsets`` returns the base offset of the last record batch, not the end.
A paused worker fetches nothing, so the probe uses its own group-less consumer,
which reads the group's committed offsets without joining the group
(``event_spine.kafka.watermarks``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from event_spine.kafka.clients import make_consumer
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.kafka.watermarks import assign_all, high_watermarks


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
    """Measures a group's lag on one topic; results cached for ``max_age_s``.

    A measurement that cannot complete within ``timeout_s`` raises (TopicNotFound,
    BrokerUnavailable: see ``event_spine.kafka.watermarks``); nothing is cached then.
    """

    def __init__(
        self,
        kafka: KafkaTarget,
        topic: str,
        group_id: str,
        max_age_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.kafka = as_kafka(kafka)
        self.topic = topic
        self.group_id = group_id
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
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
            tps = await assign_all(consumer, self.topic, self.timeout_s)
            committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
            # Fetch from just below the committed offset so each partition that has
            # records answers with one, and its response carries the high watermark.
            start_at = {tp: max(offset - 1, 0) for tp, offset in committed.items()}
            highs = await high_watermarks(consumer, start_at, self.timeout_s, 50)
            self._cached = {
                tp.partition: PartitionLag(tp.partition, committed[tp], highs[tp]) for tp in tps
            }
            self._measured_at = time.monotonic()
            return self._cached

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = make_consumer(
                self.kafka,
                client_id=self.kafka.client_id_for(f"{self.group_id}-lag"),
                group_id=self.group_id,  # only to read its committed offsets: never joins
                enable_auto_commit=False,
                max_partition_fetch_bytes=1024,
                fetch_max_wait_ms=50,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        """Stop the probe's consumer."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

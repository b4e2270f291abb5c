"""The sink worker's side of a batch: publish its dead letters, then report it.

``DeadLetterPublisher`` is the sink's ``BatchOwner``: the pipeline calls ``settle``
before it commits (the dead letters must be acked first, or a crash would lose
them) and ``committed`` after.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from event_spine.observability.metrics import SinkMetrics
from event_spine.observability.ratelimit import DeadLetterLog
from event_spine.pipeline.batches import Batch
from event_spine.pipeline.processor import BatchOutcome, BatchRetry

log = logging.getLogger(__name__)


class DeadLetterPublisher:
    """Publishes a batch's dead letters (acks=all) and reports what it did."""

    def __init__(self, topic: str, worker_id: str, metrics: SinkMetrics) -> None:
        self.topic = topic
        self.worker_id = worker_id
        self.metrics = metrics
        #: Set once the worker started its DLQ producer.
        self.producer: AIOKafkaProducer | None = None
        self.log = DeadLetterLog(log)

    async def settle(self, outcome: BatchOutcome) -> None:
        """Send every dead letter and wait for the acks; BatchRetry if Kafka fails."""
        if not outcome.dead_letters:
            return
        assert self.producer is not None
        futures = [
            await self.producer.send(
                self.topic,
                letter.record.value,
                key=letter.record.key,
                headers=letter.headers(self.worker_id),
            )
            for letter in outcome.dead_letters
        ]
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BatchRetry(exc) from exc

    def committed(self, batch: Batch, outcome: BatchOutcome) -> None:
        """One rate-limited line per dead letter; batch size, write latencies, record
        ages once durable."""
        for letter in outcome.dead_letters:
            rec = letter.record
            self.log.parked(letter.reason, rec.topic, rec.partition, rec.offset, str(letter.error))
        self.log.tick()
        self.metrics.batch_size.labels(self.metrics.topic).observe(len(batch.records))
        for backend, seconds in outcome.write_timings:
            self.metrics.write_seconds.labels(backend).observe(seconds)
        self.metrics.record_ages.observe("durable", batch.records)

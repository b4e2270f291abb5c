"""Read a dead-letter topic and replay its records into their source topic.

Reading assigns partitions directly (no consumer group) and stops at the high
watermark seen in fetch responses (``end_offsets`` is wrong on the local broker).
Replay runs in its own consumer group and commits after each re-published batch is
acked, so an interrupted replay resumes without re-sending; a record sent twice
anyway is absorbed by the stores' idempotency on event_id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from event_spine.kafka.clients import make_consumer, make_producer
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.watermarks import assign_all
from event_spine.pipeline import dead_letters as h

REPLAYED_FROM = "spine-dlq-replayed-from"


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead letter with its diagnosis."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes]]

    @property
    def reason(self) -> str:
        """Why it was parked."""
        return self.headers.get(h.REASON, "?")

    @property
    def source(self) -> tuple[str, int, int]:
        """(topic, partition, offset) it came from."""
        return (
            self.headers.get(h.SOURCE_TOPIC, ""),
            int(self.headers.get(h.SOURCE_PARTITION, "-1")),
            int(self.headers.get(h.SOURCE_OFFSET, "-1")),
        )

    def summary(self) -> dict[str, Any]:
        """Where it is, where it came from and why: the fields every rendering shares."""
        topic, partition, offset = self.source
        return {
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "source": {"topic": topic, "partition": partition, "offset": offset},
        }

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The record's own headers, without the DLQ diagnosis."""
        return [
            (k, v) for k, v in self.raw_headers if k not in h.DLQ_HEADERS and k != REPLAYED_FROM
        ]


def _as_record(rec: Any) -> DeadLetterRecord:
    raw = list(rec.headers or ())
    return DeadLetterRecord(rec.partition, rec.offset, rec.key, rec.value, h.header_map(raw), raw)


async def read_dead_letters(
    kafka: KafkaTarget,
    dlq_topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> list[DeadLetterRecord]:
    """Every dead letter up to the current end (optionally of one reason).

    ``kafka``: the KafkaSettings, or bootstrap servers (security from SPINE_KAFKA_*).
    """
    settings = as_kafka(kafka)
    await wait_for_kafka(settings, "dlq")
    consumer = make_consumer(
        settings, client_id=settings.client_id_for("spine-dlq"), enable_auto_commit=False
    )
    await consumer.start()
    out: list[DeadLetterRecord] = []
    try:
        tps = await assign_all(consumer, dlq_topic, timeout_s)
        await consumer.seek_to_beginning(*tps)
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(tps) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend(_as_record(r) for r in records)
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
    finally:
        await consumer.stop()
    out.sort(key=lambda r: (r.partition, r.offset))
    if reason is not None:
        out = [r for r in out if r.reason == reason]
    return out[:limit] if limit is not None else out


async def replay_dead_letters(
    kafka: KafkaTarget,
    dlq_topic: str,
    *,
    group_id: str = "spine-dlq-replay",
    select: Callable[[DeadLetterRecord], bool] = lambda _: True,
    timeout_s: float = 10.0,
) -> tuple[int, int]:
    """Re-publish selected dead letters to their source topic. Returns (replayed, skipped).

    Skipped ones are committed too: a replay run decides once per dead letter.
    """
    settings = as_kafka(kafka)
    client_id = settings.client_id_for("spine-dlq-replay")
    await wait_for_kafka(settings, "dlq replay")
    consumer = make_consumer(
        settings,
        dlq_topic,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    producer = make_producer(
        settings, client_id=client_id, acks="all", max_request_size=8 * 1024 * 1024
    )
    await consumer.start()
    await producer.start()
    replayed = skipped = 0
    try:
        idle_deadline = time.monotonic() + timeout_s
        while time.monotonic() < idle_deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=500)
            if not batch:
                if await _at_end(consumer):
                    break
                continue
            idle_deadline = time.monotonic() + timeout_s
            for records in batch.values():
                sent, passed = await _republish(producer, [_as_record(r) for r in records], select)
                replayed, skipped = replayed + sent, skipped + passed
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed, skipped


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    assigned = consumer.assignment()
    if not assigned:
        return False
    for tp in assigned:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True


async def _republish(
    producer: AIOKafkaProducer,
    letters: list[DeadLetterRecord],
    select: Callable[[DeadLetterRecord], bool],
) -> tuple[int, int]:
    futures = []
    skipped = 0
    for letter in letters:
        topic = letter.source[0]
        if not topic or not select(letter):
            skipped += 1
            continue
        headers = [
            *letter.original_headers(),
            (REPLAYED_FROM, f"{letter.partition}:{letter.offset}".encode()),
        ]
        futures.append(await producer.send(topic, letter.value, key=letter.key, headers=headers))
    await asyncio.gather(*futures)
    return len(futures), skipped

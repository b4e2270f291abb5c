"""Re-publish dead letters to their source topic, each one once per ledger.

One implementation for `spine dlq replay` and the console's *Replay selected*: read
the dead-letter topic without a consumer group (every letter up to the high
watermark, or exactly the selected (partition, offset) positions: dlq.scan), skip
those the replay ledger already holds, re-publish the rest with their original key,
value and headers (plus ``spine-dlq-replayed-from``), and record each batch in the
ledger once Kafka acknowledged it (acks=all).

Resuming: an interrupted replay recorded every batch that was acknowledged, so running
it again re-publishes only the rest. A crash between an acknowledgement and its ledger
row re-publishes that batch once more; the stores absorb the duplicates (idempotent on
event_id). Two replays of the same letters at the same moment may both publish them,
for the same reason harmlessly (the console runs one replay at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from event_spine.dlq.ledger import Replayed, ReplayLedger
from event_spine.dlq.records import REPLAYED_FROM, DeadLetterRecord, Position
from event_spine.dlq.scan import dlq_consumer, letter_batches
from event_spine.kafka.clients import make_producer
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.kafka.startup import wait_for_kafka


def _listed(positions: Collection[Position], most: int = 5) -> str:
    shown = ", ".join(f"{p}:{o}" for p, o in sorted(positions)[:most])
    return shown + (f" and {len(positions) - most} more" if len(positions) > most else "")


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What one replay did with each letter it was asked for."""

    #: Re-published now (and recorded in the ledger).
    replayed: list[Position] = field(default_factory=list)
    #: Skipped: the ledger says they were replayed before (when, by whom).
    already: dict[Position, Replayed] = field(default_factory=dict)
    #: Asked for by position, but not in the topic (past its end, or deleted by retention).
    missing: list[Position] = field(default_factory=list)
    #: Without a source topic header: nowhere to replay them to.
    no_source: list[Position] = field(default_factory=list)

    def describe(self) -> str:
        """One line, e.g. ``replayed 2; skipped 1 already replayed (0:3)``."""
        parts = [f"replayed {len(self.replayed)}"]
        if self.already:
            parts.append(f"skipped {len(self.already)} already replayed ({_listed(self.already)})")
        if self.no_source:
            parts.append(f"skipped {len(self.no_source)} without a source topic header")
        if self.missing:
            parts.append(
                f"{len(self.missing)} not in the topic ({_listed(self.missing)}: past its end "
                f"or deleted by retention)"
            )
        return "; ".join(parts)


async def replay_dead_letters(
    kafka: KafkaTarget,
    dlq_topic: str,
    ledger: ReplayLedger,
    *,
    by: str,
    positions: Collection[Position] | None = None,
    reason: str | None = None,
    timeout_s: float = 10.0,
) -> ReplayReport:
    """Re-publish the dead letters at ``positions`` (None: every one up to the current
    end), of ``reason`` when given, that ``ledger`` does not hold; record them as
    replayed by ``by``. ``ledger`` must be open."""
    settings = as_kafka(kafka)
    await wait_for_kafka(settings, "dlq replay")
    report = ReplayReport()
    seen: set[Position] = set()
    async with AsyncExitStack() as stack:
        consumer = dlq_consumer(settings, "spine-dlq-replay")
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        producer = make_producer(
            settings,
            client_id=settings.client_id_for("spine-dlq-replay"),
            acks="all",
            max_request_size=8 * 1024 * 1024,
        )
        await producer.start()
        stack.push_async_callback(producer.stop)
        async for batch in letter_batches(consumer, dlq_topic, positions, timeout_s):
            if positions is not None:
                seen.update(r.position for r in batch)
            chosen = [r for r in batch if reason is None or r.reason == reason]
            await _replay_batch(producer, dlq_topic, ledger, by, chosen, report)
    if positions is not None:
        report.missing.extend(sorted(set(positions) - seen))
    return report


async def _replay_batch(
    producer: AIOKafkaProducer,
    dlq_topic: str,
    ledger: ReplayLedger,
    by: str,
    letters: list[DeadLetterRecord],
    report: ReplayReport,
) -> None:
    done = await ledger.replayed(dlq_topic, [r.position for r in letters])
    report.already.update(done)
    todo = [r for r in letters if r.position not in done]
    report.no_source.extend(r.position for r in todo if not r.source[0])
    sendable = [r for r in todo if r.source[0]]
    await _republish(producer, sendable)
    now = datetime.now(UTC)
    await ledger.record(dlq_topic, [Replayed(*r.position, now, by) for r in sendable])
    report.replayed.extend(r.position for r in sendable)


async def _republish(producer: AIOKafkaProducer, letters: list[DeadLetterRecord]) -> None:
    """Send each letter to its source topic; return once Kafka acknowledged them all."""
    futures = []
    for letter in letters:
        headers = [
            *letter.original_headers(),
            (REPLAYED_FROM, f"{letter.partition}:{letter.offset}".encode()),
        ]
        futures.append(
            await producer.send(letter.source[0], letter.value, key=letter.key, headers=headers)
        )
    await asyncio.gather(*futures)

"""The commit policy: which offsets a batch commits, and when. One place for it.

The rules (docs/design.md, "The batch pipeline"):

1. A batch commits, per partition, the position after it: ``max offset + 1`` of
   its records (``batch_ends``). A replay passes the reader's positions instead,
   which also step over offsets that hold no record (filtered, control batches).
2. Only once the batch is durable: written, its dead letters acked, and every
   earlier batch committed (``BatchPipeline`` runs the commits in batch order).
3. A held partition commits up to its first held event only; a later batch of it
   fetched before its rewind is stale and dropped (``stale``); no rewind moves it
   past the held event.
4. Only partitions the consumer still owns: a revoked partition's next owner
   starts from the last commit (Vector's bug #10434 committed for partitions it no
   longer owned).
5. A failed commit is counted and logged, never retried: the batch is durable, so
   a redelivery is absorbed by the idempotent writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from event_spine.kafka.records import RawRecord
from event_spine.pipeline.status import PipelineStats

log = logging.getLogger(__name__)

#: (topic, partition): equal to, and hashed like, aiokafka's TopicPartition.
PartitionKey = tuple[str, int]


class PartitionConsumer(Protocol):
    """What the pipeline needs of a Kafka consumer (aiokafka's AIOKafkaConsumer has it,
    so does the replay's TopicReader)."""

    def assignment(self) -> Set[TopicPartition]:
        """The partitions owned right now."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions``."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (each: the next offset to read)."""


def batch_ends(records: Sequence[RawRecord]) -> dict[PartitionKey, int]:
    """``max offset + 1`` per partition (records of a partition come in offset order)."""
    ends: dict[PartitionKey, int] = {}
    for rec in records:
        ends[(rec.topic, rec.partition)] = rec.offset + 1
    return ends


def batch_starts(records: Sequence[RawRecord]) -> dict[PartitionKey, int]:
    """The lowest offset per partition: where to read a rewound batch again from."""
    starts: dict[PartitionKey, int] = {}
    for rec in records:
        key = (rec.topic, rec.partition)
        starts[key] = min(starts.get(key, rec.offset), rec.offset)
    return starts


@dataclass(frozen=True, slots=True)
class HeldMark:
    """A partition held from ``offset`` on (an unrouted event, a store to migrate)."""

    #: Its first held event: read again from here, never committed past.
    offset: int
    #: The last offset of the batch that held it: a later batch whose records of this
    #: partition start above it was fetched before the rewind (stale).
    last: int


class CommitUnit:
    """Per-partition offsets of one consumer: what a durable batch commits, where a
    failed one is read again from, and which partitions are held."""

    def __init__(self, stats: PipelineStats, consumer: PartitionConsumer | None = None) -> None:
        self.stats = stats
        #: Bound late by a sink worker: its consumer exists once the broker started.
        self.consumer = consumer
        self.held: dict[PartitionKey, HeldMark] = {}

    def owned(self) -> Set[TopicPartition]:
        """The partitions the consumer owns (none before it is bound)."""
        return self.consumer.assignment() if self.consumer is not None else set()

    def to_commit(
        self, ends: Mapping[PartitionKey, int], held: Mapping[PartitionKey, int] | None = None
    ) -> dict[TopicPartition, int]:
        """The offsets a durable batch commits: its ends, a held partition only up to its
        first held event, and only partitions still owned."""
        merged = {**ends, **(held or {})}
        owned = self.owned()
        return {
            tp: end
            for (topic, part), end in merged.items()
            if (tp := TopicPartition(topic, part)) in owned
        }

    async def commit(
        self, ends: Mapping[PartitionKey, int], held: Mapping[PartitionKey, int] | None = None
    ) -> bool:
        """Commit what a durable batch covers (``to_commit``); False if the broker
        refused (counted, logged: a redelivery is absorbed)."""
        offsets = self.to_commit(ends, held)
        if not offsets:
            return True
        assert self.consumer is not None  # owned() is empty without one
        try:
            await self.consumer.commit(offsets)
        except (KafkaError, ConsumerStoppedError) as exc:
            # Lost the partitions meanwhile (or stopping): the next owner rewrites
            # idempotently from the last commit.
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%r); redelivery will be absorbed", exc)
            return False
        self.stats.commits += 1
        for tp, offset in offsets.items():
            self.stats.committed[(tp.topic, tp.partition)] = offset
        return True

    def rewind(self, starts: Mapping[PartitionKey, int]) -> set[TopicPartition]:
        """Seek each owned partition back to its start (never past a held event);
        returns the partitions moved."""
        consumer = self.consumer
        if consumer is None:
            return set()
        owned = consumer.assignment()
        moved: set[TopicPartition] = set()
        for key, offset in starts.items():
            tp = TopicPartition(*key)
            if tp not in owned:
                continue
            mark = self.held.get(key)
            consumer.seek(tp, offset if mark is None else min(offset, mark.offset))
            moved.add(tp)
        return moved

    def hold(self, records: Sequence[RawRecord], held: Mapping[PartitionKey, int]) -> None:
        """Remember the partitions a durable batch held, from their first held event."""
        last = {(rec.topic, rec.partition): rec.offset for rec in records}
        for key, offset in held.items():
            self.held[key] = HeldMark(offset, last[key])

    def stale(self, records: Sequence[RawRecord]) -> set[PartitionKey]:
        """Held partitions whose records here were fetched before their rewind.

        A partition read again from its held offset is no longer held here: its
        mark is dropped (what happens to it now is the new batch's outcome).
        """
        if not self.held:
            return set()
        first: dict[PartitionKey, int] = {}
        for rec in records:
            first.setdefault((rec.topic, rec.partition), rec.offset)
        stale: set[PartitionKey] = set()
        for key, start in first.items():
            mark = self.held.get(key)
            if mark is None:
                continue
            if start > mark.last:
                stale.add(key)
            else:
                del self.held[key]
        return stale

    def forget_held(self) -> None:
        """After a revoke: the next owner restarts from the committed offsets."""
        self.held.clear()

"""Bounded reads of a topic: start positions, the end captured at open, positions.

One AIOKafkaConsumer with manual assignment of every partition: no group membership,
so no join delay and no rebalance in a bounded job, and the live sink group is never
touched. With a ``group_id`` the reader commits its positions there (offsets only).

Why the end comes from a fetch response: on the local broker (Tansu) ``end_offsets``
and ``seek_to_end`` return the base offset of the last record batch, not the high
watermark (docs/operations.md, "The local broker (Tansu) versus real Kafka"). The
high watermark a fetch response carries is right, so ``open()`` fetches once per
partition and reads ``consumer.highwater`` (``event_spine.kafka.watermarks``: a
missing topic raises TopicNotFound, no fetch response within ``open_timeout_s``
BrokerUnavailable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from event_spine.closing import AsyncClosing
from event_spine.errors import ConfigurationError
from event_spine.kafka.clients import make_consumer
from event_spine.kafka.records import RawRecord
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.watermarks import high_watermarks, topic_partitions

StartKind = Literal["resume", "beginning", "offsets", "time"]

#: Records per batch. Measured replaying 200k events into SQLite: 1,000 -> 71k/s,
#: 2,048 -> 72k/s, 3,000 -> 66k/s, 5,000 -> 58k/s (one SQLite statement holds up
#: to 2,048 rows, and smaller batches overlap decode and write more finely).
DEFAULT_MAX_RECORDS: Final = 2_000


@dataclass(frozen=True, slots=True)
class StartFrom:
    """Where each partition's replay starts.

    - ``resume``: the group's committed offsets, on the partitions it committed (a
      replay commits every partition it covers as it starts); with nothing committed
      (a first run), every partition from the beginning.
    - ``beginning``: the log start of every partition.
    - ``offsets``: the given offset of each listed partition; unlisted ones are skipped.
    - ``time``: the first offset at or after the time (coarse on Tansu: broker receive
      time); a partition with nothing after it starts at its end.
    """

    kind: StartKind = "resume"
    offsets: Mapping[int, int] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @classmethod
    def resume(cls) -> StartFrom:
        """Continue from the group's committed offsets."""
        return cls("resume")

    @classmethod
    def beginning(cls) -> StartFrom:
        """Everything the topic still holds."""
        return cls("beginning")

    @classmethod
    def at_offsets(cls, offsets: Mapping[int, int]) -> StartFrom:
        """Explicit offsets per partition (only these partitions are read)."""
        if not offsets:
            raise ConfigurationError("`offsets` must name at least one partition")
        return cls("offsets", dict(offsets))

    @classmethod
    def at_time(cls, when: datetime) -> StartFrom:
        """The first records at or after ``when`` (an aware datetime)."""
        if when.tzinfo is None:
            raise ConfigurationError("a start time needs a timezone (e.g. 2025-01-31T12:00Z)")
        return cls("time", timestamp_ms=int(when.timestamp() * 1000))

    def describe(self) -> str:
        """One line for logs and the CLI."""
        if self.kind == "offsets":
            return "offsets " + ",".join(f"{p}={o}" for p, o in sorted(self.offsets.items()))
        if self.kind == "time":
            return f"time {self.timestamp_ms} ms"
        return self.kind


@dataclass(slots=True)
class PartitionProgress:
    """One partition: where the read started, where it is, where it stops."""

    partition: int
    start: int
    position: int
    end: int

    @property
    def done(self) -> bool:
        """Every record below ``end`` was handled."""
        return self.position >= self.end


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    """Where to read and how the consumer fetches."""

    kafka: KafkaTarget
    topic: str
    group_id: str | None = None
    client_id: str = "spine-replay"
    max_records: int = DEFAULT_MAX_RECORDS
    fetch_max_wait_ms: int = 100
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    open_timeout_s: float = 30.0


class TopicReader(AsyncClosing):
    """Reads partitions from their start positions up to the end captured at open."""

    def __init__(self, settings: ReaderSettings) -> None:
        self.settings = settings
        self.partitions: dict[int, PartitionProgress] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: dict[int, TopicPartition] = {}

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The open consumer."""
        if self._consumer is None:
            raise RuntimeError("TopicReader.open() was not called")
        return self._consumer

    @property
    def done(self) -> bool:
        """Every partition reached its end."""
        return all(p.done for p in self.partitions.values())

    async def open(self, start: StartFrom, *, follow: bool = False) -> None:
        """Connect, assign, resolve start positions and capture the end of each partition."""
        s = self.settings
        kafka = as_kafka(s.kafka)
        await wait_for_kafka(kafka, "replay")
        self._consumer = make_consumer(
            kafka,
            group_id=s.group_id,
            client_id=kafka.client_id_for(s.client_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
        )
        await self._consumer.start()
        partitions = await topic_partitions(self.consumer, s.topic, s.open_timeout_s)
        self._assign(self._wanted(start, partitions))
        starts = await self._starts(start)
        if set(starts) != set(self._tps):  # a resume covers the partitions it committed
            self._assign(sorted(starts))
        ends = await self._probe_highwaters(starts)
        for p, tp in self._tps.items():
            wanted = starts[p]
            first = ends[p] if wanted is None else min(wanted, ends[p])
            self.consumer.seek(tp, first)
            self.partitions[p] = PartitionProgress(p, first, first, ends[p])
        if not follow:
            self._pause_finished()

    def _wanted(self, start: StartFrom, partitions: list[int]) -> list[int]:
        if start.kind != "offsets":
            return partitions
        unknown = sorted(set(start.offsets) - set(partitions))
        if unknown:
            raise ConfigurationError(
                f"Topic {self.settings.topic!r} has partitions {partitions}; no {unknown}."
            )
        return sorted(start.offsets)

    def _assign(self, partitions: list[int]) -> None:
        self._tps = {p: TopicPartition(self.settings.topic, p) for p in partitions}
        self.consumer.assign(list(self._tps.values()))

    async def close(self) -> None:
        """Leave nothing open."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def _starts(self, start: StartFrom) -> dict[int, int | None]:
        """Start offset per partition; None means "at its end" (nothing after a time)."""
        tps = list(self._tps.values())
        beginning = {
            tp.partition: o for tp, o in (await self.consumer.beginning_offsets(tps)).items()
        }
        if start.kind == "beginning":
            return dict(beginning)
        if start.kind == "offsets":
            return {p: max(o, beginning[p]) for p, o in start.offsets.items()}
        if start.kind == "time":
            assert start.timestamp_ms is not None
            found = await self.consumer.offsets_for_times(dict.fromkeys(tps, start.timestamp_ms))
            # Not found is None on Kafka, timestamp -1 (with offset 0) on Tansu.
            return {
                tp.partition: None if hit is None or hit.timestamp < 0 else hit.offset
                for tp, hit in found.items()
            }
        committed: dict[int, int] = {}
        for p, tp in self._tps.items():
            offset = await self.consumer.committed(tp) if self.settings.group_id else None
            if offset is not None:
                # Retention may have removed what the group committed: the log start.
                committed[p] = max(offset, beginning[p])
        return dict(committed or beginning)  # nothing committed: a first run

    async def _probe_highwaters(self, starts: Mapping[int, int | None]) -> dict[int, int]:
        """The end of every partition, from fetch responses (BrokerUnavailable if none)."""
        s = self.settings
        start_at = {tp: starts[p] for p, tp in self._tps.items()}
        ends = await high_watermarks(self.consumer, start_at, s.open_timeout_s, s.fetch_max_wait_ms)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def poll(self, *, follow: bool, timeout_ms: int = 500) -> list[RawRecord]:
        """The next records below each partition's end.

        With ``follow`` there is no end: ends track the latest high watermark instead.
        """
        batch = await self.consumer.getmany(
            timeout_ms=timeout_ms, max_records=self.settings.max_records
        )
        if follow:
            for p, tp in self._tps.items():
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    self.partitions[p].end = max(self.partitions[p].end, highwater)
            return [rec for recs in batch.values() for rec in recs]
        return [
            rec
            for tp, recs in batch.items()
            for rec in recs
            if rec.offset < self.partitions[tp.partition].end
        ]

    async def advance(self, *, follow: bool) -> dict[TopicPartition, int]:
        """Right after a poll: move positions, pause finished partitions.

        Returns the positions that moved: what the polled batch commits once it is
        durable (``pipeline.offsets``). The consumer's position also steps over
        offsets that carry no record (control batches).
        """
        moved: dict[TopicPartition, int] = {}
        for p, tp in self._tps.items():
            progress = self.partitions[p]
            if progress.done and not follow:
                continue
            position = await self.consumer.position(tp)
            if not follow:
                position = min(position, progress.end)
            if position != progress.position:
                progress.position = position
                moved[tp] = position
        if not follow:
            self._pause_finished()
        return moved

    def _pause_finished(self) -> None:
        """No fetch past the end of a finished partition."""
        finished = [tp for p, tp in self._tps.items() if self.partitions[p].done]
        if finished:
            self.consumer.pause(*finished)

    # -- the pipeline's PartitionConsumer: commits, and what backpressure may use ------

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit positions to the reader's group (KafkaError propagates)."""
        if offsets and self.settings.group_id is not None:
            await self.consumer.commit(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        """Every partition read (assigned manually: never revoked)."""
        return set(self._tps.values())

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next."""
        self.consumer.seek(partition, offset)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions``."""
        self.consumer.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""
        self.consumer.resume(*partitions)

    def positions(self) -> dict[TopicPartition, int]:
        """Every partition's current position."""
        return {tp: self.partitions[p].position for p, tp in self._tps.items()}

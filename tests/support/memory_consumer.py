"""An in-memory consumer for the pipeline's unit tests: the PartitionConsumer seam.

It holds a topic's records per partition and does what the pipeline asks of a Kafka
consumer (assignment, seek, pause, resume, commit), plus ``poll`` (what faststream
does before it calls the sink's handler). The broker-backed tests run the same
pipeline on aiokafka's consumer.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition

from event_spine.kafka.records import MemoryRecord


class MemoryConsumer:
    """Positions, pauses, ownership and commits over records held in memory."""

    def __init__(self, records: Sequence[MemoryRecord] = ()) -> None:
        self.log: dict[TopicPartition, list[MemoryRecord]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.owned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        #: Every commit call, in order.
        self.commits: list[dict[TopicPartition, int]] = []
        self.committed: dict[TopicPartition, int] = {}
        #: Raised by the next commit calls while set (a rebalance the broker reports).
        self.fail_commits: Exception | None = None
        self.append(records)

    def append(self, records: Sequence[MemoryRecord]) -> None:
        """Add records to their partitions (now owned, read from the start)."""
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            self.log.setdefault(tp, []).append(rec)
            self.positions.setdefault(tp, 0)
            self.owned.add(tp)

    def poll(self, max_records: int = 1_000) -> list[MemoryRecord]:
        """The next records of every owned, unpaused partition, from its position."""
        out: list[MemoryRecord] = []
        for tp in sorted(self.owned - self.paused):
            position = self.positions[tp]
            fresh = [r for r in self.log.get(tp, []) if r.offset >= position]
            fresh = fresh[: max_records - len(out)]
            if fresh:
                self.positions[tp] = fresh[-1].offset + 1
            out.extend(fresh)
        return out

    def revoke(self, *partitions: TopicPartition) -> None:
        """Another member owns ``partitions`` now."""
        self.owned -= set(partitions)
        self.paused -= set(partitions)

    # -- PartitionConsumer --------------------------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert isinstance(partition, TopicPartition)  # as aiokafka asserts
        self.positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commits is not None:
            raise self.fail_commits
        assert all(isinstance(tp, TopicPartition) for tp in offsets)
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

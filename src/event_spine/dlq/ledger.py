"""The replay ledger: which dead letters were replayed, when, and by whom.

A replay records every letter once its re-published record is acknowledged by Kafka,
and skips letters already recorded: a replay that was interrupted resumes where it
stopped, and submitting the same selection twice re-publishes nothing. The ledger is
keyed by the letter's place in the dead-letter topic (topic, partition, offset), so
it needs no consumer group and a selection of single letters is remembered exactly.

Stores: a table in the routing registry's database (``ledgers``: SQLite or
PostgreSQL, beside the API keys), or memory (tests; remembers nothing after exit).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from event_spine.dlq.records import Position


@dataclass(frozen=True, slots=True)
class Replayed:
    """One ledger row: the letter at (partition, offset) was replayed ``at`` by ``by``."""

    partition: int
    offset: int
    at: datetime
    by: str

    @property
    def position(self) -> Position:
        """(partition, offset) in the dead-letter topic."""
        return (self.partition, self.offset)


class ReplayLedger(Protocol):
    """Where replays are recorded (open before use, close after)."""

    async def open(self) -> None:
        """Create the table when missing."""

    async def close(self) -> None:
        """Release connections."""

    async def replayed(
        self, topic: str, positions: Collection[Position]
    ) -> dict[Position, Replayed]:
        """The rows of those of ``positions`` already replayed from ``topic``."""

    async def record(self, topic: str, rows: Collection[Replayed]) -> None:
        """Add rows; a letter already recorded keeps its first row."""


def by_partition(positions: Collection[Position]) -> dict[int, tuple[int, int]]:
    """(lowest, highest) offset per partition: one range query each (a selection and a
    batch of the DLQ are a few ranges; the rows are then filtered exactly)."""
    out: dict[int, tuple[int, int]] = {}
    for partition, offset in positions:
        low, high = out.get(partition, (offset, offset))
        out[partition] = (min(low, offset), max(high, offset))
    return out


class MemoryReplayLedger:
    """A ledger in memory: for tests (a process exit forgets every replay)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int, int], Replayed] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close (the rows stay until the object goes)."""

    async def replayed(
        self, topic: str, positions: Collection[Position]
    ) -> dict[Position, Replayed]:
        """The rows of those of ``positions`` already replayed from ``topic``."""
        found = (self._rows.get((topic, *p)) for p in positions)
        return {row.position: row for row in found if row is not None}

    async def record(self, topic: str, rows: Collection[Replayed]) -> None:
        """Add rows; a letter already recorded keeps its first row."""
        for row in rows:
            self._rows.setdefault((topic, *row.position), row)

"""The consumed Kafka record as event-spine reads it: a protocol, and an in-memory one.

The sink's batch processor, its dead letters and the replay reader read only these
seven attributes. aiokafka's ``ConsumerRecord`` has them (so do the records
faststream hands the worker); ``MemoryRecord`` is the same shape built in memory,
for the unit tests of the processor and for ``event_spine.testing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class RawRecord(Protocol):
    """One record of a topic partition, undecoded."""

    @property
    def topic(self) -> str:
        """The topic it was read from."""

    @property
    def partition(self) -> int:
        """Its partition."""

    @property
    def offset(self) -> int:
        """Its offset in the partition (a stored event's position)."""

    @property
    def key(self) -> bytes | None:
        """``<tenant_id>:<stream_id>`` for an event-spine record."""

    @property
    def value(self) -> bytes | None:
        """The wire JSON (None for a tombstone)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]:
        """Kafka headers, in order."""

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch (create or log-append time)."""


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A RawRecord that never was in Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: int = 0

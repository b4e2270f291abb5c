"""One dead letter as read back from the dead-letter topic, with its diagnosis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from event_spine.pipeline import dead_letters as h

#: Header a replayed record carries: the DLQ ``partition:offset`` it was replayed from.
REPLAYED_FROM: Final = "spine-dlq-replayed-from"

#: Where a dead letter sits in the dead-letter topic: (partition, offset).
Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead letter with its diagnosis."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes]]
    #: The DLQ record's timestamp (ms since the epoch; -1 when unknown).
    timestamp_ms: int = -1

    @property
    def position(self) -> Position:
        """(partition, offset) in the dead-letter topic."""
        return (self.partition, self.offset)

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


def as_record(rec: Any) -> DeadLetterRecord:
    """An aiokafka ConsumerRecord of the dead-letter topic as a DeadLetterRecord."""
    raw = list(rec.headers or ())
    timestamp = rec.timestamp if rec.timestamp is not None else -1
    return DeadLetterRecord(
        rec.partition, rec.offset, rec.key, rec.value, h.header_map(raw), raw, timestamp
    )


def parse_position(text: str) -> Position | None:
    """``PARTITION:OFFSET`` (both non-negative integers) as a Position, else None."""
    partition, sep, offset = text.strip().partition(":")
    if not (sep and _digits(partition) and _digits(offset)):
        return None
    return (int(partition), int(offset))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()

"""Dead letters: the original record plus why it was parked, in Kafka headers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from event_spine.kafka.records import RawRecord

REASON: Final = "spine-dlq-reason"
ERROR_CLASS: Final = "spine-dlq-error-class"
MESSAGE: Final = "spine-dlq-message"
WORKER: Final = "spine-dlq-worker"
ATTEMPTS: Final = "spine-dlq-attempts"
SOURCE_TOPIC: Final = "spine-dlq-topic"
SOURCE_PARTITION: Final = "spine-dlq-partition"
SOURCE_OFFSET: Final = "spine-dlq-offset"
FAILED_AT_MS: Final = "spine-dlq-failed-at-ms"
#: Reason ``event_id_conflict`` only: content digests (``content_digest``) of the
#: event already stored under this scope and id, and of this refused event.
STORED_DIGEST: Final = "spine-dlq-stored-digest"
EVENT_DIGEST: Final = "spine-dlq-event-digest"
DLQ_HEADERS: Final = frozenset(
    {
        REASON,
        ERROR_CLASS,
        MESSAGE,
        WORKER,
        ATTEMPTS,
        SOURCE_TOPIC,
        SOURCE_PARTITION,
        SOURCE_OFFSET,
        FAILED_AT_MS,
        STORED_DIGEST,
        EVENT_DIGEST,
    }
)
_MAX_MESSAGE: Final = 2_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that will not be stored, and why."""

    record: RawRecord
    reason: str
    error: BaseException
    attempts: int = 1
    #: More (header, value) pairs, e.g. the two digests of an event_id_conflict.
    extra: tuple[tuple[str, str], ...] = ()

    def headers(self, worker_id: str) -> list[tuple[str, bytes]]:
        """Original headers (minus any earlier DLQ headers) plus ours."""
        original = [(k, v) for k, v in (self.record.headers or ()) if k not in DLQ_HEADERS]
        return [
            *original,
            (REASON, self.reason.encode()),
            (ERROR_CLASS, type(self.error).__name__.encode()),
            (MESSAGE, str(self.error)[:_MAX_MESSAGE].encode()),
            (WORKER, worker_id.encode()),
            (ATTEMPTS, str(self.attempts).encode()),
            (SOURCE_TOPIC, self.record.topic.encode()),
            (SOURCE_PARTITION, str(self.record.partition).encode()),
            (SOURCE_OFFSET, str(self.record.offset).encode()),
            (FAILED_AT_MS, str(int(time.time() * 1000)).encode()),
            *((name, value.encode()) for name, value in self.extra),
        ]


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Kafka headers as a str dict (last value wins), for reading dead letters."""
    return {k: v.decode(errors="replace") for k, v in (headers or ())}

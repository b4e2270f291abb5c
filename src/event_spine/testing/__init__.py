"""Test your application's events without a broker.

``MemoryProducer`` is the real producer with Kafka replaced by a list: install it
with ``set_default_producer`` (or ``installed(...)``) and ``emit_event``, the
canonical emitters and ``emit_audit_event`` validate and encode exactly as in
production. ``LocalSink`` runs what it kept through the sink's real batch processor
into a SQLite (or, in mode lab, memory) store, so a test reads it back with
``list_after``. See docs/guide.md, "Testing your application's events".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from event_spine.errors import ProducerNotConfigured
from event_spine.kafka.records import MemoryRecord, RawRecord
from event_spine.producers.emit import get_default_producer, set_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.testing.producer import MemoryProducer
from event_spine.testing.sink import DeadLettered, LocalSink

__all__ = [
    "DeadLettered",
    "LocalSink",
    "MemoryProducer",
    "MemoryRecord",
    "RawRecord",
    "installed",
]

P = TypeVar("P", bound=EventSpineProducer)


@contextmanager
def installed(producer: P) -> Iterator[P]:
    """``with installed(MemoryProducer()):`` makes it the default producer for the
    block, then puts back the one installed before (if any)."""
    try:
        previous: EventSpineProducer | None = get_default_producer()
    except ProducerNotConfigured:
        previous = None
    set_default_producer(producer)
    try:
        yield producer
    finally:
        set_default_producer(previous)

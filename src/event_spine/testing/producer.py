"""MemoryProducer: the real producer's emit path, with Kafka replaced by a list.

Everything up to the hand-over is ``EventSpineProducer``'s own code: the context
lookup, the one record builder (``producers/records.py``), the route check (with a
``route_checker``), the encoding with its size limit. Only ``_accept``, where the
real producer appends to the buffer its sender thread drains, is replaced: the
record is kept as the ``MemoryRecord`` the sink would consume (same key, value and
headers; the partition the Kafka partitioner picks; offsets counted per partition).
No thread, no socket, nothing to flush.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from event_spine.kafka.keys import partition_of, split_key
from event_spine.kafka.records import MemoryRecord
from event_spine.producers.batching import Numbered, headers_of
from event_spine.producers.buffer import EmitBuffer, Item
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.sender import SenderBase
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.spill import SpillQueue
from event_spine.routing.checker import RouteChecker
from event_spine.schemas.wire import EventRecord, decode_record

#: Settings of a MemoryProducer built without any: no broker is ever contacted.
_NO_BROKER: Final = "in-memory:0"


class _Captured(SenderBase):
    """Stands in for the Kafka transport: never started; emits land in ``records``."""

    def __init__(self, settings: ProducerSettings, buffer: EmitBuffer, partitions: int) -> None:
        super().__init__(settings, buffer, None)
        self.partitions = partitions
        self.records: list[MemoryRecord] = []
        self._next: dict[int, int] = {}
        self._lock = threading.Lock()  # emits may come from any thread

    def capture(self, item: Item) -> None:
        key, value, _traceparent = item
        tenant_stream = split_key(key)
        assert tenant_stream is not None  # the producer always keys by tenant and stream
        partition = partition_of(*tenant_stream, self.partitions)
        with self._lock:
            offset = self._next.get(partition, 0)
            self._next[partition] = offset + 1
            self.records.append(
                MemoryRecord(
                    self.settings.topic,
                    partition,
                    offset,
                    key,
                    value,
                    headers_of(item),
                    int(time.time() * 1000),
                )
            )
            self.sent += 1

    # Never called: the captured transport is not started.
    async def _ready(self) -> bool:
        return True

    async def _send(self, numbered: list[Numbered]) -> None:
        raise NotImplementedError("a MemoryProducer sends nothing")

    async def _wait(self, seconds: float) -> None:
        return None

    async def _close(self) -> None:
        return None


class MemoryProducer(EventSpineProducer):
    """An EventSpineProducer for tests: what it would send is kept in ``records``.

    Use it wherever an ``EventSpineProducer`` goes: ``set_default_producer()`` (then
    ``emit_event`` and every canonical emitter use it), ``producer=`` of an emitter
    or of ``emit_audit_event``. Events are validated exactly as the real producer
    validates them (same code), so a test fails where production would.
    ``partitions`` is the topic's partition count the records are spread over, with
    the Kafka partitioner (a stream keeps one partition, as in Kafka).
    Strict audit (``strict=True``) needs a real broker and sink: not here.
    """

    def __init__(
        self,
        settings: ProducerSettings | None = None,
        *,
        route_checker: RouteChecker | None = None,
        partitions: int = 1,
    ) -> None:
        if partitions < 1:
            raise ValueError("`partitions` must be at least 1")
        self._partitions = partitions
        super().__init__(
            settings or ProducerSettings(bootstrap_servers=_NO_BROKER, compression_type="none"),
            start=False,
            route_checker=route_checker,
        )

    def _open_sender(
        self, settings: ProducerSettings, buffer: EmitBuffer, spill: SpillQueue | None
    ) -> SenderBase:
        return _Captured(settings, buffer, self._partitions)

    def _accept(self, item: Item) -> None:
        self._buffer.count_accepted()
        self._captured.capture(item)

    @property
    def _captured(self) -> _Captured:
        sender = self._sender
        assert isinstance(sender, _Captured)
        return sender

    def start(self) -> None:
        """Nothing to start: no sender thread."""

    @property
    def records(self) -> list[MemoryRecord]:
        """Every record emitted so far, in emit order, as the sink would consume it."""
        with self._captured._lock:
            return list(self._captured.records)

    @property
    def events(self) -> list[EventRecord]:
        """The emitted events, decoded by the sink's own decoder, in emit order."""
        return [decode_record(rec.value) for rec in self.records if rec.value is not None]

    def clear(self) -> None:
        """Forget what was emitted (offsets keep counting, as a topic's do)."""
        with self._captured._lock:
            self._captured.records.clear()

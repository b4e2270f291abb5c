"""EventSpineProducer: a synchronous, never-waiting emit() and one sender thread.

emit() validates, serializes and appends to a bounded buffer, then returns: no
await, no network, no lock held across I/O. A daemon thread runs its own event
loop with one aiokafka producer, drains the buffer in chunks and sends with
acks=all. Why a thread of its own: emit() must work from sync code and from any
event loop, and a busy application loop must not delay delivery.

Delivery is at-least-once: a failed send goes back to the front of the buffer
(accepted events are never dropped by the sender) and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from aiokafka import AIOKafkaProducer, codec
from aiokafka.errors import KafkaError

from event_spine.errors import ConfigurationError, EventValidationError, ProducerClosed
from event_spine.observability.tracing import current_traceparent
from event_spine.producers.batching import PartitionBatcher
from event_spine.producers.buffer import EmitBuffer, Item
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.spill import SpillQueue
from event_spine.schemas.context import RequestContext, current_context
from event_spine.schemas.events import StreamEvent
from event_spine.schemas.formats import (
    EVENT_ID_RE,
    EVENT_TYPE_PATTERN,
    EVENT_TYPE_RE,
    SCHEMA_VERSION,
    STREAM_ID_PATTERN,
    STREAM_ID_RE,
)
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.wire import (
    EventRecord,
    WireRouting,
    check_metadata,
    check_size,
    encode_record,
    record_from_event,
)

log = logging.getLogger(__name__)

_SEND_CHUNK: Final = 2_000
_ROUTING_CACHE_MAX: Final = 10_000


def _check_codec(compression_type: str) -> None:
    """Fail at construction, not in the sender thread, when a codec is missing."""
    available = {
        "none": True,
        "gzip": True,
        "lz4": codec.has_lz4(),
        "zstd": codec.has_zstd(),
        "snappy": codec.has_snappy(),
    }
    if not available.get(compression_type, False):
        raise ConfigurationError(
            f"`compression_type` {compression_type!r} needs the `cramjam` package "
            f"(pip install cramjam), or choose 'gzip' or 'none'."
        )


def kafka_key(tenant_id: str, stream_id: str) -> bytes:
    """Partition key: tenant + stream, so each stream stays in one partition, in order."""
    return f"{tenant_id}:{stream_id}".encode()


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """Counters since start. ``buffered`` counts events not yet acked by the broker."""

    emitted: int
    sent: int
    failed: int
    dropped: int
    buffered: int
    spilled: int
    spill_bytes: int
    connected: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What close() could not deliver before its deadline."""

    sent: int
    unsent: int
    dropped: int
    #: Undelivered but kept in the spill folder: sent by the next producer started on it.
    kept_on_disk: int = 0


class EventSpineProducer:
    """Fire-and-forget emitter into one Kafka topic."""

    def __init__(self, settings: ProducerSettings, *, start: bool = True) -> None:
        _check_codec(settings.compression_type)
        self.settings = settings
        self._buffer = EmitBuffer(
            settings.buffer_max_events, settings.overflow_policy, settings.block_timeout_ms
        )
        self._spill = (
            SpillQueue(Path(settings.spill_dir), settings.spill_max_bytes)
            if settings.spill_dir
            else None
        )
        self._routing: dict[tuple[str, str, str, str], WireRouting] = {}
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Written by the sender thread only.
        self._sent = 0
        self._failed = 0
        self._in_flight = 0
        self._retry: list[tuple[int, Item]] = []
        self._settling: set[asyncio.Future[None]] = set()
        self._batcher = PartitionBatcher(settings.topic)
        self._connected = False
        self._last_error: str | None = None
        if start:
            self.start()

    # -- the hot path -------------------------------------------------------------

    def emit_event(
        self,
        ctx: RequestContext | None,
        event_type: str,
        stream_id: str,
        payload: dict[str, Any],
        metadata: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
    ) -> str:
        """Validate, serialize and buffer one event; returns its event_id at once.

        ``ctx`` None means the RequestContext set with ``request_context()``.
        Raises EventRejected subclasses naming the bad field, ProducerClosed after
        close(), and BufferFull only under the "block"/"raise" overflow policies.
        """
        if ctx is None:
            ctx = current_context()
            if ctx is None:
                raise EventValidationError(
                    "routing", "no RequestContext: pass `ctx` or set one with request_context()"
                )
        if type(event_type) is not str or EVENT_TYPE_RE.match(event_type) is None:
            raise EventValidationError("event_type", f"must match {EVENT_TYPE_PATTERN}")
        if type(stream_id) is not str or STREAM_ID_RE.match(stream_id) is None:
            raise EventValidationError("stream_id", f"must match {STREAM_ID_PATTERN}")
        if type(payload) is not dict:
            raise EventValidationError("payload", "must be a JSON object (a dict)")
        envelope = ctx.metadata()
        if metadata:
            envelope.update(metadata)
            check_metadata(envelope)
        if event_id is None:
            event_id = new_event_id()
        elif type(event_id) is not str or EVENT_ID_RE.match(event_id) is None:
            raise EventValidationError("event_id", "must be a lower-case UUID string")
        record = EventRecord(
            SCHEMA_VERSION,
            event_id,
            datetime.now(UTC),
            event_type,
            stream_id,
            self._wire_routing(ctx),
            envelope,
            payload,
        )
        self._put(ctx.tenant_id, stream_id, record, current_traceparent(ctx))
        return event_id

    def emit(self, event: StreamEvent) -> str:
        """Buffer an already-built StreamEvent (validated by pydantic)."""
        self._put(event.routing.tenant_id, event.stream_id, record_from_event(event))
        return event.event_id

    def _put(
        self, tenant_id: str, stream_id: str, record: EventRecord, traceparent: bytes = b""
    ) -> None:
        if self._closed:
            raise ProducerClosed("emit() after close(): this producer accepts no more events.")
        try:
            value = encode_record(record)
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise EventValidationError("payload", f"is not JSON-serializable: {exc}") from exc
        check_size(value, self.settings.max_event_bytes)
        item = (kafka_key(tenant_id, stream_id), value, traceparent)
        if self._spill is not None and self._spilled(item):
            return
        self._buffer.put(item)

    def _spilled(self, item: Item) -> bool:
        spill, buffer = self._spill, self._buffer
        assert spill is not None
        # Once spilling, keep spilling until the sender moved the backlog back: order.
        if not spill.pending and len(buffer) < buffer.max_events:
            return False
        with spill.lock:
            if (spill.pending or len(buffer) >= buffer.max_events) and spill.append(item):
                buffer.count_accepted()
                return True
        return False

    def _wire_routing(self, ctx: RequestContext) -> WireRouting:
        key = ctx.key()
        routing = self._routing.get(key)
        if routing is None:
            if len(self._routing) >= _ROUTING_CACHE_MAX:
                self._routing.clear()
            routing = self._routing[key] = WireRouting(
                tenant_id=ctx.tenant_id, env=ctx.env, mode=ctx.mode, project_id=ctx.project_id
            )
        return routing

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._sender()), name="spine-producer", daemon=True
        )
        self._thread.start()
        atexit.register(self._close_at_exit)

    @property
    def pending(self) -> int:
        """Events accepted but not yet acked by the broker."""
        spilled = self._spill.pending if self._spill is not None else 0
        return len(self._buffer) + spilled + self._in_flight + len(self._retry)

    @property
    def stats(self) -> ProducerStats:
        """A snapshot of the counters."""
        return ProducerStats(
            emitted=self._buffer.accepted,
            sent=self._sent,
            failed=self._failed,
            dropped=self._buffer.dropped,
            buffered=self.pending,
            spilled=self._spill.spilled_total if self._spill is not None else 0,
            spill_bytes=self._spill.bytes if self._spill is not None else 0,
            connected=self._connected,
            last_error=self._last_error,
        )

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block this thread until every accepted event is acked; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    async def flush_async(self, timeout_s: float | None = None) -> bool:
        """flush() for async callers: waits without blocking their loop."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def close(self, timeout_s: float | None = None) -> CloseReport:
        """Stop accepting, deliver what is buffered within the deadline, stop the sender."""
        if timeout_s is None:
            timeout_s = self.settings.close_timeout_ms / 1000
        self._closed = True
        self.flush(timeout_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout_s, 1.0) + 5.0)
        with contextlib.suppress(ValueError):
            atexit.unregister(self._close_at_exit)
        kept = self._spill.pending if self._spill is not None else 0
        report = CloseReport(
            sent=self._sent,
            unsent=self.pending - kept,
            dropped=self._buffer.dropped,
            kept_on_disk=kept,
        )
        if report.unsent:
            log.error("event-spine producer closed with %d events not delivered", report.unsent)
        return report

    def _close_at_exit(self) -> None:
        if not self._closed:
            self.close()

    # -- the sender thread --------------------------------------------------------

    async def _sender(self) -> None:
        producer: AIOKafkaProducer | None = None
        backoff_s = 0.05
        seq = 0
        linger_s = max(self.settings.linger_ms / 1000, 0.001)
        while not self._stop.is_set():
            if producer is None:
                producer = await self._connect()
                if producer is None:
                    backoff_s = await self._backoff(backoff_s)
                continue
            if self._retry:
                if self._in_flight:
                    await asyncio.sleep(0.001)
                    continue
                # Everything settled: failed sends go back first, in emit order.
                self._retry.sort(key=lambda pair: pair[0])
                self._buffer.requeue_front(item for _, item in self._retry)
                self._retry.clear()
                backoff_s = await self._backoff(backoff_s)
                continue
            self._refill_from_spill()
            room = self.settings.max_in_flight_events - self._in_flight
            count = min(_SEND_CHUNK, room, len(self._buffer))
            if count <= 0:
                await asyncio.sleep(linger_s)
                continue
            # Counted in flight BEFORE they leave the buffer: flush() runs on another
            # thread and must never see the pipeline empty while a chunk is in transit.
            self._in_flight += count
            items = self._buffer.drain(count)  # only this thread removes: exactly `count`
            seq = await self._send_chunk(producer, items, seq)
            if not self._retry:
                backoff_s = 0.05
        await self._shutdown(producer)

    def _refill_from_spill(self) -> None:
        spill, buffer = self._spill, self._buffer
        if spill is not None and spill.pending and len(buffer) < buffer.max_events // 2:
            spill.move_to(buffer, buffer.max_events - len(buffer))

    async def _connect(self) -> AIOKafkaProducer | None:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=s.client_id,
            acks="all" if s.acks == "all" else int(s.acks),
            compression_type=None if s.compression_type == "none" else s.compression_type,
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_bytes,
            max_request_size=s.max_event_bytes + 64 * 1024,
            request_timeout_ms=s.request_timeout_ms,
            enable_idempotence=s.enable_idempotence,
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            self._last_error = f"connect: {exc!r}"
            with contextlib.suppress(Exception):
                await producer.stop()
            return None
        self._connected = True
        self._last_error = None
        return producer

    async def _backoff(self, backoff_s: float) -> float:
        await asyncio.sleep(backoff_s)
        return min(backoff_s * 2, self.settings.retry_backoff_max_ms / 1000)

    async def _send_chunk(self, producer: AIOKafkaProducer, items: list[Item], seq: int) -> int:
        numbered = [(seq + 1 + i, item) for i, item in enumerate(items)]
        try:
            groups = await self._batcher.group(producer, numbered)
        except Exception as exc:  # no metadata (broker down): the whole chunk retries
            self._fail(numbered, exc)
            return seq + len(items)
        for index, (partition, pairs) in enumerate(groups):
            start = 0
            while start < len(pairs):
                batch, end = self._batcher.fill(producer, pairs, start)
                members = pairs[start:end]
                try:
                    future = await producer.send_batch(
                        batch, self.settings.topic, partition=partition
                    )
                except Exception as exc:  # not queued: this and the rest retry, in order
                    rest = [pair for _, later in groups[index + 1 :] for pair in later]
                    self._fail([*pairs[start:], *rest], exc)
                    return seq + len(items)
                task = asyncio.ensure_future(self._settle(future, members))
                self._settling.add(task)  # keep a reference until done
                task.add_done_callback(self._settling.discard)
                start = end
        return seq + len(items)

    def _fail(self, pairs: list[tuple[int, Item]], exc: BaseException) -> None:
        self._note_failure(exc, len(pairs))
        self._retry.extend(pairs)  # before the in-flight decrement: flush() never sees 0
        self._in_flight -= len(pairs)

    async def _settle(self, future: asyncio.Future[Any], members: list[tuple[int, Item]]) -> None:
        try:
            await future
        except Exception as exc:  # delivery failed after aiokafka's own retries
            self._fail(members, exc)
            return
        self._sent += len(members)
        self._connected = True
        self._in_flight -= len(members)

    def _note_failure(self, exc: BaseException, count: int) -> None:
        self._failed += count
        self._last_error = repr(exc)
        self._connected = False

    async def _shutdown(self, producer: AIOKafkaProducer | None) -> None:
        if self._retry:
            self._buffer.requeue_front(item for _, item in sorted(self._retry))
            self._retry.clear()
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5.0)
        self._connected = False
        if self._spill is not None:
            self._persist_unsent()

    def _persist_unsent(self) -> None:
        """Closing with a spill: what is still buffered goes to disk for the next start."""
        spill = self._spill
        assert spill is not None
        # The buffer holds the oldest events: they go first, then the unread backlog.
        spill.keep_with_prefix(self._buffer.drain(len(self._buffer)))
        spill.close()

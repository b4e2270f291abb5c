"""The producer's sender: one aiokafka producer on the sender thread's own loop.

It drains the emit buffer in chunks, sends one record batch per partition, and
settles each batch's future in the background. A failed send goes back to the
front of the buffer in emit order and is retried with backoff: accepted events
are never dropped here. Counters are written by the sender thread only and read
by others (plain ints: a stale read is fine, a torn one cannot happen).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from event_spine.producers.batching import PartitionBatcher
from event_spine.producers.buffer import EmitBuffer, Item
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.spill import SpillQueue

_SEND_CHUNK: Final = 2_000


class Sender:
    """Moves events from the buffer (and the spill) to the broker."""

    def __init__(
        self, settings: ProducerSettings, buffer: EmitBuffer, spill: SpillQueue | None
    ) -> None:
        self.settings = settings
        self._buffer = buffer
        self._spill = spill
        self._stopping = threading.Event()
        self._batcher = PartitionBatcher(settings.topic)
        self._settling: set[asyncio.Future[None]] = set()
        self.sent = 0
        self.failed = 0
        self.in_flight = 0
        self.retry: list[tuple[int, Item]] = []
        self.connected = False
        self.last_error: str | None = None

    def stop(self) -> None:
        """Ask run() to finish (thread-safe)."""
        self._stopping.set()

    async def run(self) -> None:
        """Send until stop() is set, then hand what is left back (or to the spill)."""
        producer: AIOKafkaProducer | None = None
        backoff_s = 0.05
        seq = 0
        linger_s = max(self.settings.linger_ms / 1000, 0.001)
        while not self._stopping.is_set():
            if producer is None:
                producer = await self._connect()
                if producer is None:
                    backoff_s = await self._backoff(backoff_s)
                continue
            if self.retry:
                if self.in_flight:
                    await asyncio.sleep(0.001)
                    continue
                # Everything settled: failed sends go back first, in emit order.
                self.retry.sort(key=lambda pair: pair[0])
                self._buffer.requeue_front(item for _, item in self.retry)
                self.retry.clear()
                backoff_s = await self._backoff(backoff_s)
                continue
            self._refill_from_spill()
            room = self.settings.max_in_flight_events - self.in_flight
            count = min(_SEND_CHUNK, room, len(self._buffer))
            if count <= 0:
                await asyncio.sleep(linger_s)
                continue
            # Counted in flight BEFORE they leave the buffer: flush() runs on another
            # thread and must never see the pipeline empty while a chunk is in transit.
            self.in_flight += count
            items = self._buffer.drain(count)  # only this thread removes: exactly `count`
            seq = await self._send_chunk(producer, items, seq)
            if not self.retry:
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
            self.last_error = f"connect: {exc!r}"
            with contextlib.suppress(Exception):
                await producer.stop()
            return None
        self.connected = True
        self.last_error = None
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
        self.retry.extend(pairs)  # before the in-flight decrement: flush() never sees 0
        self.in_flight -= len(pairs)

    async def _settle(self, future: asyncio.Future[Any], members: list[tuple[int, Item]]) -> None:
        try:
            await future
        except Exception as exc:  # delivery failed after aiokafka's own retries
            self._fail(members, exc)
            return
        self.sent += len(members)
        self.connected = True
        self.in_flight -= len(members)

    def _note_failure(self, exc: BaseException, count: int) -> None:
        self.failed += count
        self.last_error = repr(exc)
        self.connected = False

    async def _shutdown(self, producer: AIOKafkaProducer | None) -> None:
        if self.retry:
            self._buffer.requeue_front(item for _, item in sorted(self.retry))
            self.retry.clear()
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5.0)
        self.connected = False
        if self._spill is not None:
            self._persist_unsent()

    def _persist_unsent(self) -> None:
        """Closing with a spill: what is still buffered goes to disk for the next start."""
        spill = self._spill
        assert spill is not None
        # The buffer holds the oldest events: they go first, then the unread backlog.
        spill.keep_with_prefix(self._buffer.drain(len(self._buffer)))
        spill.close()

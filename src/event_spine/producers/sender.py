"""The producer's sender: the loop on the sender thread that moves events to the broker.

It drains the emit buffer (and the spill) in chunks and hands them to a transport.
A failed send goes back to the front of the buffer in emit order and is retried
with backoff: accepted events are never dropped here. Counters are written by the
sender thread only and read by others (plain ints: a stale read is fine, a torn one
cannot happen).

``SenderBase`` holds that loop once; a transport implements four steps: get ready
(connect), send a chunk, wait while serving its callbacks, and close.
``AiokafkaSender`` is the default; ``ConfluentSender`` (``confluent.py``) is optional.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from event_spine.errors import KafkaSecurityError
from event_spine.kafka.clients import make_producer
from event_spine.producers.batching import Numbered, PartitionBatcher
from event_spine.producers.buffer import EmitBuffer
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.spill import SpillQueue

_SEND_CHUNK: Final = 2_000
_FIRST_BACKOFF_S: Final = 0.05
_STOP_TIMEOUT_S: Final = 2.0


class SenderBase(abc.ABC):
    """Moves events from the buffer (and the spill) to the broker."""

    def __init__(
        self, settings: ProducerSettings, buffer: EmitBuffer, spill: SpillQueue | None
    ) -> None:
        self.settings = settings
        self._buffer = buffer
        self._spill = spill
        self._stopping = threading.Event()
        self.sent = 0
        self.failed = 0
        self.in_flight = 0
        self.retry: list[Numbered] = []
        self.connected = False
        self.last_error: str | None = None

    def stop(self) -> None:
        """Ask run() to finish (thread-safe)."""
        self._stopping.set()

    async def run(self) -> None:
        """Send until stop() is set, then hand what is left back (or to the spill)."""
        backoff_s = _FIRST_BACKOFF_S
        seq = 0
        linger_s = max(self.settings.linger_ms / 1000, 0.001)
        while not self._stopping.is_set():
            if not await self._ready():
                backoff_s = await self._backoff(backoff_s)
                continue
            if self.retry:
                if self.in_flight:
                    await self._wait(0.001)
                    continue
                self._requeue_retries()  # everything settled: failed sends go back first
                backoff_s = await self._backoff(backoff_s)
                continue
            self._refill_from_spill()
            room = self.settings.max_in_flight_events - self.in_flight
            count = min(_SEND_CHUNK, room, len(self._buffer))
            if count <= 0:
                await self._wait(linger_s)
                continue
            # Counted in flight BEFORE they leave the buffer: flush() runs on another
            # thread and must never see the pipeline empty while a chunk is in transit.
            self.in_flight += count
            items = self._buffer.drain(count)  # only this thread removes: exactly `count`
            numbered = [(seq + 1 + i, item) for i, item in enumerate(items)]
            seq += count
            await self._send(numbered)
            if not self.retry:
                backoff_s = _FIRST_BACKOFF_S
        await self._close()
        self._requeue_retries()
        self.connected = False
        if self._spill is not None:
            self._persist_unsent()

    # -- what a transport implements ------------------------------------------------

    @abc.abstractmethod
    async def _ready(self) -> bool:
        """Connected (or connect now); False means back off and ask again."""

    @abc.abstractmethod
    async def _send(self, numbered: list[Numbered]) -> None:
        """Hand a chunk over; every event ends in ``delivered`` or ``fail`` later."""

    @abc.abstractmethod
    async def _wait(self, seconds: float) -> None:
        """Pause up to ``seconds`` while delivery reports are served."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Stop the client; what it still held must have been reported to ``fail``."""

    # -- bookkeeping shared by the transports --------------------------------------

    def delivered(self, count: int) -> None:
        """``count`` events were acked by the broker."""
        self.sent += count
        self.connected = True
        self.in_flight -= count

    def fail(self, pairs: list[Numbered], exc: BaseException) -> None:
        """These events were not delivered: they are sent again, in emit order."""
        self.failed += len(pairs)
        self.last_error = repr(exc)
        self.connected = False
        self.retry.extend(pairs)  # before the in-flight decrement: flush() never sees 0
        self.in_flight -= len(pairs)

    def _requeue_retries(self) -> None:
        if self.retry:
            self.retry.sort(key=lambda pair: pair[0])
            self._buffer.requeue_front(item for _, item in self.retry)
            self.retry.clear()

    async def _backoff(self, backoff_s: float) -> float:
        await self._wait(backoff_s)
        return min(backoff_s * 2, self.settings.retry_backoff_max_ms / 1000)

    def _refill_from_spill(self) -> None:
        spill, buffer = self._spill, self._buffer
        if spill is not None and spill.pending and len(buffer) < buffer.max_events // 2:
            spill.move_to(buffer, buffer.max_events - len(buffer))

    def _persist_unsent(self) -> None:
        """Closing with a spill: what is still buffered goes to disk for the next start."""
        spill = self._spill
        assert spill is not None
        # The buffer holds the oldest events: they go first, then the unread backlog.
        spill.keep_with_prefix(self._buffer.drain(len(self._buffer)))
        spill.close()


class AiokafkaSender(SenderBase):
    """The default transport: one aiokafka producer on the sender thread's own loop,
    one record batch per partition per chunk (see ``batching``)."""

    def __init__(
        self, settings: ProducerSettings, buffer: EmitBuffer, spill: SpillQueue | None
    ) -> None:
        super().__init__(settings, buffer, spill)
        self._batcher = PartitionBatcher(settings.topic)
        self._settling: set[asyncio.Future[None]] = set()
        self._producer: AIOKafkaProducer | None = None

    async def _ready(self) -> bool:
        if self._producer is None:
            self._producer = await self._connect()
        return self._producer is not None

    async def _connect(self) -> AIOKafkaProducer | None:
        s = self.settings
        producer = make_producer(
            s.kafka,
            client_id=s.client_id,
            acks="all" if s.acks == "all" else int(s.acks),
            compression_type=None if s.compression_type == "none" else s.compression_type,
            # 0: run() already waited linger_ms for events to gather, and a batch given
            # to send_batch never grows, so aiokafka's linger only delayed it (and the
            # next batch of its partition): emit -> appended p50 7.8 -> 2.4 ms, emit ->
            # consumed p50 25.0 -> 14.0 ms at 1k events/s (Tansu, fetch wait 15 ms);
            # throughput unchanged or better (`spine bench producer`, 2026-12-03).
            linger_ms=0,
            max_batch_size=s.max_batch_bytes,
            max_request_size=s.max_event_bytes + 64 * 1024,
            request_timeout_ms=s.request_timeout_ms,
            enable_idempotence=s.enable_idempotence,
        )
        try:
            await producer.start()
        except (KafkaError, OSError, KafkaSecurityError) as exc:
            # A security error is retried like any other (nothing accepted is dropped),
            # and its one clear message is what stats() shows.
            security = isinstance(exc, KafkaSecurityError)
            self.last_error = f"connect: {exc}" if security else f"connect: {exc!r}"
            with contextlib.suppress(Exception):
                await producer.stop()
            return None
        self.connected = True
        self.last_error = None
        return producer

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _send(self, numbered: list[Numbered]) -> None:
        producer = self._producer
        assert producer is not None
        try:
            groups = await self._batcher.group(producer, numbered)
        except Exception as exc:  # no metadata (broker down): the whole chunk retries
            self.fail(numbered, exc)
            return
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
                    self.fail([*pairs[start:], *rest], exc)
                    return
                task = asyncio.ensure_future(self._settle(future, members))
                self._settling.add(task)  # keep a reference until done
                task.add_done_callback(self._settling.discard)
                start = end

    async def _settle(self, future: asyncio.Future[Any], members: list[Numbered]) -> None:
        try:
            await future
        except asyncio.CancelledError:  # closing gave up on the batch: back to the buffer
            self.fail(members, TimeoutError("the batch was not acked before close()"))
            raise
        except Exception as exc:  # delivery failed after aiokafka's own retries
            self.fail(members, exc)
            return
        self.delivered(len(members))

    async def _close(self) -> None:
        if self._producer is not None:
            # Short: the caller's close() already waited its deadline in flush(), and
            # everything must be settled (then spilled) before close() stops joining
            # this thread (its deadline + 5 s).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), timeout=_STOP_TIMEOUT_S)
            # Let every batch's outcome land (a failure goes to retry, then to the spill).
            if self._settling:
                await asyncio.wait(list(self._settling), timeout=1.0)
            # A batch the stopped client will never answer for (the broker went away
            # with it in flight) is failed here, so it reaches the spill, not nowhere.
            unsettled = list(self._settling)
            for task in unsettled:
                task.cancel()
            await asyncio.gather(*unsettled, return_exceptions=True)

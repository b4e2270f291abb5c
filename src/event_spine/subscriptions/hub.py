"""LiveHub: the live half of every SSE connection of a server, on shared consumers.

Why: with one consumer per connection (``subscribe()``), 100 SSE clients reading a
20,000-event partition took `spine serve` to 2.1 GiB peak RSS, 20.6 MiB per
connection (2026-12-03, load 8): each consumer decoded its own copy of every fetched
record (the local broker answers one fetch with the whole partition from the
position, tracemalloc: 17 MiB of ConsumerRecords per consumer). Here each followed
partition has one head consumer shared by every follower, plus one history consumer
while some follower is behind it (readers.py): at most two consumers per partition,
whatever the number of connections, each fetch decoded once.

A follower joins after its catch-up from the store (``after`` = the last position
it was sent, or ``from_end``); the hub feeds its mailbox from there on, in order,
until it overflows (full for ``stall_s``), its reader fails, or the hub closes:
``Follower.ended`` says which. A partition nobody followed for ``idle_close_s``
closes its consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from event_spine.kafka.clients import make_consumer
from event_spine.kafka.keys import partition_of
from event_spine.kafka.settings import KafkaSettings
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.watermarks import high_watermarks, topic_partitions
from event_spine.subscriptions.follower import Follower
from event_spine.subscriptions.readers import Head, History, Ring


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """The hub's bounds (units in the names)."""

    #: How long a lagging follower's full mailbox is waited for before it overflows.
    stall_s: float = 10.0
    #: Records the head keeps for newcomers at most, and about this many bytes.
    ring_records: int = 2048
    ring_bytes: int = 8 * 2**20
    #: Records taken from a consumer at once (bounds what one read materializes).
    max_records: int = 500
    poll_timeout_ms: int = 200
    fetch_max_wait_ms: int = 100
    max_partition_fetch_bytes: int = 2**20
    #: A partition without followers keeps its consumer this long (reconnects reuse it).
    idle_close_s: float = 30.0
    #: A history reader without followers waits this long (paused) for the next one.
    history_linger_s: float = 5.0
    metadata_timeout_s: float = 10.0


@dataclass(slots=True)
class LiveStats:
    """What the hub holds, for tests and inspection."""

    consumers_open: int = 0
    consumers_started: int = 0
    #: Followers moved from the head to the history reader (fell behind, or joined late).
    fell_behind: int = 0


class PartitionTail:
    """One followed partition: its head, and its history reader while one is needed."""

    def __init__(self, hub: LiveHub, partition: int) -> None:
        self.hub = hub
        self.tp = TopicPartition(hub.topic, partition)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: Head | None = None
        self.history: History | None = None
        self.closed = False
        self._history_task: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(), name=f"live-head-{partition}")

    @property
    def count(self) -> int:
        """Followers fed now."""
        head = self.head.followers.count if self.head is not None else 0
        return head + (self.history.count if self.history is not None else 0)

    def join(self, f: Follower) -> None:
        """Feed ``f`` from the head, or from the history reader when it is behind."""
        assert self.head is not None  # ready
        if not self.head.try_join(f):
            self.fell_behind(f)

    def fell_behind(self, f: Follower) -> None:
        """``f`` needs records older than the head's ring: the history reader's."""
        self.hub.stats.fell_behind += 1
        if self.history is None:
            assert self.head is not None
            self.history = History(self.tp, self.head, self.hub.options.stall_s)
            self._history_task = asyncio.create_task(
                self._run_history(self.history), name=f"live-history-{self.tp.partition}"
            )
        self.history.pending.append(f)
        self.history.arrived.set()

    def leave(self, f: Follower) -> None:
        """Forget ``f`` (its connection ended)."""
        if self.head is not None:
            self.head.followers.remove(f)
        if self.history is not None:
            self.history.remove(f)

    async def _run(self) -> None:
        opts = self.hub.options
        consumer: AIOKafkaConsumer | None = None
        failure: BaseException | None = None
        try:
            consumer = await self.hub.open_consumer(self.tp, "earliest")
            start = await self.hub.end_of(consumer, self.tp)
            consumer.seek(self.tp, start)
            ring = Ring(start, opts.ring_records, opts.ring_bytes)
            self.head = Head(consumer, self.tp, start, ring, self.fell_behind)
            self.ready.set_result(None)
            idle_since: float | None = None
            while True:
                await self.head.read(opts.poll_timeout_ms, opts.max_records)
                if self.count:
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= opts.idle_close_s:
                    break
        except Exception as exc:  # told to every follower; a newcomer starts a new tail
            failure = exc
        finally:
            self._close(failure)
            if self._history_task is not None:
                self._history_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._history_task
            if consumer is not None:
                await self.hub.close_consumer(consumer)

    def _close(self, failure: BaseException | None) -> None:
        self.closed = True
        self.hub.forget(self)
        if not self.ready.done():
            self.ready.set_exception(failure or RuntimeError("the live hub closed"))
            self.ready.exception()  # retrieved: the joiners got it
        followers = self.head.followers.all() if self.head is not None else []
        if self.history is not None:
            followers += self.history.followers.all() + self.history.pending
        for f in followers:
            if failure is None:
                f.stop()
            else:
                f.fail(failure)

    async def _run_history(self, history: History) -> None:
        opts = self.hub.options
        consumer: AIOKafkaConsumer | None = None
        try:
            # "none": a position the retention removed fails loudly instead of skipping.
            consumer = await self.hub.open_consumer(self.tp, "none")
            history.consumer = consumer
            while True:
                history.admit()
                if history.count:
                    await history.read(opts.poll_timeout_ms, opts.max_records)
                    continue
                # Empty: linger paused, so a burst of followers falling behind one after
                # another reuses this consumer instead of starting one each.
                consumer.pause(self.tp)
                history.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(opts.history_linger_s):
                        await history.arrived.wait()
                if not history.pending:
                    break  # no await since the check: nobody joined
                consumer.resume(self.tp)
        except Exception as exc:
            for f in history.followers.all() + history.pending:
                f.fail(exc)
        finally:
            if self.history is history:  # no await since the checks above: none joined
                self.history = None
            if consumer is not None:
                await self.hub.close_consumer(consumer)


class LiveHub:
    """Shared live readers of one topic for a whole server process (module docstring)."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, options: LiveOptions | None = None
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.options = options or LiveOptions()
        self.stats = LiveStats()
        self._tails: dict[int, PartitionTail] = {}
        self._partitions: int | None = None
        self._lock = asyncio.Lock()

    @property
    def tails(self) -> dict[int, PartitionTail]:
        """The followed partitions now."""
        return dict(self._tails)

    async def follow(self, f: Follower) -> None:
        """Start feeding ``f``, whose catch-up is done (``after`` set, or ``from_end``)."""
        while True:
            tail = await self._tail(f)
            await asyncio.shield(tail.ready)  # a joiner that leaves must not cancel it
            if f.gone:
                return
            if not tail.closed:  # (closed while we waited: a new tail)
                tail.join(f)
                return

    def leave(self, f: Follower) -> None:
        """``f``'s connection ended: no more offers, and forget it."""
        f.mailbox.close()
        if self._partitions is None:
            return
        tail = self._tails.get(partition_of(f.ctx.tenant_id, f.stream_id, self._partitions))
        if tail is not None:
            tail.leave(f)

    def forget(self, tail: PartitionTail) -> None:
        """``tail`` closed."""
        if self._tails.get(tail.tp.partition) is tail:
            del self._tails[tail.tp.partition]

    async def close(self) -> None:
        """Stop every reader (their followers end)."""
        tails = list(self._tails.values())
        for tail in tails:
            tail.task.cancel()
        await asyncio.gather(*(t.task for t in tails), return_exceptions=True)

    async def _tail(self, f: Follower) -> PartitionTail:
        if self._partitions is None:
            async with self._lock:
                if self._partitions is None:
                    self._partitions = await self._count_partitions()
        partition = partition_of(f.ctx.tenant_id, f.stream_id, self._partitions)
        tail = self._tails.get(partition)
        if tail is None or tail.closed:
            tail = self._tails[partition] = PartitionTail(self, partition)
        return tail

    async def _count_partitions(self) -> int:
        await wait_for_kafka(self.kafka, "live streams")
        consumer = await self.open_consumer(None, "earliest")
        try:
            found = await topic_partitions(consumer, self.topic, self.options.metadata_timeout_s)
        finally:
            await self.close_consumer(consumer)
        return len(found)

    async def open_consumer(self, tp: TopicPartition | None, reset: str) -> AIOKafkaConsumer:
        """A started group-less consumer, assigned ``tp`` (counted in ``stats``)."""
        opts = self.options
        consumer = make_consumer(
            self.kafka,
            client_id=self.kafka.client_id_for("spine-live"),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset=reset,
            fetch_max_wait_ms=opts.fetch_max_wait_ms,
            max_partition_fetch_bytes=opts.max_partition_fetch_bytes,
            fetch_max_bytes=4 * opts.max_partition_fetch_bytes,
        )
        self.stats.consumers_open += 1
        self.stats.consumers_started += 1
        try:
            await consumer.start()
        except BaseException:
            await self.close_consumer(consumer)
            raise
        if tp is not None:
            consumer.assign([tp])
        return consumer

    async def close_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Stop ``consumer`` (counted in ``stats``)."""
        try:
            await consumer.stop()
        finally:
            self.stats.consumers_open -= 1

    async def end_of(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The partition's high watermark now (from a fetch response: watermarks.py)."""
        estimates = await consumer.end_offsets([tp])
        highs = await high_watermarks(
            consumer,
            dict(estimates),
            self.options.metadata_timeout_s,
            self.options.fetch_max_wait_ms,
        )
        return highs[tp]

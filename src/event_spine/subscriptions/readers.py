"""The two readers of a followed partition: the head, and the history reader.

- ``Head`` reads the partition's end for every follower at once and never waits
  for one: a follower whose mailbox is full is moved to the history reader, so a
  slow connection cannot hold back the others. It keeps the last records it read
  (``Ring``) so a newcomer whose catch-up from the store ended a little behind the
  end (the sink's lag) joins without another Kafka read.
- ``History`` serves followers behind the ring (a newcomer far behind, a follower
  that fell behind): it reads from the lowest position they need, waits up to
  ``stall_s`` for a full mailbox (then that follower overflows), and hands each
  follower back to the head once it reached the ring. Only lagging followers share
  its pace.

Both feed a follower only records above its ``after`` and move ``after`` past every
record they handled, so a handover neither repeats nor skips (follower.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from event_spine.errors import EventRejected
from event_spine.kafka.keys import kafka_key
from event_spine.schemas.wire import EventRecord, decode_record
from event_spine.subscriptions.follower import Follower


def decode(key: bytes | None, value: bytes | None) -> EventRecord | None:
    """The record, or None for one the sink would dead-letter (undecodable, wrong key)."""
    if value is None:
        return None
    try:
        record = decode_record(value)
    except EventRejected:
        return None
    if key != kafka_key(record.routing.tenant_id, record.stream_id):
        return None
    return record


class _Undecoded:
    pass


_UNDECODED = _Undecoded()


@dataclass(slots=True)
class Entry:
    """One record the head read; decoded at most once, when a follower wants it."""

    offset: int
    key: bytes | None
    value: bytes | None
    record: EventRecord | _Undecoded | None = _UNDECODED

    def decoded(self) -> EventRecord | None:
        """The record (cached), or None when the sink would dead-letter it."""
        if isinstance(self.record, _Undecoded):
            self.record = decode(self.key, self.value)
        return self.record


class Ring:
    """The head's last records: at most ``max_records`` and about ``max_bytes``."""

    def __init__(self, first: int, max_records: int, max_bytes: int) -> None:
        #: Every record from ``first`` up to the head's position is held.
        self.first = first
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._entries: deque[Entry] = deque()
        self._bytes = 0

    def append(self, entry: Entry) -> None:
        """Hold ``entry``; forget the oldest ones beyond the bounds."""
        self._entries.append(entry)
        self._bytes += len(entry.value or b"") + len(entry.key or b"")
        while len(self._entries) > self.max_records or (
            self._bytes > self.max_bytes and len(self._entries) > 1
        ):
            old = self._entries.popleft()
            self._bytes -= len(old.value or b"") + len(old.key or b"")
            self.first = old.offset + 1

    def above(self, offset: int) -> Iterator[Entry]:
        """The held entries above ``offset``, in order."""
        return (e for e in self._entries if e.offset > offset)


class Records(Protocol):
    """What a reader needs of its consumer (an AIOKafkaConsumer assigned one partition)."""

    async def getmany(self, *partitions: Any, timeout_ms: int, max_records: int) -> Any: ...
    def highwater(self, partition: Any) -> int | None: ...
    def seek(self, partition: Any, offset: int) -> None: ...


class _Followers:
    """Followers by Kafka key (one key per tenant and stream), counted."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, list[Follower]] = {}
        self.count = 0

    def add(self, f: Follower) -> None:
        self.by_key.setdefault(f.kafka_key, []).append(f)
        self.count += 1

    def remove(self, f: Follower) -> bool:
        group = self.by_key.get(f.kafka_key)
        if group is None or f not in group:
            return False
        group.remove(f)
        if not group:
            del self.by_key[f.kafka_key]
        self.count -= 1
        return True

    def all(self) -> list[Follower]:
        return [f for group in self.by_key.values() for f in group]


class Head:
    """The partition's end, for every follower that keeps up (module docstring)."""

    def __init__(
        self,
        consumer: Records,
        tp: Any,
        start: int,
        ring: Ring,
        fell_behind: Callable[[Follower], None],
    ) -> None:
        self.consumer = consumer
        self.tp = tp
        #: The next offset to read: every record below it was dispatched.
        self.position = start
        self.ring = ring
        self.followers = _Followers()
        self._fell_behind = fell_behind

    def end(self) -> int:
        """The partition's end as last seen (a fetch response's high watermark)."""
        return max(self.position, self.consumer.highwater(self.tp) or 0)

    def try_join(self, f: Follower) -> bool:
        """Take ``f`` if it is within the ring (sending it the ring's records above its
        ``after`` first); False when it is behind the ring or its mailbox filled up."""
        if f.from_end:
            f.after, f.from_end = self.end() - 1, False
        elif f.after + 1 < self.ring.first:
            return False
        for entry in self.ring.above(f.after):
            if entry.key != f.kafka_key:
                continue
            record = entry.decoded()
            event = None if record is None else f.candidate(record, entry.offset)
            if event is None:
                f.after = entry.offset
            elif f.mailbox.offer(event):
                f.delivered(event)
            else:
                return False
        f.after = max(f.after, self.position - 1)
        self.followers.add(f)
        return True

    async def read(self, timeout_ms: int, max_records: int) -> None:
        """One fetch, dispatched without waiting for anyone."""
        batch = await self.consumer.getmany(self.tp, timeout_ms=timeout_ms, max_records=max_records)
        for rec in batch.get(self.tp, ()):
            self._dispatch(Entry(rec.offset, rec.key, rec.value))

    def _dispatch(self, entry: Entry) -> None:
        self.ring.append(entry)
        group = self.followers.by_key.get(entry.key) if entry.key is not None else None
        if group:
            record = entry.decoded()
            for f in list(group):
                if f.gone:
                    self.followers.remove(f)
                elif entry.offset > f.after:
                    self._offer(f, record, entry.offset)
        self.position = entry.offset + 1

    def _offer(self, f: Follower, record: EventRecord | None, offset: int) -> None:
        event = None if record is None else f.candidate(record, offset)
        if event is None:
            f.after = offset
        elif f.mailbox.offer(event):
            f.delivered(event)
        else:  # too slow for the end: the history reader resumes it after ``f.after``
            self.followers.remove(f)
            self._fell_behind(f)


class History:
    """Followers behind the head's ring, read at their own pace (module docstring)."""

    def __init__(self, tp: Any, head: Head, stall_s: float) -> None:
        #: Set by the task that opened it, before the first ``admit``.
        self.consumer: Records | None = None
        self.tp = tp
        self.head = head
        self.stall_s = stall_s
        self.pending: list[Follower] = []
        #: Set when a follower is added to ``pending``.
        self.arrived = asyncio.Event()
        self.followers = _Followers()
        self.position: int | None = None
        #: Every record up to here was dispatched to every follower (since the last seek).
        self.done = -1

    @property
    def count(self) -> int:
        """Followers served or waiting to be."""
        return self.followers.count + len(self.pending)

    def admit(self) -> None:
        """Take the pending followers, seeking back to the lowest offset they need."""
        if not self.pending:
            return
        for f in self.followers.all():
            f.after = max(f.after, self.done)  # ``done`` is about to move back
        target = min(f.after + 1 for f in self.pending)
        # Seek back for an earlier need; and forward when nobody is served (after an
        # idle spell the old position may be far below every newcomer).
        if self.position is None or target < self.position or not self.followers.count:
            assert self.consumer is not None
            self.consumer.seek(self.tp, target)
            self.position, self.done = target, target - 1
        for f in self.pending:
            self.followers.add(f)
        self.pending.clear()

    async def read(self, timeout_ms: int, max_records: int) -> None:
        """One fetch, dispatched (waiting for full mailboxes), then handovers."""
        assert self.consumer is not None
        batch = await self.consumer.getmany(self.tp, timeout_ms=timeout_ms, max_records=max_records)
        for rec in batch.get(self.tp, ()):
            group = self.followers.by_key.get(rec.key) if rec.key is not None else None
            if group:
                record = decode(rec.key, rec.value)
                for f in list(group):
                    if not f.gone and rec.offset > f.after:
                        await self._deliver(f, record, rec.offset)
            self.done, self.position = rec.offset, rec.offset + 1
        self._hand_over()

    async def _deliver(self, f: Follower, record: EventRecord | None, offset: int) -> None:
        event = None if record is None else f.candidate(record, offset)
        if event is None:
            f.after = offset
            return
        while not f.mailbox.offer(event):
            if f.gone:
                return
            if not await f.mailbox.wait_space(self.stall_s):
                f.overflow()
                return
        f.delivered(event)

    def _hand_over(self) -> None:
        for f in self.followers.all():
            if f.gone:
                self.followers.remove(f)
                continue
            f.after = max(f.after, self.done)
            if self.head.try_join(f):
                self.followers.remove(f)

    def remove(self, f: Follower) -> None:
        """Forget ``f`` (it left)."""
        if f in self.pending:
            self.pending.remove(f)
        self.followers.remove(f)

"""The stored half of a subscription, and the seam bookkeeping both halves share.

``catch_up`` pages one stream from the store in position order; ``Seam`` remembers
what was delivered (the last position per stream, recent event ids) so the live half
neither repeats nor skips. Used by ``subscribe()`` (its own consumer) and by the
SSE endpoint (the server's shared ``LiveHub``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from event_spine.errors import EventRejected, UnknownCursor
from event_spine.kafka.keys import kafka_key
from event_spine.schemas.context import RequestContext
from event_spine.schemas.query import MAX_PAGE, EventQuery, Position, encode_event_cursor
from event_spine.schemas.wire import StoredEvent, decode_record
from event_spine.services.event_stream import EventStreamService
from event_spine.subscriptions.filters import SubscriptionFilter


class RecentIds:
    """The last ``capacity`` ids seen, for an O(1) "seen before?" test."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False when it was already remembered."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True


@dataclass(slots=True)
class Seam:
    """What was delivered, so the live phase neither repeats nor skips."""

    ctx: RequestContext
    event_filter: SubscriptionFilter
    live_from: dict[int, int]
    ids: RecentIds
    last_position: dict[str, int] = field(default_factory=dict)

    def accept_stored(self, event: StoredEvent) -> bool:
        """Catch-up: note the position; deliver unless filtered out or seen."""
        self.last_position[event.stream_id] = event.position
        return self.event_filter.matches(event.record) and self.ids.add(event.event_id)

    def _behind(self, stream_id: str, partition: int, offset: int) -> bool:
        """Delivered already (caught-up stream), or older than the live start."""
        last = self.last_position.get(stream_id)
        if last is not None:
            return offset <= last
        return offset < self.live_from[partition]

    def accept_live(
        self, partition: int, offset: int, key: bytes | None, value: bytes
    ) -> StoredEvent | None:
        """Live: decode, keep the caller's scope, filter, then dedupe at the seam."""
        try:
            record = decode_record(value)
        except EventRejected:
            return None
        if record.routing.key() != self.ctx.key():
            return None  # never another scope's events, whatever the filter
        if key != kafka_key(record.routing.tenant_id, record.stream_id):
            return None
        if self._behind(record.stream_id, partition, offset):
            return None
        self.last_position[record.stream_id] = offset
        if not self.event_filter.matches(record) or not self.ids.add(record.event_id):
            return None
        return StoredEvent(record, offset)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where one stream's catch-up starts: after ``last_seen`` (seen at ``position``)."""

    stream_id: str
    last_seen: str | None
    position: int | None


async def catch_up(
    service: EventStreamService, resume: Resume, seam: Seam, page_size: int
) -> AsyncIterator[StoredEvent]:
    """The stored events of ``resume.stream_id`` after the resume point, in order.

    Afterwards ``seam.last_position[stream_id]`` is the last position read (-1: none):
    every event of the stream at or below it was considered.
    """
    stream_id, last_seen = resume.stream_id, resume.last_seen
    # From here on the stream is "caught up": live records below this are repeats.
    seam.last_position[stream_id] = -1
    if last_seen is not None:
        anchor = await service.get(last_seen)  # None for an id of another scope too
        if anchor is not None and anchor.stream_id == stream_id:
            seam.last_position[stream_id] = anchor.position
        elif resume.position is not None:
            seam.last_position[stream_id] = resume.position
            async for event in _after_position(service, stream_id, resume.position, page_size):
                if seam.accept_stored(event):
                    yield event
            return
        else:
            raise UnknownCursor(stream_id, last_seen)
    while page := await service.list_after(stream_id, last_seen, page_size):
        for event in page:
            if seam.accept_stored(event):
                yield event
        last_seen = page[-1].event_id


async def _after_position(
    service: EventStreamService, stream_id: str, position: int, page_size: int
) -> AsyncIterator[StoredEvent]:
    """Stored events of a stream above ``position`` (a query cursor made for it)."""
    cursor = await service.cursor(stream_id)
    if cursor is None or cursor.position <= position:
        return  # nothing stored after it yet: the live phase delivers the rest
    after: str | None = encode_event_cursor(
        service.ctx.scope, Position(stream_id, position), descending=False
    )
    while after is not None:
        page = await service.query(
            EventQuery(stream_id=stream_id, after=after, limit=min(page_size, MAX_PAGE))
        )
        for event in page.events:
            yield event
        after = page.next_cursor

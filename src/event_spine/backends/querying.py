"""The read side beyond ``list_after``: queries, stream listing and type counts.

``QueryReads`` (a base of EventStoreBase) answers them correctly over primitives
every backend has (``_load_cursor``, ``_load_event``, ``_load_slice``, which
defaults to ``_load_range``) plus ``_load_streams`` (the scope's watermarks by
stream id). Type and time filters are then applied here, after reading: a page
examines at most ``SCAN_BUDGET`` events and may come back short with a cursor.
A backend that can filter, order or count natively overrides ``_scan_stream``,
``_query_stream``, ``_query_prefix`` or ``_count_types`` (the cost of each is in
docs/backends.md).

The watermark bounds every read exactly as in ``list_after``: a stream is read only
up to the position of its watermark, so a cursor never passes an event that becomes
visible later. Scope: every key is built from the caller's scope; a cursor carries
a fingerprint of the scope it was given to (schemas.query) and a plain event id is
resolved within the caller's scope only.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Final

from event_spine.backends.keys import ScopeKey, StreamCursor, StreamKey
from event_spine.errors import ScopeViolation, UnknownCursor
from event_spine.schemas.query import (
    MAX_PAGE,
    EventPage,
    EventQuery,
    Position,
    StreamPage,
    StreamSummary,
    check_list_streams,
    decode_event_cursor,
    decode_stream_cursor,
    encode_event_cursor,
    encode_stream_cursor,
)
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

#: Events one page examines at most when filters run after reading (the generic
#: path): a selective filter on a long stream then costs several short pages instead
#: of one unbounded read. 10 reads of MAX_PAGE.
SCAN_BUDGET: Final = 10 * MAX_PAGE
#: Streams one prefix page visits at most (each costs a read on the generic path).
STREAMS_PER_PAGE: Final = 100
#: Below every position (positions are Kafka offsets, >= 0; list_after's start).
BEFORE_ALL: Final = -1


@dataclass(frozen=True, slots=True)
class Scan:
    """What reading one stream for a page found.

    ``last``: the last position examined (in the query's direction), None if none;
    ``done``: nothing visible is left to examine in that direction.
    """

    events: list[StoredEvent]
    last: int | None
    done: bool


@dataclass(frozen=True, slots=True)
class PrefixScan:
    """What reading a prefix for a page found: ``last`` is where the next page resumes."""

    events: list[StoredEvent]
    last: Position | None
    more: bool


def bounds(q: EventQuery, start: int | None, upto: int) -> tuple[int, int]:
    """(low, high): the positions a stream scan may return, ``low < p <= high``."""
    if q.descending:
        return BEFORE_ALL, upto if start is None else min(upto, start - 1)
    return (BEFORE_ALL if start is None else start), upto


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[low, high) of the stream ids starting with ``prefix`` in byte order (high None:
    unbounded). Stream ids are ASCII, so the successor of the last character exists."""
    if not prefix:
        return "", None
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def pick_streams(
    found: Iterable[StreamCursor], prefix: str, after: str | None, limit: int, descending: bool
) -> list[StreamCursor]:
    """``_load_streams`` over watermarks read unordered: filter, order, cut."""
    mine = sorted(
        (c for c in found if c.stream_id.startswith(prefix)),
        key=lambda c: c.stream_id,
        reverse=descending,
    )
    if after is not None:
        mine = [c for c in mine if (c.stream_id < after if descending else c.stream_id > after)]
    return mine[:limit]


class QueryReads:
    """query / list_streams / count_event_types over the store's primitives."""

    #: Events a generic page examines at most (a class attribute: tests lower it).
    scan_budget: ClassVar[int] = SCAN_BUDGET

    async def query(self, scope: Scope, q: EventQuery) -> EventPage:
        """One page of the visible events ``q`` selects in ``scope`` (see schemas.query)."""
        start = await self._query_start(scope, q)
        if q.stream_id is None:
            found = await self._query_prefix(scope, q, start)
        else:
            key = StreamKey.of(scope, q.stream_id)
            scan = await self._query_stream(key, q, None if start is None else start.position)
            last = None if scan.last is None else Position(q.stream_id, scan.last)
            found = PrefixScan(scan.events, last, more=not scan.done)
        resume = found.last or start
        return EventPage(
            found.events,
            encode_event_cursor(scope, found.last, q.descending)
            if found.more and found.last
            else None,
            None if resume is None else encode_event_cursor(scope, resume, q.descending),
        )

    async def list_streams(
        self, scope: Scope, prefix: str | None = None, limit: int = 100, after: str | None = None
    ) -> StreamPage:
        """Up to ``limit`` streams of ``scope`` (starting with ``prefix``) in id order."""
        check_list_streams(prefix, limit)
        after_id = decode_stream_cursor(scope, after)
        found = await self._load_streams(
            scope.key(), prefix or "", after_id, limit + 1, descending=False
        )
        page = found[:limit]
        summaries = [StreamSummary(c.stream_id, c.position, c.last_event_id) for c in page]
        more = len(found) > limit
        return StreamPage(
            summaries, encode_stream_cursor(scope, page[-1].stream_id) if more else None
        )

    async def count_event_types(self, scope: Scope, stream_id: str) -> dict[str, int]:
        """How many visible events of each type the stream holds (``{}``: none)."""
        EventQuery(stream_id=stream_id)  # validates the id, naming `stream_id`
        return await self._count_types(StreamKey.of(scope, stream_id))

    async def _query_start(self, scope: Scope, q: EventQuery) -> Position | None:
        """Where ``q.after`` resumes: a decoded cursor, or a plain event id's place."""
        position = decode_event_cursor(scope, q)
        if position is not None or q.after is None or q.stream_id is None:
            return position
        event = await self._load_event(scope.key(), q.after)
        if event is None:
            raise UnknownCursor(q.stream_id, q.after)
        if event.record.routing.key() != scope.key():
            raise ScopeViolation(f"Event {q.after!r} does not belong to {scope.describe()}")
        if event.stream_id != q.stream_id:
            raise UnknownCursor(q.stream_id, q.after)
        return Position(q.stream_id, event.position)

    async def _query_stream(self, key: StreamKey, q: EventQuery, start: int | None) -> Scan:
        """One stream's page: its watermark, then a scan below it."""
        cursor = await self._load_cursor(key)
        if cursor is None:
            return Scan([], None, done=True)
        return await self._scan_stream(key, q, start, cursor.position, q.limit)

    async def _scan_stream(
        self, key: StreamKey, q: EventQuery, start: int | None, upto: int, limit: int
    ) -> Scan:
        """Up to ``limit`` events of ``key`` matching ``q``, after ``start`` in the
        query's direction and at most ``upto`` (the watermark read). Generic: reads
        slices and filters here, examining at most SCAN_BUDGET events."""
        low, high = bounds(q, start, upto)
        out: list[StoredEvent] = []
        last: int | None = None
        examined = 0
        while low < high and examined < self.scan_budget:
            size = min(MAX_PAGE, self.scan_budget - examined) if q.filtered else limit - len(out)
            batch = await self._load_slice(key, low, high, size, q.descending)
            for event in batch:
                last = event.position
                if q.matches(event):
                    out.append(event)
                    if len(out) == limit:
                        return Scan(out, last, done=False)
            examined += len(batch)
            if len(batch) < size or last is None:
                return Scan(out, last, done=True)
            low, high = (low, last - 1) if q.descending else (last, high)
        return Scan(out, last, done=low >= high)

    async def _query_prefix(
        self, scope: Scope, q: EventQuery, start: Position | None
    ) -> PrefixScan:
        """Streams in id order (reversed when descending), each from its start.

        Generic: lists the streams with ``_load_streams`` and scans each; visits at
        most STREAMS_PER_PAGE streams per page.
        """
        out: list[StoredEvent] = []
        last = start
        after_stream = None
        if start is not None:
            after_stream = start.stream_id
            key = StreamKey.of(scope, start.stream_id)
            scan = await self._query_stream(key, q, start.position)
            out.extend(scan.events)
            if not scan.done:
                return PrefixScan(out, Position(start.stream_id, _or(scan.last, start)), more=True)
            last = self._finished(start.stream_id, q, await self._load_cursor(key), start)
        visited = 0
        while visited < STREAMS_PER_PAGE:
            wanted = STREAMS_PER_PAGE - visited
            streams = await self._load_streams(
                scope.key(), q.stream_prefix or "", after_stream, wanted, q.descending
            )
            for cursor in streams:
                visited += 1
                key = StreamKey.of(scope, cursor.stream_id)
                scan = await self._scan_stream(key, q, None, cursor.position, q.limit - len(out))
                out.extend(scan.events)
                if not scan.done and scan.last is not None:
                    return PrefixScan(out, Position(cursor.stream_id, scan.last), more=True)
                last = self._finished(cursor.stream_id, q, cursor, None)
                if len(out) >= q.limit:
                    return PrefixScan(out, last, more=True)
            if len(streams) < wanted:
                return PrefixScan(out, last, more=False)
            after_stream = streams[-1].stream_id
        return PrefixScan(out, last, more=True)

    @staticmethod
    def _finished(
        stream_id: str, q: EventQuery, cursor: StreamCursor | None, start: Position | None
    ) -> Position:
        """The cursor past a stream read to its end: after its watermark (ascending;
        later events of it are still read), before its first position (descending)."""
        if q.descending:
            return Position(stream_id, BEFORE_ALL)
        if cursor is not None:
            return Position(stream_id, cursor.position)
        return Position(stream_id, BEFORE_ALL if start is None else start.position)

    async def _count_types(self, key: StreamKey) -> dict[str, int]:
        """Generic: read the whole stream up to its watermark once."""
        cursor = await self._load_cursor(key)
        counts: collections.Counter[str] = collections.Counter()
        low = BEFORE_ALL
        while cursor is not None and low < cursor.position:
            batch = await self._load_slice(key, low, cursor.position, MAX_PAGE, descending=False)
            counts.update(e.record.event_type for e in batch)
            if len(batch) < MAX_PAGE:
                break
            low = batch[-1].position
        return dict(counts)

    async def _load_slice(
        self, key: StreamKey, low: int, high: int, limit: int, descending: bool
    ) -> list[StoredEvent]:
        """Up to ``limit`` events with ``low < position <= high``, in the direction.

        Default: ``_load_range``; descending it reads the range ascending and keeps
        the last ``limit`` (a read of the whole range: backends override it).
        """
        if not descending:
            return await self._load_range(key, low, high, limit)
        tail: collections.deque[StoredEvent] = collections.deque(maxlen=limit)
        while low < high:
            batch = await self._load_range(key, low, high, MAX_PAGE)
            tail.extend(batch)
            if len(batch) < MAX_PAGE:
                break
            low = batch[-1].position
        return list(reversed(tail))

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        """Up to ``limit`` watermarks of the scope's streams whose id starts with
        ``prefix``, in byte order of the id (reversed when descending), strictly after
        ``after`` in that order."""
        raise NotImplementedError(f"{type(self).__name__} must implement _load_streams")

    # The primitives EventStoreBase declares (abstract there).
    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        raise NotImplementedError

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        raise NotImplementedError

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        raise NotImplementedError


def _or(last: int | None, start: Position) -> int:
    return start.position if last is None else last

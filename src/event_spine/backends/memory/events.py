"""EventStore in dicts: for users' tests and the timeline's fast path."""

from __future__ import annotations

import asyncio
import bisect

from event_spine.backends.base import (
    AppendResult,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    conflicts_among,
    without_conflicts,
)
from event_spine.backends.memory.config import MemoryConfig
from event_spine.backends.querying import pick_streams
from event_spine.errors import StorePermanentError
from event_spine.schemas.wire import EventRecord, StoredEvent


class MemoryEventStore(EventStoreBase):
    """Keeps everything in dicts; passes the same contract suite as the real backends."""

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self._events: dict[tuple[ScopeKey, str], StoredEvent] = {}
        self._streams: dict[StreamKey, list[StoredEvent]] = {}
        self._cursors: dict[StreamKey, StreamCursor] = {}
        self._lock = asyncio.Lock()

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        written = 0
        repeats: list[tuple[StoredEvent, EventRecord | None]] = []
        async with self._lock:
            for group in groups:
                self._refuse_collisions(group)
            for group in groups:
                stream = self._streams.setdefault(group.key, [])
                scope = group.key.scope_key()
                for event in group.events:
                    stored = self._events.get((scope, event.record.event_id))
                    if stored is not None:
                        repeats.append((event, stored.record))
                        continue
                    self._events[scope, event.record.event_id] = event
                    bisect.insort(stream, event, key=_position)
                    written += 1
            conflicts = conflicts_among(repeats)
            for group in without_conflicts(groups, conflicts):
                last = group.watermark
                current = self._cursors.get(group.key)
                if current is None or last.position > current.position:
                    self._cursors[group.key] = StreamCursor(
                        group.key.stream_id, last.position, last.record.event_id
                    )
        return AppendResult(written, len(repeats) - len(conflicts), tuple(conflicts))

    def _refuse_collisions(self, group: StreamBatch) -> None:
        taken = {e.position: e.event_id for e in self._streams.get(group.key, [])}
        for event in group.events:
            holder = taken.get(event.position)
            if holder is not None and holder != event.event_id:
                raise StorePermanentError(
                    f"Event {event.event_id!r} collides with {holder!r} at stream position "
                    f"{event.position}: were the topic's offsets reset?"
                )

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        return self._cursors.get(key)

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        return self._events.get((scope, event_id))

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        stream = self._streams.get(key, [])
        start = bisect.bisect_right(stream, after_position, key=_position)
        return [e for e in stream[start : start + limit] if e.position <= upto_position]

    async def _load_slice(
        self, key: StreamKey, low: int, high: int, limit: int, descending: bool
    ) -> list[StoredEvent]:
        if not descending:
            return await self._load_range(key, low, high, limit)
        stream = self._streams.get(key, [])
        end = bisect.bisect_right(stream, high, key=_position)
        out = stream[max(0, end - limit) : end][::-1]
        return [e for e in out if e.position > low]

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        mine = (c for k, c in self._cursors.items() if k[:4] == scope)
        return pick_streams(mine, prefix, after, limit, descending)


def _position(event: StoredEvent) -> int:
    return event.position

"""In-memory EventStore: for users' tests and the timeline's fast path. Not durable."""

from __future__ import annotations

import asyncio
import bisect
import copy
from typing import Any

from pydantic import BaseModel, ConfigDict

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
from event_spine.backends.querying import pick_streams
from event_spine.errors import ConcurrentUpdate, StorePermanentError
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord, StoredEvent

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: none (a dict per scope and id, a position-sorted list per stream). One
stream: a binary search to the cursor, then type and time filters in Python over the
positions read (at most 10,000 examined per page, then a short page with a cursor).
Prefix pages and list_streams sort the scope's stream ids on each call. Counts: one
pass over the stream.
"""


class MemoryConfig(BaseModel):
    """The memory backend takes no settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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


class MemoryRegistryStore:
    """RegistryStore in a dict (tests; nothing survives the process)."""

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self._routes: dict[RouteKey, ResourceRoute] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        return self._routes.get(key)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""
        return [
            r
            for k, r in self._routes.items()
            if k[:4] == (resource_kind, tenant_id, env, project_id)
        ]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""
        return list(self._routes.values())

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set (no await inside, so atomic on one loop)."""
        current = self._routes.get(route.key())
        if (current.version if current else 0) != expected_version:
            raise ConcurrentUpdate(f"{route.describe()} changed since it was read")
        self._routes[route.key()] = route


class MemoryTabularStore:
    """TabularStore in a dict."""

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self._rows: dict[tuple[tuple[str, str, str, str], str], dict[str, dict[str, Any]]] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    def _table(self, scope: Scope, table: str) -> dict[str, dict[str, Any]]:
        return self._rows.setdefault((scope.key(), table), {})

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (a deep copy, like a real store)."""
        self._table(scope, table)[key] = copy.deepcopy(value)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        value = self._table(scope, table).get(key)
        return copy.deepcopy(value) if value is not None else None

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""
        return self._table(scope, table).pop(key, None) is not None

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""
        rows = self._table(scope, table)
        keys = sorted(k for k in rows if k.startswith(prefix) and k > (after_key or ""))
        return [(k, copy.deepcopy(rows[k])) for k in keys[:limit]]

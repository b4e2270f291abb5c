"""MemoryTimeline: a fast, process-local timeline store bound to one scope.

Not durable. Every call checks the caller's scope first, so a store handed to one
tenant's request handler can never be used with another tenant's, mode's or
project's context (ScopeViolation).
"""

from __future__ import annotations

from event_spine.errors import UnknownCursor
from event_spine.schemas.context import RequestContext
from event_spine.schemas.scope import Scope
from event_spine.timeline.base import TimelineEntry, timeline_stream


class MemoryTimeline:
    """Timelines of one scope in dicts: appends and reads cost microseconds."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._entries: dict[str, list[TimelineEntry]] = {}
        #: name -> entry_id -> index in that timeline (cursor lookups in O(1)).
        self._index: dict[str, dict[str, int]] = {}

    async def append(self, ctx: RequestContext, name: str, entry: TimelineEntry) -> str:
        """Append once: re-appending an entry_id already there is a no-op (like the spine)."""
        ctx.require_same_scope(self.scope)
        timeline_stream(name)  # same name rules as the durable path
        index = self._index.setdefault(name, {})
        if entry.entry_id not in index:
            entries = self._entries.setdefault(name, [])
            index[entry.entry_id] = len(entries)
            entries.append(entry)
        return entry.entry_id

    async def list_after(
        self, ctx: RequestContext, name: str, after_id: str | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """Entries after ``after_id``; an id this timeline never held raises UnknownCursor."""
        ctx.require_same_scope(self.scope)
        entries = self._entries.get(name, [])
        start = 0
        if after_id is not None:
            position = self._index.get(name, {}).get(after_id)
            if position is None:
                raise UnknownCursor(timeline_stream(name), after_id)
            start = position + 1
        return entries[start : start + limit]

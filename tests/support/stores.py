"""Read everything a store holds for some streams (the ground truth of chaos tests)."""

from __future__ import annotations

from event_spine.backends import EventStore
from event_spine.schemas import Scope


async def stored_ids(store: EventStore, scope: Scope, streams: list[str]) -> list[str]:
    """Every stored event id of the streams, paging with list_after."""
    ids: list[str] = []
    for stream in streams:
        last = None
        while page := await store.list_after(scope, stream, last, 1000):
            ids.extend(e.event_id for e in page)
            last = page[-1].event_id
    return ids

"""Read everything a store holds for some streams (the ground truth of chaos tests)."""

from __future__ import annotations

from typing import Any

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


class OpenedStores:
    """Opens stores for a test and closes them all at teardown."""

    def __init__(self) -> None:
        self.stores: list[Any] = []

    async def add(self, store: Any) -> Any:
        await store.open()
        self.stores.append(store)
        return store

    async def close(self) -> None:
        for store in self.stores:
            await store.close()

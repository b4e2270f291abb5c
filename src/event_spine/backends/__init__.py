"""Backends: the EventStore seam and its implementations."""

from event_spine.backends.base import (
    AppendResult,
    EventStore,
    EventStoreBase,
    StreamCursor,
    StreamKey,
)
from event_spine.backends.factory import (
    StoreFactory,
    TabularFactory,
    build_event_store,
    build_registry_store,
    check_route_allowed,
)
from event_spine.backends.memory import MemoryEventStore

__all__ = [
    "AppendResult",
    "EventStore",
    "EventStoreBase",
    "MemoryEventStore",
    "StoreFactory",
    "StreamCursor",
    "StreamKey",
    "TabularFactory",
    "build_event_store",
    "build_registry_store",
    "check_route_allowed",
]

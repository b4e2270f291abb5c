"""Backends: the store seams (``seams``), each backend's ``BackendSpec`` and the factory."""

from event_spine.backends.base import AppendResult, EventStoreBase, StreamCursor, StreamKey
from event_spine.backends.catalog import BACKENDS, check_route_allowed, spec_of
from event_spine.backends.factory import (
    StoreFactory,
    TabularFactory,
    build_event_store,
    build_registry_store,
    build_store,
)
from event_spine.backends.memory.events import MemoryEventStore
from event_spine.backends.seams import EventStore, Migratable, RegistryStore, Row, TabularStore
from event_spine.backends.spec import BackendSpec, StoreClasses

__all__ = [
    "BACKENDS",
    "AppendResult",
    "BackendSpec",
    "EventStore",
    "EventStoreBase",
    "MemoryEventStore",
    "Migratable",
    "RegistryStore",
    "Row",
    "StoreClasses",
    "StoreFactory",
    "StreamCursor",
    "StreamKey",
    "TabularFactory",
    "TabularStore",
    "build_event_store",
    "build_registry_store",
    "build_store",
    "check_route_allowed",
    "spec_of",
]

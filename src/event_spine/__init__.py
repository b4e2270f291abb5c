"""event-spine: fire-and-forget events into Kafka, routed per tenant into durable stores.

The public API is what ``__all__`` lists; everything else may change.

Names are imported on first use (PEP 562), so importing one submodule does not import
every other one: ``spine worker`` imports only what a sink worker needs (a restarted
worker's imports are part of its crash recovery, docs/operations.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from event_spine.backends import (
        AppendResult,
        EventStore,
        MemoryEventStore,
        StoreFactory,
        StreamCursor,
        TabularFactory,
    )
    from event_spine.errors import (
        BackendNotAllowed,
        BackendNotDurable,
        BufferFull,
        ConfigurationError,
        EventRejected,
        EventTooLarge,
        EventValidationError,
        InvalidQuery,
        ProducerClosed,
        RouteNotFound,
        ScopeViolation,
        SpineError,
        StoreLayoutOutdated,
        StorePermanentError,
        StoreUnavailable,
        UnknownCursor,
    )
    from event_spine.producers import (
        EventSpineProducer,
        ProducerSettings,
        emit_event,
        ensure_topic,
        set_default_producer,
    )
    from event_spine.routing import RouteCache, RoutingRegistry, open_registry_store
    from event_spine.schemas import (
        BackendType,
        EventPage,
        EventQuery,
        RequestContext,
        ResourceKind,
        ResourceRoute,
        RouteKey,
        Scope,
        StoredEvent,
        StreamEvent,
        StreamPage,
        StreamSummary,
        request_context,
    )
    from event_spine.services import EventStreamService
    from event_spine.sink_workers import SinkSettings, SinkWorker
    from event_spine.tabular import TabularStoreService

#: Public name -> the module that defines it.
_HOME: dict[str, str] = {
    "AppendResult": "event_spine.backends",
    "BackendNotAllowed": "event_spine.errors",
    "BackendNotDurable": "event_spine.errors",
    "BackendType": "event_spine.schemas",
    "BufferFull": "event_spine.errors",
    "ConfigurationError": "event_spine.errors",
    "EventPage": "event_spine.schemas",
    "EventQuery": "event_spine.schemas",
    "EventRejected": "event_spine.errors",
    "EventSpineProducer": "event_spine.producers",
    "EventStore": "event_spine.backends",
    "EventStreamService": "event_spine.services",
    "EventTooLarge": "event_spine.errors",
    "EventValidationError": "event_spine.errors",
    "InvalidQuery": "event_spine.errors",
    "MemoryEventStore": "event_spine.backends",
    "ProducerClosed": "event_spine.errors",
    "ProducerSettings": "event_spine.producers",
    "RequestContext": "event_spine.schemas",
    "ResourceKind": "event_spine.schemas",
    "ResourceRoute": "event_spine.schemas",
    "RouteCache": "event_spine.routing",
    "RoutingRegistry": "event_spine.routing",
    "open_registry_store": "event_spine.routing",
    "RouteKey": "event_spine.schemas",
    "RouteNotFound": "event_spine.errors",
    "Scope": "event_spine.schemas",
    "ScopeViolation": "event_spine.errors",
    "SinkSettings": "event_spine.sink_workers",
    "SinkWorker": "event_spine.sink_workers",
    "SpineError": "event_spine.errors",
    "StoreFactory": "event_spine.backends",
    "StoreLayoutOutdated": "event_spine.errors",
    "StorePermanentError": "event_spine.errors",
    "StoreUnavailable": "event_spine.errors",
    "StoredEvent": "event_spine.schemas",
    "StreamCursor": "event_spine.backends",
    "StreamEvent": "event_spine.schemas",
    "StreamPage": "event_spine.schemas",
    "StreamSummary": "event_spine.schemas",
    "TabularFactory": "event_spine.backends",
    "TabularStoreService": "event_spine.tabular",
    "UnknownCursor": "event_spine.errors",
    "emit_event": "event_spine.producers",
    "ensure_topic": "event_spine.producers",
    "request_context": "event_spine.schemas",
    "set_default_producer": "event_spine.producers",
}

__all__ = [
    "AppendResult",
    "BackendNotAllowed",
    "BackendNotDurable",
    "BackendType",
    "BufferFull",
    "ConfigurationError",
    "EventPage",
    "EventQuery",
    "EventRejected",
    "EventSpineProducer",
    "EventStore",
    "EventStreamService",
    "EventTooLarge",
    "EventValidationError",
    "InvalidQuery",
    "MemoryEventStore",
    "ProducerClosed",
    "ProducerSettings",
    "RequestContext",
    "ResourceKind",
    "ResourceRoute",
    "RouteCache",
    "RouteKey",
    "RouteNotFound",
    "RoutingRegistry",
    "Scope",
    "ScopeViolation",
    "SinkSettings",
    "SinkWorker",
    "SpineError",
    "StoreFactory",
    "StoreLayoutOutdated",
    "StorePermanentError",
    "StoreUnavailable",
    "StoredEvent",
    "StreamCursor",
    "StreamEvent",
    "StreamPage",
    "StreamSummary",
    "TabularFactory",
    "TabularStoreService",
    "UnknownCursor",
    "emit_event",
    "ensure_topic",
    "open_registry_store",
    "request_context",
    "set_default_producer",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its home module on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'event_spine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # next time without this hook
    return value


def __dir__() -> list[str]:
    """The public names and the subpackages loaded already (not this module's helpers)."""
    loaded = {
        name
        for name, value in globals().items()
        if name.startswith("_")
        or (isinstance(value, type(importlib)) and value.__name__.startswith(f"{__name__}."))
    }
    return sorted(loaded | set(__all__))

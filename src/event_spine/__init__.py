"""event-spine: fire-and-forget events into Kafka, routed per tenant into durable stores.

The public API is what ``__all__`` lists; everything else may change.
"""

from event_spine.backends import (
    AppendResult,
    EventStore,
    MemoryEventStore,
    StoreFactory,
    StreamCursor,
    TabularFactory,
)
from event_spine.consumers import EventStreamService
from event_spine.errors import (
    BackendNotAllowed,
    BackendNotDurable,
    BufferFull,
    ConfigurationError,
    EventRejected,
    EventTooLarge,
    EventValidationError,
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
    RequestContext,
    ResourceKind,
    ResourceRoute,
    RouteKey,
    Scope,
    StoredEvent,
    StreamEvent,
    request_context,
)
from event_spine.sink_workers import SinkSettings, SinkWorker
from event_spine.tabular import TabularStoreService

__all__ = [
    "AppendResult",
    "BackendNotAllowed",
    "BackendNotDurable",
    "BackendType",
    "BufferFull",
    "ConfigurationError",
    "EventRejected",
    "EventSpineProducer",
    "EventStore",
    "EventStreamService",
    "EventTooLarge",
    "EventValidationError",
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
    "TabularFactory",
    "TabularStoreService",
    "UnknownCursor",
    "emit_event",
    "ensure_topic",
    "open_registry_store",
    "request_context",
    "set_default_producer",
]

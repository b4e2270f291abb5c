"""Schemas: events, scopes, contexts, routes and the wire format."""

from event_spine.schemas.context import (
    RequestContext,
    current_context,
    request_context,
    reset_context,
    set_context,
)
from event_spine.schemas.events import EventMetadata, StreamEvent
from event_spine.schemas.formats import ENVS, MODES, PRODUCTION_MODES, SCHEMA_VERSION, Env, Mode
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.query import EventPage, EventQuery, StreamPage, StreamSummary
from event_spine.schemas.routes import (
    BackendType,
    HealthStatus,
    ResourceKind,
    ResourceRoute,
    RouteKey,
    RouteSwitch,
)
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import (
    EventRecord,
    StoredEvent,
    WireRouting,
    decode_record,
    encode_record,
    event_from_record,
    record_from_event,
)

__all__ = [
    "ENVS",
    "MODES",
    "PRODUCTION_MODES",
    "SCHEMA_VERSION",
    "BackendType",
    "Env",
    "EventMetadata",
    "EventPage",
    "EventQuery",
    "EventRecord",
    "HealthStatus",
    "Mode",
    "RequestContext",
    "ResourceKind",
    "ResourceRoute",
    "RouteKey",
    "RouteSwitch",
    "Scope",
    "StoredEvent",
    "StreamEvent",
    "StreamPage",
    "StreamSummary",
    "WireRouting",
    "current_context",
    "decode_record",
    "encode_record",
    "event_from_record",
    "new_event_id",
    "record_from_event",
    "request_context",
    "reset_context",
    "set_context",
]

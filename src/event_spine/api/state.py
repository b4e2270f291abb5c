"""What the handlers share: the open stores, the producer, the authenticator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from event_spine.api.auth import Authenticator
from event_spine.api.settings import ApiSettings
from event_spine.backends.factory import StoreFactory, TabularFactory
from event_spine.observability.lag import LagProbe
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.services.event_stream import EventStreamService
from event_spine.subscriptions.hub import LiveHub, LiveOptions


@dataclass(slots=True)
class ApiCounters:
    """What the API did, for tests and /metrics-style inspection."""

    sse_connections: int = 0
    #: Open SSE responses now (a client that left must bring it back down).
    sse_active: int = 0
    sse_overflows: int = 0
    sse_events_sent: int = 0


@dataclass(slots=True)
class ApiState:
    """Held by the app for its lifetime (opened in its lifespan)."""

    settings: ApiSettings
    registry: RoutingRegistry
    stores: StoreFactory
    auth: Authenticator
    producer: EventSpineProducer | None = None
    lag: LagProbe | None = None
    counters: ApiCounters = field(default_factory=ApiCounters)
    #: Tabular stores (the audit anchors the console's audit check reads).
    tables: TabularFactory = field(default_factory=TabularFactory)
    #: Set when the server begins to stop: live streams end so the shutdown can finish.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: The live half of every SSE connection: shared Kafka readers (closed at shutdown).
    live: LiveHub = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.live = LiveHub(s.kafka, s.topic, LiveOptions(stall_s=s.sse_stall_s))

    def service(self, ctx: RequestContext) -> EventStreamService:
        """The scope-checked reader of ``ctx``."""
        return EventStreamService(ctx, self.registry, self.stores)


def state_of(conn: HTTPConnection) -> ApiState:
    """The app's ApiState."""
    state: ApiState = conn.app.state.api
    return state

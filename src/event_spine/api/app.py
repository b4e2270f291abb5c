"""build_app(): the Starlette application of `spine serve`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from event_spine.api.admin import dead_letters, lag, route_history
from event_spine.api.admin import routes as admin_routes
from event_spine.api.auth import Authenticator
from event_spine.api.keys import KeyStore
from event_spine.api.openapi import openapi_document
from event_spine.api.problems import Problem, problem_handler
from event_spine.api.render import JsonResponse
from event_spine.api.routes import emit, get_event, list_streams, stream_counts, stream_events
from event_spine.api.settings import ApiSettings
from event_spine.api.sse import live
from event_spine.api.state import ApiState
from event_spine.backends.factory import StoreFactory
from event_spine.errors import (
    BrokerUnavailable,
    EventRejected,
    EventValidationError,
    InvalidQuery,
    ProducerError,
    RouteNotFound,
    ScopeViolation,
    SpineError,
    StoreUnavailable,
    UnknownCursor,
)
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry

log = logging.getLogger(__name__)

_STREAM = "/v1/streams/{stream_id:path}"


def _problem_of(exc: Exception) -> Problem:
    """The spine's errors (and Starlette's) as problems; anything else is a 500."""
    match exc:
        case InvalidQuery():
            name = "cursor" if exc.field == "after" else exc.field
            return Problem("invalid-parameter", f"`{name}`: {exc.problem}", parameter=name)
        case UnknownCursor():
            return Problem("unknown-cursor", str(exc))
        case ScopeViolation():
            return Problem("forbidden", str(exc))
        case RouteNotFound():
            return Problem("not-found", str(exc))
        case EventValidationError():
            return Problem("invalid-event", str(exc), field=exc.field)
        case EventRejected():
            return Problem("invalid-event", str(exc))
        case StoreUnavailable() | BrokerUnavailable() | ProducerError():
            return Problem("unavailable", str(exc), headers={"Retry-After": "1"})
        case HTTPException():
            slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "internal")
            detail = "No such route." if exc.status_code == 404 else str(exc.detail)
            return Problem(slug, detail)
    log.exception("unexpected error", exc_info=exc)
    return Problem("internal", "Unexpected error (a bug: the server log has the traceback).")


async def _error_handler(request: Request, exc: Exception) -> Response:
    return _problem_of(exc).response(request.url.path)


async def _openapi(request: Request) -> Response:
    return JsonResponse(request.app.state.openapi)


def build_app(
    settings: ApiSettings,
    registry: RoutingRegistry,
    keys: KeyStore,
    *,
    producer: EventSpineProducer | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The app; ``registry`` and ``keys`` must be open. The app closes its store
    factory (and the lag probe) at shutdown, never the registry, keys or producer.
    ``extra_routes`` mount beside the API (the console: ``console.app``)."""
    state = ApiState(
        settings,
        registry,
        StoreFactory(),
        Authenticator(keys, settings.rate_per_s, settings.rate_burst),
        producer,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.live.close()
            await state.stores.close()
            await state.tables.close()
            if state.lag is not None:
                await state.lag.close()

    app = Starlette(
        routes=[
            Route("/v1/openapi.json", _openapi),
            Route("/v1/streams", list_streams),
            Route(_STREAM + "/events", stream_events),
            Route(_STREAM + "/counts", stream_counts),
            Route(_STREAM + "/live", live),
            Route("/v1/events/{event_id}", get_event),
            Route("/v1/events", emit, methods=["POST"]),
            Route("/v1/admin/routes", admin_routes),
            Route("/v1/admin/routes/history", route_history),
            Route("/v1/admin/dlq", dead_letters),
            Route("/v1/admin/lag", lag),
            *extra_routes,
        ],
        exception_handlers={
            Problem: problem_handler,
            HTTPException: _error_handler,
            SpineError: _error_handler,
            Exception: _error_handler,
        },
        lifespan=lifespan,
    )
    app.state.api = state
    app.state.openapi = openapi_document()
    return app

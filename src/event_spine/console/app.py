"""The served app: the HTTP API with the operator console mounted under ``/console``.

The console depends on the API (its state, handlers and key checks), never the other
way round, so the API package stays usable without it and no import cycle forms.
"""

from __future__ import annotations

from starlette.applications import Starlette

from event_spine.api.app import build_app
from event_spine.api.keys import KeyStore
from event_spine.api.settings import ApiSettings
from event_spine.console.pages import console_routes
from event_spine.console.session import Sessions
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry


def build_app_with_console(
    settings: ApiSettings,
    registry: RoutingRegistry,
    keys: KeyStore,
    *,
    producer: EventSpineProducer | None = None,
) -> Starlette:
    """``build_app`` plus the console's pages and its in-memory login sessions."""
    app = build_app(settings, registry, keys, producer=producer, extra_routes=console_routes())
    app.state.console_sessions = Sessions()
    return app

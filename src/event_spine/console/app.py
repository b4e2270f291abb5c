"""The served app: the HTTP API with the operator console mounted under ``/console``.

The console depends on the API (its state, handlers and key checks), never the other
way round, so the API package stays usable without it and no import cycle forms.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette

from event_spine.api.app import build_app
from event_spine.api.keys import KeyStore
from event_spine.api.settings import ApiSettings
from event_spine.console.pages import console_routes
from event_spine.console.session import Sessions
from event_spine.dlq.ledger import ReplayLedger
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry


def build_app_with_console(
    settings: ApiSettings,
    registry: RoutingRegistry,
    keys: KeyStore,
    *,
    ledger: ReplayLedger,
    producer: EventSpineProducer | None = None,
) -> Starlette:
    """``build_app`` plus the console's pages and its in-memory login sessions.

    ``ledger`` (open; the caller closes it, as ``registry`` and ``keys``) records the
    dead letters the console replays (``dlq.ledgers.replay_ledger_for`` gives the one
    in the registry's database, which `spine dlq replay` shares).
    """
    app = build_app(settings, registry, keys, producer=producer, extra_routes=console_routes())
    app.state.console_sessions = Sessions()
    app.state.console_ledger = ledger
    # One replay at a time per server: a double submit then finds the first one's
    # ledger rows and publishes nothing twice.
    app.state.console_replaying = asyncio.Lock()
    return app

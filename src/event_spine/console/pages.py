"""console_routes(): the console's routes, mounted by build_app under ``/console``."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

# Not `from event_spine.console import views`: that form imports the package, whose
# __init__ imports this module (an import cycle tests/unit/test_import_cycles.py refuses).
import event_spine.console.audit_chain as audit_chain  # noqa: PLR0402
import event_spine.console.dead_letters as dead_letters  # noqa: PLR0402
import event_spine.console.views as views  # noqa: PLR0402

_STATIC = Path(__file__).parent / "static"


def console_routes() -> list[BaseRoute]:
    """Every console route (server-rendered pages, a little JS from ``static/``)."""
    return [
        Route("/console", views.home),
        Route("/console/login", views.login_form, methods=["GET"]),
        Route("/console/login", views.login, methods=["POST"]),
        Route("/console/logout", views.logout, methods=["POST"]),
        Route("/console/routes", views.routes_page),
        Route("/console/routes/switch", views.switch, methods=["POST"]),
        Route("/console/streams", views.streams_page),
        Route("/console/streams/{stream_id:path}/live", views.live),
        Route("/console/streams/{stream_id:path}", views.stream_page),
        Route("/console/events/{event_id}", views.event_page),
        Route("/console/lag", views.lag_page),
        Route("/console/lag.json", views.lag_json),
        Route("/console/dlq", dead_letters.dlq_page),
        Route("/console/dlq/replay", dead_letters.dlq_replay, methods=["POST"]),
        Route("/console/dlq/{partition:int}/{offset:int}", dead_letters.dlq_record),
        Route("/console/audit", audit_chain.audit_page),
        Mount("/console/static", StaticFiles(directory=_STATIC), name="console-static"),
    ]

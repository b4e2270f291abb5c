"""JSON shapes of events and pages (the schemas in openapi.py describe the same)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from starlette.responses import Response

from event_spine.schemas.wire import StoredEvent


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event as the API returns it: its position, then the wire fields."""
    out: dict[str, Any] = msgspec.to_builtins(event.record)
    out["position"] = event.position
    return out


class JsonResponse(Response):
    """orjson-encoded JSON (datetimes as RFC 3339)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content``."""
        return orjson.dumps(content, default=str)

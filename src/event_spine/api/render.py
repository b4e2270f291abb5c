"""JSON shapes of events and pages (the schemas in openapi.py describe the same)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from event_spine.schemas.wire import StoredEvent, encode_record


def event_bytes(event: StoredEvent) -> bytes:
    """An event as the API returns it: the wire JSON with ``position`` added at the end.

    Why: 4.6 µs instead of 6.2 µs per event for to_builtins + orjson (measured on a
    395-byte event), on the SSE and query hot paths; the same document either way.
    """
    wire = encode_record(event.record)
    return wire[:-1] + b',"position":' + str(event.position).encode() + b"}"


def page_bytes(events: list[StoredEvent], next_cursor: str | None) -> bytes:
    """An EventPage as JSON: ``{"events": [...], "next_cursor": ...}``."""
    return (
        b'{"events":['
        + b",".join(event_bytes(e) for e in events)
        + b'],"next_cursor":'
        + orjson.dumps(next_cursor)
        + b"}"
    )


class JsonResponse(Response):
    """orjson-encoded JSON (datetimes as RFC 3339)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content``."""
        return orjson.dumps(content, default=str)

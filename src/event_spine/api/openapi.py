"""The OpenAPI 3.1 document of the API, written by hand (served at /v1/openapi.json).

A test validates it (openapi-spec-validator) and fuzzes the server against it
(schemathesis); keep it in step with routes.py, admin.py and sse.py.
"""

from __future__ import annotations

from typing import Any

from event_spine.api.problems import MEDIA_TYPE, PROBLEM_TYPES
from event_spine.dlq.pages import DEFAULT_LIMIT as DLQ_DEFAULT_LIMIT
from event_spine.dlq.pages import MAX_LIMIT as DLQ_MAX_LIMIT
from event_spine.schemas.formats import (
    EVENT_ID_PATTERN,
    EVENT_TYPE_PATTERN,
    STREAM_ID_PATTERN,
)
from event_spine.schemas.query import MAX_EVENT_TYPES, MAX_PAGE
from event_spine.schemas.routes import ResourceKind

_REF = "#/components/"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": _REF + "schemas/Problem"}}},
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + "schemas/" + schema}}},
    }


_ERRORS = {
    "400": _problem("A parameter is invalid (the problem names it)."),
    "401": _problem("No API key, an unknown or a revoked one."),
    "403": _problem("The key may not do this (another scope, or admin vs scoped)."),
    "404": _problem("Nothing there in the key's scope, or no route for the scope."),
    "429": _problem("The key is over its rate limit (see Retry-After)."),
    "503": _problem("A broker or store is unavailable; retry later."),
}

_SCOPE_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"Optional check: refused (403) unless it is the key's {name}.",
        "schema": {"type": "string", "maxLength": 256},
    }
    for name in ("tenant_id", "env", "mode", "project_id")
]


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_STREAM_PATH = _param(
    "stream_id",
    "path",
    {"type": "string", "pattern": STREAM_ID_PATTERN},
    "The stream (a `/` in it may be sent as is or as %2F).",
)
_LIMIT = _param(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, ""
)
_CURSOR = _param(
    "cursor", "query", {"type": "string", "maxLength": 4096}, "`next_cursor` of the previous page."
)


def _op(
    summary: str, ok: dict[str, Any], params: list[dict[str, Any]], admin: bool = False
) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["admin" if admin else "events"],
        "parameters": params,
        "responses": {"200": ok, **_ERRORS},
    }


def _event_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event_id", "event_type", "stream_id", "ts", "position", "payload"],
        "properties": {
            "schema_version": {"type": "integer"},
            "event_id": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "ts": {"type": "string", "format": "date-time"},
            "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
            "stream_id": {"type": "string", "pattern": STREAM_ID_PATTERN},
            "routing": {"type": "object"},
            "metadata": {"type": "object"},
            "payload": {"type": "object"},
            "position": {"type": "integer", "description": "Per-stream, only grows."},
        },
    }


def _schemas() -> dict[str, Any]:
    page_cursor = {"type": ["string", "null"]}
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `type` is one of "
            + ", ".join(sorted(PROBLEM_TYPES)),
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
            },
        },
        "Event": _event_schema(),
        "EventPage": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {"type": "array", "items": {"$ref": _REF + "schemas/Event"}},
                "next_cursor": page_cursor,
            },
        },
        "StreamPage": {
            "type": "object",
            "required": ["streams", "next_cursor"],
            "properties": {
                "streams": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["stream_id", "last_position", "last_event_id"],
                        "properties": {
                            "stream_id": {"type": "string"},
                            "last_position": {"type": "integer"},
                            "last_event_id": {"type": "string"},
                        },
                    },
                },
                "next_cursor": page_cursor,
            },
        },
        "Counts": {
            "type": "object",
            "required": ["stream_id", "counts"],
            "properties": {
                "stream_id": {"type": "string"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "EmitRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["event_type", "stream_id", "payload"],
            "properties": {
                "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
                "stream_id": {"type": "string", "pattern": STREAM_ID_PATTERN},
                "payload": {"type": "object"},
                "metadata": {"type": ["object", "null"]},
                "event_id": {"type": ["string", "null"], "pattern": EVENT_ID_PATTERN},
            },
        },
        "Emitted": {
            "type": "object",
            "required": ["event_id"],
            "properties": {"event_id": {"type": "string"}},
        },
        "Admin": {"type": "object", "description": "See docs/api.md for each admin body."},
        "DeadLetterPage": {
            "type": "object",
            "required": ["topic", "order", "dead_letters", "next"],
            "properties": {
                "topic": {"type": "string"},
                "order": {"enum": ["newest_first", "oldest_first"]},
                "dead_letters": {"type": "array", "items": {"type": "object"}},
                "next": {
                    "description": "The `before` or `from` of the next page; null: no more now.",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "properties": {
                                "before": {"type": "string"},
                                "from": {"type": "string"},
                            },
                        },
                    ],
                },
            },
        },
    }


_POSITION = r"[0-9]{1,19}:[0-9]{1,19}"
_DLQ_PARAMS = [
    _param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": DLQ_MAX_LIMIT, "default": DLQ_DEFAULT_LIMIT},
        f"Dead letters read per partition at most (default {DLQ_DEFAULT_LIMIT}, "
        f"at most {DLQ_MAX_LIMIT}).",
    ),
    _param(
        "reason",
        "query",
        {"type": "string", "maxLength": 256},
        "Only this reason, among what the page reads (a page may then be short).",
    ),
    _param(
        "before",
        "query",
        {"type": "string", "maxLength": 4096, "pattern": f"^{_POSITION}(,{_POSITION})*$"},
        "Newest first below these `PARTITION:OFFSET` positions (a page's `next.before`).",
    ),
    _param(
        "from",
        "query",
        {"type": "string", "pattern": f"^{_POSITION}$"},
        "Oldest first from this `PARTITION:OFFSET` on (one partition; not with `before`).",
    ),
]


def openapi_document() -> dict[str, Any]:
    """The document."""
    stream_events = [
        _STREAM_PATH,
        _param(
            "type",
            "query",
            {
                "type": "array",
                "items": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
                "maxItems": MAX_EVENT_TYPES,
            },
            "Only these event types (repeat the parameter).",
        ),
        _param("since", "query", {"type": "string", "format": "date-time"}, "ts >= since"),
        _param("until", "query", {"type": "string", "format": "date-time"}, "ts < until"),
        _CURSOR,
        _LIMIT,
        _param("order", "query", {"type": "string", "enum": ["asc", "desc"]}, "By position."),
        *_SCOPE_PARAMS,
    ]
    live_params = [
        _STREAM_PATH,
        _param(
            "from",
            "query",
            {"type": "string", "enum": ["now", "start"]},
            "Without Last-Event-ID: live only (now) or the whole stream first (start).",
        ),
        _param("Last-Event-ID", "header", {"type": "string", "maxLength": 200}, "Resume after."),
        _param("last_event_id", "query", {"type": "string", "maxLength": 200}, "As the header."),
        _param(
            "type_prefix",
            "query",
            {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}},
            "Only event types starting with one of these.",
        ),
        _param("access_token", "query", {"type": "string"}, "The key, for EventSource."),
        *_SCOPE_PARAMS,
    ]
    admin_ok = _json("Admin", "See docs/api.md.")
    dlq_ok = _json("DeadLetterPage", "At most `limit` dead letters; `next` continues.")
    history_params = [
        _param(
            "kind",
            "query",
            {"type": "string", "enum": [k.value for k in ResourceKind]},
            "Resource kind (default event_spine).",
        ),
        *[
            {**_param(n, "query", {"type": "string", "maxLength": 256}, ""), "required": True}
            for n in ("tenant_id", "env", "project_id", "mode")
        ],
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "event-spine",
            "version": "1",
            "description": "Read streams, follow them live (SSE), emit events. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/streams": {
                "get": _op(
                    "The key's streams in id order",
                    _json("StreamPage", "One page."),
                    [
                        _param(
                            "prefix", "query", {"type": "string", "maxLength": 256}, "Id prefix."
                        ),
                        _LIMIT,
                        _CURSOR,
                        *_SCOPE_PARAMS,
                    ],
                )
            },
            "/v1/streams/{stream_id}/events": {
                "get": _op("Query one stream", _json("EventPage", "One page."), stream_events)
            },
            "/v1/streams/{stream_id}/counts": {
                "get": _op("Visible events per type", _json("Counts", "Counts."), [_STREAM_PATH])
            },
            "/v1/streams/{stream_id}/live": {
                "get": _op(
                    "Follow a stream (Server-Sent Events)",
                    {
                        "description": "text/event-stream: stored events, then live ones.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    live_params,
                )
            },
            "/v1/events/{event_id}": {
                "get": _op(
                    "One event",
                    _json("Event", "The event."),
                    [
                        _param(
                            "event_id", "path", {"type": "string", "pattern": EVENT_ID_PATTERN}, ""
                        ),
                        *_SCOPE_PARAMS,
                    ],
                )
            },
            "/v1/events": {
                "post": {
                    "summary": "Emit one event in the key's scope",
                    "tags": ["events"],
                    "parameters": _SCOPE_PARAMS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": _REF + "schemas/EmitRequest"}}
                        },
                    },
                    "responses": {
                        "202": _json("Emitted", "Accepted by the producer's buffer."),
                        "413": _problem("The body is larger than the server accepts (1 MiB)."),
                        "422": _problem("The event was rejected (the problem names the field)."),
                        **_ERRORS,
                    },
                }
            },
            "/v1/admin/routes": {"get": _op("Every route", admin_ok, [], admin=True)},
            "/v1/admin/routes/history": {
                "get": _op("A route's switch history", admin_ok, history_params, admin=True)
            },
            "/v1/admin/dlq": {
                "get": _op("Dead letters, one bounded page", dlq_ok, _DLQ_PARAMS, admin=True)
            },
            "/v1/admin/lag": {"get": _op("The sink group's lag", admin_ok, [], admin=True)},
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer spk_...` (`spine keys create`).",
                }
            },
            "schemas": _schemas(),
        },
    }

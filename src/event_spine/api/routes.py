"""The event routes: streams, a stream's events, one event, and emitting."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request
from starlette.responses import Response

from event_spine.api.auth import scoped_context
from event_spine.api.params import (
    int_param,
    optional_text,
    order_param,
    stream_param,
    time_param,
)
from event_spine.api.problems import Problem, invalid
from event_spine.api.render import JsonResponse, event_bytes, page_bytes
from event_spine.api.state import state_of
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.query import MAX_EVENT_TYPES, MAX_PAGE, EventQuery


async def _context(request: Request) -> RequestContext:
    key = await state_of(request).auth.key_of(request)
    return scoped_context(key, request)


async def list_streams(request: Request) -> Response:
    """GET /v1/streams: the caller's streams in id order, a page at a time."""
    ctx = await _context(request)
    params = request.query_params
    prefix = params.get("prefix")
    limit = int_param(params, "limit", 100, 1, MAX_PAGE)
    cursor = optional_text(params, "cursor", 4096)
    page = await state_of(request).service(ctx).list_streams(prefix, limit, cursor)
    return JsonResponse(
        {
            "streams": [
                {
                    "stream_id": s.stream_id,
                    "last_position": s.last_position,
                    "last_event_id": s.last_event_id,
                }
                for s in page.streams
            ],
            "next_cursor": page.next_cursor,
        }
    )


async def stream_events(request: Request) -> Response:
    """GET /v1/streams/{stream_id}/events: the query of one stream."""
    ctx = await _context(request)
    params = request.query_params
    types = tuple(params.getlist("type"))
    if len(types) > MAX_EVENT_TYPES:
        raise invalid("type", f"may be given at most {MAX_EVENT_TYPES} times")
    query = EventQuery(
        stream_id=stream_param(request.path_params["stream_id"]),
        event_types=types,
        since=time_param(params, "since"),
        until=time_param(params, "until"),
        after=optional_text(params, "cursor", 4096),
        limit=int_param(params, "limit", 100, 1, MAX_PAGE),
        descending=order_param(params),
    )
    page = await state_of(request).service(ctx).query(query)
    return Response(page_bytes(page.events, page.next_cursor), media_type="application/json")


async def stream_counts(request: Request) -> Response:
    """GET /v1/streams/{stream_id}/counts: visible events per type."""
    ctx = await _context(request)
    stream_id = stream_param(request.path_params["stream_id"])
    counts = await state_of(request).service(ctx).count_event_types(stream_id)
    return JsonResponse({"stream_id": stream_id, "counts": counts})


async def get_event(request: Request) -> Response:
    """GET /v1/events/{event_id}: one event of the caller's scope."""
    ctx = await _context(request)
    event_id = request.path_params["event_id"]
    if EVENT_ID_RE.match(event_id) is None:
        raise invalid("event_id", "must be a lower-case UUID")
    event = await state_of(request).service(ctx).get(event_id)
    if event is None:
        # Also the answer for another scope's id: never tell that it exists.
        raise Problem("not-found", f"No event {event_id} in the key's scope.")
    return Response(event_bytes(event), media_type="application/json")


async def _body_within(request: Request, limit_bytes: int) -> bytes:
    """The body, read no further than ``limit_bytes`` (never a whole oversized body)."""
    too_large = Problem("too-large", f"The body is larger than {limit_bytes} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class EmitBody(BaseModel):
    """POST /v1/events body; the scope comes from the key, never from here."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_type: str
    stream_id: str
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None
    event_id: str | None = Field(default=None)


async def emit(request: Request) -> Response:
    """POST /v1/events: validate and hand one event to the producer (202)."""
    ctx = await _context(request)
    state = state_of(request)
    if state.producer is None:
        raise Problem("unavailable", "This server was started without a producer.")
    raw = await _body_within(request, state.settings.max_body_bytes)
    try:
        body = EmitBody.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise Problem("invalid-event", f"The body is not JSON: {exc}", field="body") from None
    except PydanticValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise Problem("invalid-event", f"`{where}`: {first['msg']}", field=where) from None
    event_id = state.producer.emit_event(
        ctx,
        body.event_type,
        body.stream_id,
        body.payload,
        body.metadata,
        event_id=body.event_id,
    )
    return JsonResponse({"event_id": event_id}, status_code=202)

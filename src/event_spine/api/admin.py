"""Admin routes (admin keys only): routes and their history, dead letters, lag."""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from event_spine.api.auth import require_admin
from event_spine.api.params import int_param, optional_text
from event_spine.api.problems import invalid
from event_spine.api.render import JsonResponse
from event_spine.api.state import ApiState, state_of
from event_spine.dlq.tools import DeadLetterRecord, read_dead_letters
from event_spine.observability.lag import LagProbe
from event_spine.schemas.routes import ResourceKind, RouteKey


async def _admin(request: Request) -> ApiState:
    state = state_of(request)
    require_admin(await state.auth.key_of(request))
    return state


async def routes(request: Request) -> Response:
    """GET /v1/admin/routes: every route."""
    state = await _admin(request)
    listed = await state.registry.list_routes()
    return JsonResponse({"routes": [r.model_dump(mode="json") for r in listed]})


async def route_history(request: Request) -> Response:
    """GET /v1/admin/routes/history: the switch history of one route."""
    state = await _admin(request)
    params = request.query_params
    kind_text = params.get("kind", ResourceKind.EVENT_SPINE.value)
    try:
        kind = ResourceKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in ResourceKind)
        raise invalid("kind", f"must be one of {known}, got {kind_text!r}") from None
    scope: dict[str, str] = {}
    for name in ("tenant_id", "env", "mode", "project_id"):
        value = optional_text(params, name)
        if value is None:
            raise invalid(name, "is required")
        scope[name] = value
    key = RouteKey(resource_kind=kind, **scope)
    history = await state.registry.history(key)
    return JsonResponse({"history": [s.model_dump(mode="json") for s in history]})


def _text(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"text": None}
    try:
        return {"text": data.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _letter(r: DeadLetterRecord) -> dict[str, Any]:
    return {
        **r.summary(),
        "headers": r.headers,
        "key": _text(r.key),
        "value": _text(r.value),
    }


async def dead_letters(request: Request) -> Response:
    """GET /v1/admin/dlq: dead letters up to the topic's current end."""
    state = await _admin(request)
    params = request.query_params
    limit = int_param(params, "limit", 100, 1, 1000)
    reason = optional_text(params, "reason")
    letters = await read_dead_letters(
        state.settings.kafka, state.settings.dead_letter_topic, reason=reason, limit=limit
    )
    return JsonResponse(
        {"topic": state.settings.dead_letter_topic, "dead_letters": [_letter(r) for r in letters]}
    )


async def lag(request: Request) -> Response:
    """GET /v1/admin/lag: the sink group's lag per partition."""
    state = await _admin(request)
    s = state.settings
    if state.lag is None:
        state.lag = LagProbe(s.kafka, s.topic, s.sink_group_id)
    measured = await state.lag.measure()
    parts = [
        {
            "partition": p.partition,
            "committed": p.committed,
            "high_watermark": p.high_watermark,
            "lag": p.lag,
        }
        for p in sorted(measured.values(), key=lambda p: p.partition)
    ]
    return JsonResponse(
        {
            "topic": s.topic,
            "group_id": s.sink_group_id,
            "total_lag": sum(p["lag"] for p in parts),
            "partitions": parts,
        }
    )

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
from event_spine.dlq import DeadLetterRecord
from event_spine.dlq.pages import DEFAULT_LIMIT, MAX_LIMIT, DeadLetterPage, read_dead_letter_page
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
        "timestamp_ms": r.timestamp_ms,
        "headers": r.headers,
        "key": _text(r.key),
        "value": _text(r.value),
    }


_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


def _position(name: str, text: str) -> tuple[int, int]:
    partition, colon, offset = text.partition(":")
    if not (colon and partition.isdigit() and offset.isdigit()):
        raise invalid(name, f"must be `PARTITION:OFFSET` (e.g. `0:42`), got {text[:40]!r}")
    if int(partition) > _INT32_MAX or int(offset) > _INT64_MAX:
        raise invalid(name, f"{text[:40]!r} is beyond Kafka's partition or offset range")
    return int(partition), int(offset)


def _before(text: str) -> dict[int, int]:
    positions = [_position("before", part) for part in text.split(",")]
    found = dict(positions)
    if len(found) != len(positions):
        raise invalid("before", "names a partition twice")
    return found


def _next(page: DeadLetterPage) -> dict[str, str] | None:
    if page.next_before is not None:
        return {"before": ",".join(f"{p}:{o}" for p, o in sorted(page.next_before.items()))}
    if page.next_start is not None:
        return {"from": f"{page.next_start[0]}:{page.next_start[1]}"}
    return None


async def dead_letters(request: Request) -> Response:
    """GET /v1/admin/dlq: one bounded page of dead letters (newest first, or forward
    ``from`` a position); ``next`` holds the parameter of the following page."""
    state = await _admin(request)
    params = request.query_params
    limit = int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    reason = optional_text(params, "reason")
    before_text, from_text = optional_text(params, "before", 4096), optional_text(params, "from")
    if before_text is not None and from_text is not None:
        raise invalid("before", "cannot be combined with `from`")
    page = await read_dead_letter_page(
        state.settings.kafka,
        state.settings.dead_letter_topic,
        limit=limit,
        before=_before(before_text) if before_text is not None else None,
        start=_position("from", from_text) if from_text is not None else None,
        reason=reason,
    )
    return JsonResponse(
        {
            "topic": state.settings.dead_letter_topic,
            "order": "oldest_first" if from_text is not None else "newest_first",
            "dead_letters": [_letter(r) for r in page.letters],
            "next": _next(page),
        }
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

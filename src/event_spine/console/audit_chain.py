"""The console's audit page: verify a scope's chain exactly as `spine audit verify`
does (``audit.scoped``: the route's history, HMACs, anchors) and show the first
broken record with its stored body."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from event_spine.api.params import stream_param
from event_spine.api.problems import invalid
from event_spine.api.render import event_bytes
from event_spine.audit.chain import AUDIT_STREAM
from event_spine.audit.scoped import open_scope_chain
from event_spine.console.guard import SCOPE_FIELDS, Who, page, render
from event_spine.schemas.scope import Scope


def _scope(fields: dict[str, str]) -> Scope:
    try:
        return Scope.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise invalid(".".join(map(str, first["loc"])), first["msg"]) from None


@page()
async def audit_page(request: Request, who: Who) -> Response:
    """GET /console/audit: verify a scope's audit chain (the key's own scope, or any for
    an admin key); the first broken record is shown."""
    params = request.query_params
    fixed = who.scope
    if fixed is not None:  # a scoped key checks its own scope, whatever the query says
        asked = {n: getattr(fixed, n) for n in SCOPE_FIELDS}
    else:
        asked = {n: params.get(n, "") for n in SCOPE_FIELDS}
    stream = params.get("stream") or AUDIT_STREAM
    values: dict[str, Any] = {"fields": asked, "stream": stream, "report": None}
    if params.get("verify"):
        state = who.state
        chain = await open_scope_chain(
            state.registry,
            _scope(asked),
            stream_param(stream, "stream"),
            state.stores,
            state.tables,
        )
        values["report"] = report = await chain.verify()
        bad = await chain.broken_record(report)
        values["broken_body"] = (
            orjson.dumps(orjson.loads(event_bytes(bad)), option=orjson.OPT_INDENT_2).decode()
            if bad is not None
            else None
        )
    return render(request, "audit.html", who, fixed=fixed is not None, **values)

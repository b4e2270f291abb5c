"""The console's pages and actions (each wrapped by guard.page: session, key, CSRF)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from event_spine.api.admin import lag as api_lag
from event_spine.api.params import int_param, optional_text, order_param, stream_param, time_param
from event_spine.api.problems import Problem, invalid
from event_spine.api.render import event_bytes
from event_spine.api.sse import live as api_live
from event_spine.api.sse import sse_id
from event_spine.console.guard import (
    SCOPE_FIELDS,
    Form,
    Need,
    Who,
    form_of,
    page,
    refusal,
    render,
    sessions_of,
)
from event_spine.console.session import COOKIE, LOGIN_COOKIE, csrf_matches, set_cookie
from event_spine.emitters.routing import routing_hook
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.switching import Readers, switch_scope
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.query import MAX_EVENT_TYPES, EventQuery
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey


def _ctx(who: Who) -> RequestContext:
    scope = who.scope
    assert scope is not None  # Need.SCOPED pages only
    return RequestContext(
        tenant_id=scope.tenant_id, env=scope.env, mode=scope.mode, project_id=scope.project_id
    )


def _pretty(data: bytes | Any) -> str:
    value = orjson.loads(data) if isinstance(data, bytes) else data
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- login ------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    """GET /console/login: the API key form (its CSRF token in a cookie and the form)."""
    csrf = request.cookies.get(LOGIN_COOKIE) or uuid.uuid4().hex + uuid.uuid4().hex
    response = render(request, "login.html", None, csrf=csrf, error=None)
    set_cookie(response, LOGIN_COOKIE, csrf, secure=_secure(request))
    return response


async def login(request: Request) -> Response:
    """POST /console/login: check the key, start a session."""
    form = await form_of(request)
    token, given = form.get("api_key"), form.get("csrf")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not csrf_matches(expected, given):
        return refusal(request, None, 403, "The login form's CSRF token is missing or stale.")
    state = request.app.state.api
    try:
        token = (token or "").strip()
        await state.auth.key_of_token(token or None)
    except Problem as exc:
        return render(
            request, "login.html", None, status_code=exc.status, csrf=expected, error=exc.detail
        )
    sid, _ = sessions_of(request).start(token)
    nxt = request.query_params.get("next", "")
    # Only a console path: never an open redirect.
    target = nxt if nxt.startswith("/console") and "//" not in nxt else "/console"
    response = RedirectResponse(target, 303)
    set_cookie(response, COOKIE, sid, secure=_secure(request))
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@page()
async def logout(request: Request, who: Who) -> Response:
    """POST /console/logout."""
    sessions_of(request).end(request)
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@page()
async def home(request: Request, who: Who) -> Response:
    """GET /console: who you are and what you may open."""
    return render(request, "home.html", who)


# -- routes -----------------------------------------------------------------------------


def _mine(who: Who, route: ResourceRoute) -> bool:
    scope = who.scope
    if scope is None:
        return who.key.admin
    return (route.tenant_id, route.env, route.project_id, route.mode) == (
        scope.tenant_id,
        scope.env,
        scope.project_id,
        scope.mode,
    )


@page()
async def routes_page(request: Request, who: Who) -> Response:
    """GET /console/routes: routes (every scope for admin, the key's own otherwise) and
    each one's switch history; the switch form for admin keys."""
    routes = [r for r in await who.state.registry.list_routes() if _mine(who, r)]
    tenant = request.query_params.get("tenant_id")
    if tenant:
        routes = [r for r in routes if r.tenant_id == tenant]
    return render(
        request,
        "routes.html",
        who,
        routes=routes,
        tenant=tenant or "",
        backends=[b.value for b in BackendType],
        readers=[r.value for r in Readers],
        message=request.query_params.get("switched"),
    )


def _field(form: Form, name: str) -> str:
    value = form.get(name)
    if value is None or not value.strip():
        raise invalid(name, "is required")
    return value.strip()


@page(Need.ADMIN)
async def switch(request: Request, who: Who) -> Response:
    """POST /console/routes/switch: `spine routes switch` (the same checks: switch_scope)."""
    form = await form_of(request)
    try:
        kind = ResourceKind(_field(form, "kind"))
    except ValueError:
        raise invalid("kind", "is not a resource kind") from None
    key = RouteKey(resource_kind=kind, **{name: _field(form, name) for name in SCOPE_FIELDS})
    backend = _field(form, "backend")
    if backend not in {b.value for b in BackendType}:
        raise invalid("backend", f"must be one of {', '.join(b.value for b in BackendType)}")
    try:
        config = orjson.loads(form.get("config") or "{}")
    except orjson.JSONDecodeError as exc:
        raise invalid("config", f"is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise invalid("config", "must be a JSON object")
    try:
        readers = Readers(form.get("readers") or Readers.REFUSE.value)
    except ValueError:
        raise invalid("readers", "must be refuse, move or split") from None
    reason = _field(form, "reason")
    state = who.state
    registry = state.registry
    if state.producer is not None:
        # As the CLI does: the switch becomes an audit event and a timeline entry.
        registry = RoutingRegistry(registry.store, routing_hook(state.producer, actor_type="user"))
    moved = await switch_scope(
        registry,
        key,
        backend,
        config,
        actor=f"console:{who.key.key_id}",
        reason=reason,
        readers=readers,
    )
    said = "; ".join(f"{m.describe()} -> {m.backend_type.value}" for m in moved)
    back = urlencode({"tenant_id": key.tenant_id, "switched": said})
    return RedirectResponse(f"/console/routes?{back}", 303)


# -- streams ----------------------------------------------------------------------------


@page(Need.SCOPED)
async def streams_page(request: Request, who: Who) -> Response:
    """GET /console/streams: the key's scope's streams."""
    params = request.query_params
    prefix = optional_text(params, "prefix") or None
    cursor = optional_text(params, "cursor", 4096)
    listed = await who.state.service(_ctx(who)).list_streams(prefix, 100, cursor)
    return render(request, "streams.html", who, page=listed, prefix=prefix or "")


@page(Need.SCOPED)
async def stream_page(request: Request, who: Who) -> Response:
    """GET /console/streams/{stream_id}: one stream's events, filtered; follow live."""
    params = request.query_params
    types = tuple(t for t in params.getlist("type") if t) + tuple(
        params.get("types_text", "").split()
    )
    if len(types) > MAX_EVENT_TYPES:
        raise invalid("type", f"may be given at most {MAX_EVENT_TYPES} times")
    stream_id = stream_param(request.path_params["stream_id"])
    query = EventQuery(
        stream_id=stream_id,
        event_types=types,
        since=time_param(params, "since") if params.get("since") else None,
        until=time_param(params, "until") if params.get("until") else None,
        after=optional_text(params, "cursor", 4096),
        limit=int_param(params, "limit", 50, 1, 500),
        descending=order_param(params),
    )
    found = await who.state.service(_ctx(who)).query(query)
    return render(
        request,
        "stream.html",
        who,
        stream_id=stream_id,
        events=found.events,
        # Follow from the newest event shown: nothing between this page and the live
        # stream is lost, nothing shown is repeated (the API resumes after an SSE id).
        follow_after=(sse_id(max(found.events, key=lambda e: e.position)) if found.events else ""),
        next_url=(
            str(request.url.include_query_params(cursor=found.next_cursor))
            if found.next_cursor
            else None
        ),
        filters={k: params.get(k, "") for k in ("since", "until", "order", "limit")},
        types=" ".join(types),
    )


@page(Need.SCOPED)
async def event_page(request: Request, who: Who) -> Response:
    """GET /console/events/{event_id}: one event of the key's scope."""
    event_id = request.path_params["event_id"]
    if EVENT_ID_RE.match(event_id) is None:
        raise invalid("event_id", "must be a lower-case UUID")
    event = await who.state.service(_ctx(who)).get(event_id)
    if event is None:  # also another scope's id: never say it exists
        raise Problem("not-found", f"No event {event_id} in the key's scope.")
    return render(request, "event.html", who, event=event, body=_pretty(event_bytes(event)))


def _as_bearer(request: Request, token: str) -> Request:
    """The request as the API sees it: the session's key as its Authorization header."""
    scope = dict(request.scope)
    scope["headers"] = [
        (k, v) for k, v in request.scope["headers"] if k not in (b"authorization", b"cookie")
    ] + [(b"authorization", f"Bearer {token}".encode())]
    return Request(scope, request.receive)


async def live(request: Request) -> Response:
    """GET /console/streams/{stream_id}/live: the API's SSE stream for the session's key
    (the browser's EventSource sends the cookie; the key never reaches the page)."""
    session = sessions_of(request).of(request)
    if session is None:
        raise Problem("unauthenticated", "No console session: log in at /console/login.")
    response: Response = await api_live(_as_bearer(request, session.token))
    return response


# -- lag (the DLQ pages: dead_letters.py; audit: audit_chain.py) -----------------------


@page(Need.ADMIN)
async def lag_page(request: Request, who: Who) -> Response:
    """GET /console/lag: the sink group's lag per partition, redrawn every second."""
    s = who.state.settings
    return render(request, "lag.html", who, topic=s.topic, group_id=s.sink_group_id)


@page(Need.ADMIN)
async def lag_json(request: Request, who: Who) -> Response:
    """GET /console/lag.json: GET /v1/admin/lag for the session's key."""
    return await api_lag(_as_bearer(request, who.session.token))

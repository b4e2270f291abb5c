"""Who is at the console, and the checks every page and action passes first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from event_spine.api.keys import ApiKey
from event_spine.api.problems import Problem
from event_spine.api.state import ApiState, state_of
from event_spine.console.session import Session, Sessions, csrf_matches
from event_spine.errors import RouteNotFound, SpineError
from event_spine.schemas.scope import Scope

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every value is escaped unless a template says otherwise
    undefined=jinja2.StrictUndefined,
)


#: A scope's fields, in the order of a RouteKey (the switch and audit forms).
SCOPE_FIELDS = ("tenant_id", "env", "project_id", "mode")


class Need(Enum):
    """What a page requires of the key."""

    ANY = "any"
    ADMIN = "admin"  # an admin key (routes of every scope, DLQ, lag, switching)
    SCOPED = "scoped"  # a key bound to one scope (its streams and events)


@dataclass(frozen=True, slots=True)
class Who:
    """The console's caller: the session, the (re-checked) key and the app state."""

    session: Session
    key: ApiKey
    state: ApiState

    @property
    def scope(self) -> Scope | None:
        return self.key.scope


def sessions_of(request: Request) -> Sessions:
    """The app's console sessions."""
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def render(
    request: Request, name: str, who: Who | None, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A template rendered with the caller (for the menu and the CSRF field)."""
    html = _TEMPLATES.get_template(name).render(
        who=who,
        csrf=who.session.csrf if who is not None else values.pop("csrf", ""),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            # Only our own script and styles; no framing (clickjacking on the switch form).
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
        },
    )


def refusal(request: Request, who: Who | None, status: int, message: str) -> HTMLResponse:
    """The error page: one line saying what was refused and why."""
    return render(request, "error.html", who, status_code=status, status=status, message=message)


Handler = Callable[[Request, Who], Awaitable[Response]]

#: A console form is a few short fields (the replay form: one id per dead letter).
FORM_MAX_BYTES = 256 * 1024


class Form:
    """An urlencoded form body (no multipart: the console sends none, and this spares
    the python-multipart dependency)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str) -> str | None:
        """The first value of ``name``."""
        return next((v for k, v in self.pairs if k == name), None)

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return [v for k, v in self.pairs if k == name]


async def form_of(request: Request) -> Form:
    """The request's form, read once (bounded) and kept on the request."""
    held = getattr(request.state, "console_form", None)
    if isinstance(held, Form):
        return held
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > FORM_MAX_BYTES:
            raise Problem("too-large", f"The form is larger than {FORM_MAX_BYTES} bytes.")
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", "replace")
    form = Form(parse_qsl(text, keep_blank_values=True))
    request.state.console_form = form
    return form


async def who_of(request: Request) -> Who | Response:
    """The caller, or the response to send instead (to the login page, or a refusal)."""
    session = sessions_of(request).of(request)
    if session is None:
        return RedirectResponse(f"/console/login?next={quote(request.url.path)}", 303)
    state = state_of(request)
    try:
        key = await state.auth.key_of_token(session.token)
    except Problem as exc:
        if exc.status == 401:
            sessions_of(request).end(request)
            return RedirectResponse("/console/login", 303)
        return refusal(request, None, exc.status, exc.detail)
    return Who(session, key, state)


def page(need: Need = Need.ANY) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: a session, a live key of the kind ``need`` says, a CSRF token on
    every POST; the spine's errors become an error page, never a traceback."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            found = await who_of(request)
            if isinstance(found, Response):
                return found
            who = found
            if need is Need.ADMIN and not who.key.admin:
                return refusal(request, who, 403, f"This page needs an admin key; {_held(who)}.")
            if need is Need.SCOPED and who.key.scope is None:
                return refusal(
                    request,
                    who,
                    403,
                    "This page shows one scope's events: log in with a key bound to a "
                    "scope (`spine keys create --tenant ...`); admin keys read no events.",
                )
            if request.method == "POST":
                form = await form_of(request)
                if not csrf_matches(who.session.csrf, form.get("csrf")):
                    return refusal(request, who, 403, "The form's CSRF token is missing or stale.")
            try:
                return await handler(request, who)
            except Problem as exc:
                return refusal(request, who, exc.status, exc.detail)
            except RouteNotFound as exc:
                return refusal(request, who, 404, str(exc))
            except SpineError as exc:
                return refusal(request, who, 400, str(exc))
            except ValidationError as exc:  # a crafted form: name the field, no traceback
                first = exc.errors(include_input=False, include_url=False)[0]
                where = ".".join(map(str, first["loc"])) or "form"
                return refusal(request, who, 400, f"`{where}`: {first['msg']}")

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


def _held(who: Who) -> str:
    return f"the key {who.key.key_id} is bound to {who.key.describe()}"

"""Console sessions: an API key held server-side behind an HttpOnly cookie.

The browser never holds the key after login: the cookie carries a random session id
(HttpOnly, SameSite=Strict, Path=/console), the server maps it to the key's token and
a CSRF token that every POST form must echo. The key itself is checked against the
key store on every request (Authenticator.key_of_token), so a revoked key's session
stops working at once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

COOKIE: Final = "spine_console"
#: The login form's CSRF token (double submit: cookie and hidden field must match).
LOGIN_COOKIE: Final = "spine_console_login"
PATH: Final = "/console"
#: A session ends after this long without a request.
IDLE_S: Final = 8 * 3600.0
#: Sessions held at most; the oldest idle one is dropped beyond it (memory bound).
MAX_SESSIONS: Final = 10_000


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    token: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)
    #: A one-line outcome of the last action, shown once by the next page (e.g. what
    #: a replay did), so a reload never repeats the POST.
    flash: str | None = None

    def take_flash(self) -> str | None:
        """The flash message, cleared."""
        message, self.flash = self.flash, None
        return message


class Sessions:
    """Session id -> Session, in memory (a restart logs everyone out)."""

    def __init__(self) -> None:
        self._held: dict[str, Session] = {}

    def start(self, token: str) -> tuple[str, Session]:
        """A new session for ``token``: its id (the cookie value) and the session."""
        if len(self._held) >= MAX_SESSIONS:
            oldest = min(self._held, key=lambda sid: self._held[sid].seen)
            del self._held[oldest]
        sid = secrets.token_urlsafe(32)
        self._held[sid] = session = Session(token)
        return sid, session

    def of(self, request: Request) -> Session | None:
        """The request's live session, or None."""
        sid = request.cookies.get(COOKIE)
        session = self._held.get(sid) if sid else None
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > IDLE_S:
            del self._held[sid]  # type: ignore[arg-type]
            return None
        session.seen = now
        return session

    def end(self, request: Request) -> None:
        """Forget the request's session."""
        sid = request.cookies.get(COOKIE)
        if sid:
            self._held.pop(sid, None)


def set_cookie(response: Response, name: str, value: str, *, secure: bool) -> None:
    """HttpOnly, SameSite=Strict, scoped to the console's path."""
    response.set_cookie(name, value, path=PATH, httponly=True, samesite="strict", secure=secure)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token."""
    return given is not None and secrets.compare_digest(expected, given)

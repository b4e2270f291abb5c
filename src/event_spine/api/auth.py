"""Who is calling: the API key of a request, its scope, and its rate limit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from event_spine.api.keys import ApiKey, KeyStore, secret_matches, split_token
from event_spine.api.problems import Problem, invalid
from event_spine.schemas.context import RequestContext

_BEARER = "bearer "
#: RequestContext.request_id's bound.
_REQUEST_ID_MAX = 256


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; one per request."""

    rate_per_s: float
    burst: int
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> float | None:
        """None when a token was taken, else the seconds until one is free."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(self.burst)
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate_per_s


class Authenticator:
    """Checks a request's key against the key store on every request (so a revoked
    key is refused at once) and takes a token from the key's bucket."""

    def __init__(self, keys: KeyStore, rate_per_s: float, burst: int) -> None:
        self.keys = keys
        self.rate_per_s = rate_per_s
        self.burst = burst
        # One bucket per key id: bounded by the number of keys ever created.
        self._buckets: dict[str, TokenBucket] = {}

    async def key_of(self, conn: HTTPConnection, *, query_token: bool = False) -> ApiKey:
        """The caller's active key; 401 when missing, malformed, unknown or revoked;
        429 when its bucket is empty. ``query_token``: also read ``?access_token=``
        (browsers' EventSource cannot set headers)."""
        token = _presented(conn, query_token)
        parts = split_token(token) if token else None
        if parts is None:
            raise Problem(
                "unauthenticated",
                "Send an API key as `Authorization: Bearer spk_...` (create one with "
                "`spine keys create`).",
                headers={"WWW-Authenticate": 'Bearer realm="event-spine"'},
            )
        found = await self.keys.lookup(parts[0])
        if found is None or not secret_matches(parts[1], found[1]):
            raise Problem("unauthenticated", "The API key is not valid.", headers=_CHALLENGE)
        key = found[0]
        if not key.active:
            raise Problem(
                "unauthenticated", f"The API key {key.key_id} was revoked.", headers=_CHALLENGE
            )
        wait_s = self._buckets.setdefault(
            key.key_id, TokenBucket(self.rate_per_s, self.burst)
        ).take()
        if wait_s is not None:
            retry = max(1, int(wait_s + 0.999))
            raise Problem(
                "rate-limited",
                f"The API key {key.key_id} is over its limit of {self.rate_per_s:g} requests/s "
                f"(burst {self.burst}); retry after {retry} s.",
                headers={"Retry-After": str(retry)},
            )
        return key


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="event-spine", error="invalid_token"'}


def _presented(conn: HTTPConnection, query_token: bool) -> str | None:
    header = conn.headers.get("authorization")
    if header is not None and header[: len(_BEARER)].lower() == _BEARER:
        return header[len(_BEARER) :].strip()
    if query_token:
        return conn.query_params.get("access_token")
    return None


def scoped_context(key: ApiKey, conn: HTTPConnection) -> RequestContext:
    """The RequestContext of a scoped key; 403 for an admin key or when the request
    names another scope (``tenant_id``/``env``/``mode``/``project_id`` parameters)."""
    if key.scope is None:
        raise Problem(
            "forbidden",
            f"The API key {key.key_id} is an admin key: event routes need a key bound to a "
            f"scope (`spine keys create --tenant ...`).",
        )
    scope = key.scope
    for name, mine in zip(("tenant_id", "env", "mode", "project_id"), scope.key(), strict=True):
        asked = conn.query_params.get(name)
        if asked is not None and asked != mine:
            raise Problem(
                "forbidden",
                f"The API key {key.key_id} is bound to {scope.describe()}; the request "
                f"names {name}={asked!r}.",
            )
    request_id = conn.headers.get("x-request-id")
    if request_id is not None and not 1 <= len(request_id) <= _REQUEST_ID_MAX:
        raise invalid("X-Request-ID", f"must be 1 to {_REQUEST_ID_MAX} characters")
    return RequestContext(
        tenant_id=scope.tenant_id,
        env=scope.env,
        mode=scope.mode,
        project_id=scope.project_id,
        request_id=request_id,
    )


def require_admin(key: ApiKey) -> None:
    """403 unless ``key`` is an admin key."""
    if not key.admin:
        raise Problem(
            "forbidden",
            f"The API key {key.key_id} is bound to {key.describe()}: admin routes need an "
            f"admin key (`spine keys create --admin`).",
        )

"""RFC 9457 problem details: every error the API answers is one of these.

Each problem type has a stable URI under ``PROBLEM_BASE`` (documented in docs/api.md),
a title, and the HTTP status it goes with; ``detail`` says what to fix.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

PROBLEM_BASE: Final = "https://event-spine.dev/problems/"
MEDIA_TYPE: Final = "application/problem+json"

#: type slug -> (status, title). The table in docs/api.md lists the same.
PROBLEM_TYPES: Final[dict[str, tuple[int, str]]] = {
    "unauthenticated": (401, "No valid API key"),
    "forbidden": (403, "The API key may not do this"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "invalid-parameter": (400, "Invalid request parameter"),
    "invalid-event": (422, "The event was rejected"),
    "too-large": (413, "The request body is too large"),
    "unknown-cursor": (400, "Unknown cursor"),
    "no-route": (409, "No route for this scope"),
    "rate-limited": (429, "Too many requests"),
    "unavailable": (503, "A broker or store is unavailable"),
    "internal": (500, "Internal error"),
}


class Problem(Exception):
    """Raised by handlers; the app turns it into a problem+json response."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.slug = slug
        self.status, self.title = PROBLEM_TYPES[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        """The JSON document (RFC 9457 members plus extensions)."""
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }

    def response(self, instance: str) -> Response:
        """The problem as an HTTP response."""
        return Response(
            orjson.dumps(self.body(instance)),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


def invalid(param: str, message: str) -> Problem:
    """A 400 naming the parameter (``param`` also goes in the body)."""
    return Problem("invalid-parameter", f"`{param}` {message}", parameter=param)


async def problem_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for Problem."""
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)

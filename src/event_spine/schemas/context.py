"""RequestContext: who is acting, carried in a contextvar so hot paths need not pass it."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import Field

from event_spine.errors import ScopeViolation
from event_spine.schemas.scope import Scope


class RequestContext(Scope):
    """Scope plus the request's identity. Validated once, then reused by every emit."""

    request_id: str | None = Field(default=None, max_length=256)
    trace_id: str | None = Field(default=None, max_length=256)
    user_id: str | None = Field(default=None, max_length=256)
    surface_id: str | None = Field(default=None, max_length=256)
    run_id: str | None = Field(default=None, max_length=256)
    traceparent: str | None = Field(
        default=None,
        pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C trace context of the request; carried in a Kafka header.",
    )

    @property
    def scope(self) -> Scope:
        """The bare scope of this context."""
        return Scope(
            tenant_id=self.tenant_id, env=self.env, mode=self.mode, project_id=self.project_id
        )

    def metadata(self) -> dict[str, str | None]:
        """The metadata envelope every event emitted under this context carries."""
        return {
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "user_id": self.user_id,
            "surface_id": self.surface_id,
            "run_id": self.run_id,
        }

    def require_same_scope(self, other: Scope) -> None:
        """Raise ScopeViolation unless ``other`` has this context's scope."""
        if self.key() != other.key():
            raise ScopeViolation(
                f"Scope mismatch: the context is {self.describe()} but the target is "
                f"{other.describe()}."
            )


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "event_spine_request_context", default=None
)


def current_context() -> RequestContext | None:
    """The RequestContext set for this task or thread, if any."""
    return _current.get()


def set_context(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    """Set the context for the current task; reset with the returned token."""
    return _current.set(ctx)


def reset_context(token: contextvars.Token[RequestContext | None]) -> None:
    """Undo a set_context()."""
    _current.reset(token)


@contextmanager
def request_context(ctx: RequestContext) -> Iterator[RequestContext]:
    """``with request_context(ctx):`` sets the context for the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)

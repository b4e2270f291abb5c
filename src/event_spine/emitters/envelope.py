"""The metadata envelope every canonical event carries, taken from the RequestContext.

On the wire the envelope is split where the StreamEvent contract already has a
place for it: ``tenant_id`` and ``mode`` are in ``routing`` (with env and project),
the identity keys are in ``metadata``. ``Envelope.of`` reads it back from a record.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from event_spine.observability.tracing import trace_id_of
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import TENANT_ID_PATTERN, Mode
from event_spine.schemas.wire import EventRecord

_ID = Field(default=None, max_length=256)


class Envelope(BaseModel):
    """Who caused an event, and within which request, trace and run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    mode: Mode
    user_id: str | None = _ID
    surface_id: str | None = _ID
    request_id: str | None = _ID
    trace_id: str | None = _ID
    run_id: str | None = _ID

    @classmethod
    def from_context(cls, ctx: RequestContext) -> Envelope:
        """The envelope of ``ctx``; trace_id falls back to its traceparent's trace id."""
        trace_id = ctx.trace_id
        if trace_id is None and ctx.traceparent is not None:
            trace_id = trace_id_of(ctx.traceparent)
        return cls(
            tenant_id=ctx.tenant_id,
            mode=ctx.mode,
            user_id=ctx.user_id,
            surface_id=ctx.surface_id,
            request_id=ctx.request_id,
            trace_id=trace_id,
            run_id=ctx.run_id,
        )

    @classmethod
    def of(cls, record: EventRecord) -> Envelope:
        """Read the envelope back from a stored or consumed record."""
        meta = record.metadata
        return cls(
            tenant_id=record.routing.tenant_id,
            mode=record.routing.mode,
            user_id=meta.get("user_id"),
            surface_id=meta.get("surface_id"),
            request_id=meta.get("request_id"),
            trace_id=meta.get("trace_id"),
            run_id=meta.get("run_id"),
        )

    def metadata(self) -> dict[str, str | None]:
        """The part that travels in the event's ``metadata``."""
        return self.model_dump(exclude={"tenant_id", "mode"})

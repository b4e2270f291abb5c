"""The one place an event record is built from emit arguments, and checked.

``EventSpineProducer.emit_event``, ``emit_acked``, the canonical emitters and
``event_spine.testing.MemoryProducer`` all go through here, so the "no
RequestContext" and ``event_id`` checks and the field checks exist once and every
emit path accepts and refuses exactly the same events (the sink's decoder checks
the same patterns: ``tests/schemas/test_wire_equivalence.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from event_spine.errors import EventValidationError
from event_spine.schemas.context import RequestContext, current_context
from event_spine.schemas.formats import (
    EVENT_ID_RE,
    EVENT_TYPE_PATTERN,
    EVENT_TYPE_RE,
    SCHEMA_VERSION,
    STREAM_ID_PATTERN,
    STREAM_ID_RE,
)
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.wire import EventRecord, WireRouting, check_metadata


def require_context(ctx: RequestContext | None) -> RequestContext:
    """``ctx``, else the one set with ``request_context()``; EventValidationError if none."""
    if ctx is None:
        ctx = current_context()
        if ctx is None:
            raise EventValidationError(
                "routing", "no RequestContext: pass `ctx` or set one with request_context()"
            )
    return ctx


def checked_event_id(event_id: str | None) -> str:
    """A new UUIDv7 for None, else ``event_id`` if it is a lower-case UUID string."""
    if event_id is None:
        return new_event_id()
    if type(event_id) is not str or EVENT_ID_RE.match(event_id) is None:
        raise EventValidationError("event_id", "must be a lower-case UUID string")
    return event_id


def wire_routing(ctx: RequestContext) -> WireRouting:
    """The routing block of every record emitted under ``ctx``."""
    return WireRouting(
        tenant_id=ctx.tenant_id, env=ctx.env, mode=ctx.mode, project_id=ctx.project_id
    )


def build_record(
    ctx: RequestContext,
    event_type: str,
    stream_id: str,
    payload: dict[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
    routing: WireRouting | None = None,
) -> EventRecord:
    """Check the emit arguments and build the record (errors name the field).

    ``routing``: the producer passes its cached WireRouting of ``ctx``'s scope (the
    hot path builds it once per scope, not per event).
    """
    if type(event_type) is not str or EVENT_TYPE_RE.match(event_type) is None:
        raise EventValidationError("event_type", f"must match {EVENT_TYPE_PATTERN}")
    if type(stream_id) is not str or STREAM_ID_RE.match(stream_id) is None:
        raise EventValidationError("stream_id", f"must match {STREAM_ID_PATTERN}")
    if type(payload) is not dict:
        raise EventValidationError("payload", "must be a JSON object (a dict)")
    envelope = ctx.metadata()
    if metadata:
        envelope.update(metadata)
        check_metadata(envelope)
    return EventRecord(
        SCHEMA_VERSION,
        checked_event_id(event_id),
        datetime.now(UTC),
        event_type,
        stream_id,
        routing if routing is not None else wire_routing(ctx),
        envelope,
        payload,
    )

"""emit_audit_event and the routing registry's audit hook.

An audit event is a StreamEvent with event_type ``audit.<action>`` in the ONE stream
``audit`` of the acting scope, with the surface (``routing``, ``billing``...) in its
payload. One stream per scope means one partition, so a scope's audit events are
totally ordered, and the sink links them into a hash chain in that order
(``event_spine.audit.chain``).

What "handed over" means, and what a failure does:

- Default (fire-and-forget): handed over = accepted into the producer's buffer.
  Nothing waits on the network. A failure to hand over (closed producer, full buffer
  under the ``raise``/``block`` policies) is logged and counted in
  ``audit_failures()``, never raised; under ``drop_newest`` a full buffer drops the
  event and the producer counts it in ``ProducerStats.dropped``.
- Strict (``strict=True``, or ``strict=None`` with env ``AUDIT_STRICT=1``): handed
  over = durable in the routed store and linked into the audit chain
  (``event_spine.audit.strict``; the producer needs a ``route_checker``). Earlier
  events of the producer are delivered first, so order holds. The call blocks up to
  ``AUDIT_STRICT_TIMEOUT_S`` (default 10 s) and raises ``AuditPersistFailed`` naming
  the route and the cause instead of counting.

Invalid input (a bad action or surface) raises EventValidationError in both modes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_spine.audit.chain import AUDIT_EVENT_PREFIX, AUDIT_STREAM
from event_spine.audit.strict import emit_strict
from event_spine.errors import EventValidationError, ProducerError, SpineError
from event_spine.producers.emit import get_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import AuditHook
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import STREAM_ID_PATTERN, STREAM_ID_RE
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.routes import RouteKey

__all__ = [
    "AUDIT_EVENT_PREFIX",
    "AUDIT_STREAM",
    "AuditSettings",
    "audit_failures",
    "emit_audit_event",
    "registry_audit_hook",
    "route_context",
]

log = logging.getLogger(__name__)


class AuditSettings(BaseSettings):
    """Audit delivery settings, from the environment without a prefix."""

    model_config = SettingsConfigDict(env_prefix="", frozen=True, extra="ignore")

    audit_strict: bool = Field(
        default=False,
        description="AUDIT_STRICT=1: emit_audit_event returns once the event is stored "
        "and chained.",
    )
    audit_strict_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="AUDIT_STRICT_TIMEOUT_S: the strict mode's deadline (ack, store, chain).",
    )


class _Counter:
    """A thread-safe counter (emits come from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


_not_handed_over: Final = _Counter()


def audit_failures() -> int:
    """Audit events that could not be handed over in fire-and-forget mode, since start."""
    return _not_handed_over.value


def _strict_timeout_s(strict: bool | None) -> float | None:
    """The ack deadline when this call is strict, else None (no settings read then)."""
    if strict is False:
        return None
    settings = AuditSettings()
    return settings.audit_strict_timeout_s if strict or settings.audit_strict else None


def emit_audit_event(
    ctx: RequestContext,
    action: str,
    surface: str = "audit",
    metadata: Mapping[str, Any] | None = None,
    input_data: Any = None,
    output_data: Any = None,
    *,
    actor_type: str = "user",
    producer: EventSpineProducer | None = None,
    strict: bool | None = None,
    event_id: str | None = None,
) -> str:
    """Emit one audit event into the scope's ``audit`` stream; returns its event_id.

    ``strict`` None reads ``AUDIT_STRICT`` from the environment (see the module doc).
    Fire-and-forget returns the id also when the event could not be handed over
    (counted in ``audit_failures()``); strict raises AuditPersistFailed instead.
    """
    if type(surface) is not str or STREAM_ID_RE.match(surface) is None:
        raise EventValidationError("surface", f"must match {STREAM_ID_PATTERN}")
    target = producer or get_default_producer()
    payload = {
        "action": action,
        "surface": surface,
        "actor_type": actor_type,
        "actor_id": ctx.user_id,
        "input": input_data,
        "output": output_data,
    }
    event_type = f"{AUDIT_EVENT_PREFIX}{action}"
    timeout_s = _strict_timeout_s(strict)
    if timeout_s is not None:
        return emit_strict(
            target, ctx, event_type, payload, metadata, event_id or new_event_id(), timeout_s
        )
    return _hand_over(target, ctx, event_type, payload, metadata, event_id or new_event_id())


def _hand_over(
    producer: EventSpineProducer,
    ctx: RequestContext,
    event_type: str,
    payload: dict[str, Any],
    metadata: Mapping[str, Any] | None,
    event_id: str,
) -> str:
    """Fire-and-forget: a producer failure is counted and logged, not raised."""
    try:
        return producer.emit_event(
            ctx, event_type, AUDIT_STREAM, payload, metadata, event_id=event_id
        )
    except ProducerError as exc:
        _not_handed_over.add()
        log.warning("audit event %s (%s) not handed over: %s", event_id, event_type, exc)
        return event_id


def registry_audit_hook(producer: EventSpineProducer, actor_type: str = "service") -> AuditHook:
    """An AuditHook for RoutingRegistry: each lookup or change becomes an audit event
    (surface ``routing``) in the ``audit`` stream of the audited route's own scope, so a
    tenant sees who read or moved its routes. Never strict: the hook runs inside
    registry calls (the sink's route lookups among them), which must not block on the
    network, and the change it reports is already saved."""

    def hook(action: str, key: RouteKey, details: dict[str, Any]) -> None:
        try:
            _emit_route_audit(producer, actor_type, action, key, details)
        except SpineError as exc:
            # Routing must keep working when an audit event is invalid.
            log.warning("route audit event %s for %s not emitted: %s", action, key, exc)

    return hook


def _emit_route_audit(
    producer: EventSpineProducer,
    actor_type: str,
    action: str,
    key: RouteKey,
    details: dict[str, Any],
) -> None:
    emit_audit_event(
        route_context(key, details),
        action,
        surface="routing",
        input_data={"resource_kind": key.resource_kind.value},
        output_data=details,
        actor_type=actor_type,
        producer=producer,
        strict=False,
    )


def route_context(key: RouteKey, details: Mapping[str, Any]) -> RequestContext:
    """The context a route event is emitted under: the route's scope, the actor as user."""
    actor = details.get("actor")
    return RequestContext(
        tenant_id=key.tenant_id,
        env=key.env,  # type: ignore[arg-type]
        mode=key.mode,  # type: ignore[arg-type]
        project_id=key.project_id,
        user_id=str(actor) if actor else None,
    )

"""emit_audit_event and the routing registry's audit hook.

An audit event is a StreamEvent with event_type ``audit.<action>`` in the stream
``audit/<surface>`` of the acting scope. It goes through the same fire-and-forget
path as every event ("handed over" = accepted into the producer's buffer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from event_spine.errors import SpineError
from event_spine.producers.emit import get_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import AuditHook
from event_spine.schemas.context import RequestContext
from event_spine.schemas.routes import RouteKey

AUDIT_EVENT_PREFIX: Final = "audit."
log = logging.getLogger(__name__)


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
) -> str:
    """Emit one audit event; returns its event_id."""
    target = producer or get_default_producer()
    payload = {
        "action": action,
        "actor_type": actor_type,
        "actor_id": ctx.user_id,
        "input": input_data,
        "output": output_data,
    }
    return target.emit_event(
        ctx, f"{AUDIT_EVENT_PREFIX}{action}", f"audit/{surface}", payload, metadata
    )


def registry_audit_hook(producer: EventSpineProducer, actor_type: str = "service") -> AuditHook:
    """An AuditHook for RoutingRegistry: each lookup or change becomes an audit event
    in the audited route's own scope (so a tenant sees who read or moved its routes)."""

    def hook(action: str, key: RouteKey, details: dict[str, Any]) -> None:
        try:
            _emit_route_audit(producer, actor_type, action, key, details)
        except SpineError as exc:
            # Routing must keep working when auditing cannot hand over (buffer full,
            # closed producer); strict auditing is emit_audit_event's caller's choice.
            log.warning("route audit event %s for %s not emitted: %s", action, key, exc)

    return hook


def _emit_route_audit(
    producer: EventSpineProducer,
    actor_type: str,
    action: str,
    key: RouteKey,
    details: dict[str, Any],
) -> None:
    ctx = RequestContext(
        tenant_id=key.tenant_id,
        env=key.env,  # type: ignore[arg-type]
        mode=key.mode,  # type: ignore[arg-type]
        project_id=key.project_id,
        user_id=str(details.get("actor")) if details.get("actor") else None,
    )
    emit_audit_event(
        ctx,
        action,
        surface="routing",
        input_data={"resource_kind": key.resource_kind.value},
        output_data=details,
        actor_type=actor_type,
        producer=producer,
    )

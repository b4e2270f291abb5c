"""Audit events: who did what, emitted through the spine, hash-chained at the sink."""

from event_spine.audit.chain import has_audit_events, link_audit_chain
from event_spine.audit.emit import (
    AuditSettings,
    audit_failures,
    emit_audit_event,
    registry_audit_hook,
    route_context,
)
from event_spine.audit.verify import BrokenLink, ChainReport, verify_chain

__all__ = [
    "AuditSettings",
    "BrokenLink",
    "ChainReport",
    "audit_failures",
    "emit_audit_event",
    "has_audit_events",
    "link_audit_chain",
    "registry_audit_hook",
    "route_context",
    "verify_chain",
]

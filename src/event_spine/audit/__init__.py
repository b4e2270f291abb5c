"""Audit events: who did what, emitted through the spine like any other event."""

from event_spine.audit.emit import AUDIT_EVENT_PREFIX, emit_audit_event, registry_audit_hook

__all__ = ["AUDIT_EVENT_PREFIX", "emit_audit_event", "registry_audit_hook"]

"""Consumers: routed, scope-checked read services."""

from event_spine.consumers.event_stream import EventStreamService

__all__ = ["EventStreamService"]

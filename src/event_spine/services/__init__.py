"""Read services: routed, scope-checked reads of the event stream (not Kafka consumers)."""

from event_spine.services.event_stream import EventStreamService

__all__ = ["EventStreamService"]

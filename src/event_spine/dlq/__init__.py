"""Dead-letter tools: list, show and replay what the sink parked."""

from event_spine.dlq.tools import DeadLetterRecord, read_dead_letters, replay_dead_letters

__all__ = ["DeadLetterRecord", "read_dead_letters", "replay_dead_letters"]

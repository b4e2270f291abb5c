"""Dead-letter tools: list, show and replay what the sink parked."""

from event_spine.dlq.pages import DeadLetterPage, read_dead_letter_page
from event_spine.dlq.tools import DeadLetterRecord, read_dead_letters, replay_dead_letters

__all__ = [
    "DeadLetterPage",
    "DeadLetterRecord",
    "read_dead_letter_page",
    "read_dead_letters",
    "replay_dead_letters",
]

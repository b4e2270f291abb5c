"""Dead-letter tools: list, show and replay what the sink parked (once per ledger)."""

from event_spine.dlq.ledger import MemoryReplayLedger, Replayed, ReplayLedger
from event_spine.dlq.ledgers import replay_ledger_for
from event_spine.dlq.pages import DeadLetterPage, read_dead_letter_page
from event_spine.dlq.records import REPLAYED_FROM, DeadLetterRecord, Position, parse_position
from event_spine.dlq.replay import ReplayReport, replay_dead_letters
from event_spine.dlq.scan import read_dead_letters, read_letters

__all__ = [
    "REPLAYED_FROM",
    "DeadLetterPage",
    "DeadLetterRecord",
    "MemoryReplayLedger",
    "Position",
    "ReplayLedger",
    "ReplayReport",
    "Replayed",
    "parse_position",
    "read_dead_letter_page",
    "read_dead_letters",
    "read_letters",
    "replay_dead_letters",
    "replay_ledger_for",
]

"""The dead-letter tools under their former module name (dlq.tools held them all before
dlq.scan, dlq.replay and dlq.ledger): existing imports keep working."""

from event_spine.dlq.ledger import MemoryReplayLedger, Replayed, ReplayLedger
from event_spine.dlq.records import REPLAYED_FROM, DeadLetterRecord, Position, parse_position
from event_spine.dlq.replay import ReplayReport, replay_dead_letters
from event_spine.dlq.scan import read_dead_letters, read_letters

__all__ = [
    "REPLAYED_FROM",
    "DeadLetterRecord",
    "MemoryReplayLedger",
    "Position",
    "ReplayLedger",
    "ReplayReport",
    "Replayed",
    "parse_position",
    "read_dead_letters",
    "read_letters",
    "replay_dead_letters",
]

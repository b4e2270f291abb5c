"""Sink workers: consume batches, write them to routed stores, commit what is durable."""

from event_spine.sink_workers.dead_letters import DeadLetter, header_map
from event_spine.sink_workers.processor import BatchOutcome, BatchProcessor, BatchRetry
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.stats import SinkStats
from event_spine.sink_workers.worker import SinkWorker

__all__ = [
    "BatchOutcome",
    "BatchProcessor",
    "BatchRetry",
    "DeadLetter",
    "SinkSettings",
    "SinkStats",
    "SinkWorker",
    "header_map",
]

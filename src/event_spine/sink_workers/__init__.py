"""Sink workers: a Kafka consumer group member wired to the batch pipeline.

The pipeline itself (batching, commit policy, processor, dead letters) lives in
``event_spine.pipeline``, shared with the replayer.
"""

from event_spine.pipeline.dead_letters import header_map
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.status import WorkerStatus
from event_spine.sink_workers.worker import SinkWorker

__all__ = [
    "SinkSettings",
    "SinkWorker",
    "WorkerStatus",
    "header_map",
]

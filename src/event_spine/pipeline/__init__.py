"""The batch pipeline shared by the sink worker and the replayer.

- ``BatchPipeline`` (``batches``): prepare batch N+1 while batch N is written,
  commit N once it is durable, wait for the batch in flight on a revoke.
- ``CommitUnit`` (``offsets``): the commit policy, per partition.
- ``RewindAndPause`` / ``WaitAndRetry`` (``backpressure``): what happens while a
  store fails (give the batch back to Kafka, or wait and write it again).
- ``BatchProcessor`` (``processor``): decode, route and write one batch; failure
  classes and dead letters (``dead_letters``).
- ``PipelineStats`` (``status``): the counters health, metrics and progress read.
"""

from event_spine.pipeline.backoff import Backoff
from event_spine.pipeline.backpressure import Backpressure, Failure, RewindAndPause, WaitAndRetry
from event_spine.pipeline.batches import Batch, BatchOwner, BatchPipeline, RebalanceListener
from event_spine.pipeline.dead_letters import DeadLetter, header_map
from event_spine.pipeline.offsets import CommitUnit, PartitionConsumer, batch_ends
from event_spine.pipeline.processor import (
    BatchOutcome,
    BatchProcessor,
    BatchRetry,
    PreparedBatch,
    failure_class,
)
from event_spine.pipeline.status import PipelineStats

__all__ = [
    "Backoff",
    "Backpressure",
    "Batch",
    "BatchOutcome",
    "BatchOwner",
    "BatchPipeline",
    "BatchProcessor",
    "BatchRetry",
    "CommitUnit",
    "DeadLetter",
    "Failure",
    "PartitionConsumer",
    "PipelineStats",
    "PreparedBatch",
    "RebalanceListener",
    "RewindAndPause",
    "WaitAndRetry",
    "batch_ends",
    "failure_class",
    "header_map",
]

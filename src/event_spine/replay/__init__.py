"""Replay a topic's history into a store, verify two stores, and cut a route over.

- ``Replayer``: a bounded aiokafka job in its own group ``spine-replay-<name>``,
  writing through the sink's BatchProcessor into one target store (idempotent:
  positions are Kafka offsets), resumable, with filters and start positions.
- ``verify``: stream-by-stream comparison of two stores (counts, positions, digest).
- ``run_cutover``: replay, verify, switch the route, wait out the workers' route
  cache, catch up, verify again.
"""

from event_spine.errors import CutoverFailed, ReplayFailed
from event_spine.replay.cutover import (
    Cutover,
    CutoverPlan,
    CutoverReport,
    CutoverStep,
    run_cutover,
    wait_for_group,
)
from event_spine.replay.filters import ReplayFilter, probe_stream
from event_spine.replay.progress import ReplayProgress, SkippedRecord
from event_spine.replay.reader import PartitionProgress, ReaderSettings, StartFrom, TopicReader
from event_spine.replay.replayer import (
    ReplayConfig,
    Replayer,
    replay,
    replay_group,
)
from event_spine.replay.target import ReplayTarget, TargetRoutes
from event_spine.replay.verify import (
    Differences,
    DiffSample,
    StreamReport,
    VerifyReport,
    discover_streams,
    streams_of_scope,
    verify,
)

__all__ = [
    "Cutover",
    "CutoverFailed",
    "CutoverPlan",
    "CutoverReport",
    "CutoverStep",
    "DiffSample",
    "Differences",
    "PartitionProgress",
    "ReaderSettings",
    "ReplayConfig",
    "ReplayFailed",
    "ReplayFilter",
    "ReplayProgress",
    "ReplayTarget",
    "Replayer",
    "SkippedRecord",
    "StartFrom",
    "StreamReport",
    "TargetRoutes",
    "TopicReader",
    "VerifyReport",
    "discover_streams",
    "probe_stream",
    "replay",
    "replay_group",
    "run_cutover",
    "streams_of_scope",
    "verify",
    "wait_for_group",
]

"""What a sink worker's endpoints read: one snapshot, so they never see the worker."""

from __future__ import annotations

from dataclasses import dataclass

from event_spine.pipeline.status import PipelineStats


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A snapshot of one worker for health, readiness, metrics and lag."""

    running: bool
    ready: bool
    stats: PipelineStats
    #: Partitions of the topic this member owns right now.
    owned_partitions: frozenset[int]
    #: (hits, misses) of the route cache.
    route_cache: tuple[int, int]

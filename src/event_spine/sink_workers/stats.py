"""Counters of one sink worker (read by tests, the CLI and the metrics endpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SinkStats:
    """Totals since start."""

    batches: int = 0
    records: int = 0
    written: int = 0
    duplicates: int = 0
    retries: int = 0
    commits: int = 0
    commit_failures: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What the worker's endpoints read, as one snapshot (they never see the worker)."""

    running: bool
    ready: bool
    stats: SinkStats
    #: Partitions of the topic this member owns right now.
    owned_partitions: frozenset[int]
    #: (hits, misses) of the route cache.
    route_cache: tuple[int, int]

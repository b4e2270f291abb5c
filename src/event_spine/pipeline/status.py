"""The counters of one batch pipeline (a sink worker's, or a replay's).

Plain data, importing nothing of event-spine: the metrics collector, the health
endpoints and the replay progress read it without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PipelineStats:
    """Totals since start."""

    batches: int = 0
    records: int = 0
    written: int = 0
    duplicates: int = 0
    #: Batches rewound or retried (store, registry or dead-letter topic failing).
    retries: int = 0
    commits: int = 0
    commit_failures: int = 0
    #: Dead letters by reason (a replay counts them as skipped).
    dead_lettered: dict[str, int] = field(default_factory=dict)
    #: Holds by reason: ``route_missing`` (on_route_missing=hold) and
    #: ``store_layout_outdated`` (a store to migrate); each retry of a hold counts.
    held: dict[str, int] = field(default_factory=dict)
    #: (topic, partition) -> the last offset committed.
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    last_error: str | None = None

"""Counters of one replay run, handed to progress callbacks after every batch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from event_spine.pipeline.processor import BatchOutcome
from event_spine.pipeline.status import PipelineStats
from event_spine.replay.reader import PartitionProgress


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """A record the replay did not write, and why (poison, refused by the store...)."""

    partition: int
    offset: int
    reason: str
    message: str


@dataclass(slots=True)
class ReplayProgress:
    """Totals since the run started. ``read`` counts records below the captured ends."""

    name: str
    group_id: str
    read: int = 0
    filtered: int = 0
    skipped_samples: list[SkippedRecord] = field(default_factory=list)
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    max_samples: int = 20
    #: The replay pipeline's counters (written, retries, commits...).
    stats: PipelineStats = field(default_factory=PipelineStats)

    @property
    def written(self) -> int:
        """Events newly stored."""
        return self.stats.written

    @property
    def duplicates(self) -> int:
        """Events the target already held (absorbed)."""
        return self.stats.duplicates

    @property
    def skipped(self) -> dict[str, int]:
        """Records not written, by reason (what the live sink dead-letters)."""
        return self.stats.dead_lettered

    @property
    def retries(self) -> int:
        """Failed attempts written again."""
        return self.stats.retries

    @property
    def commits(self) -> int:
        """Position commits to the replay's group."""
        return self.stats.commits

    @property
    def commit_failures(self) -> int:
        """Position commits the broker refused (the batch was durable)."""
        return self.stats.commit_failures

    @property
    def elapsed_s(self) -> float:
        """Seconds since start (frozen when the run finished)."""
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def events_per_s(self) -> float:
        """Records read per second."""
        elapsed = self.elapsed_s
        return self.read / elapsed if elapsed > 0 else 0.0

    @property
    def skipped_total(self) -> int:
        """Records not written because they were poison or the store refused them."""
        return sum(self.skipped.values())

    @property
    def total(self) -> int:
        """Records between the start positions and the ends (the work of a bounded run)."""
        return sum(p.end - p.start for p in self.partitions.values())

    @property
    def completed(self) -> int:
        """Records handled so far, by position."""
        return sum(p.position - p.start for p in self.partitions.values())

    @property
    def done(self) -> bool:
        """Every partition reached its end."""
        return all(p.done for p in self.partitions.values())

    def sample(self, outcome: BatchOutcome) -> None:
        """Keep the first ``max_samples`` skipped records (the pipeline counts them)."""
        for letter in outcome.dead_letters[: self.max_samples - len(self.skipped_samples)]:
            rec = letter.record
            self.skipped_samples.append(
                SkippedRecord(rec.partition, rec.offset, letter.reason, str(letter.error))
            )

    def summary(self) -> str:
        """One line for logs and the CLI."""
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"replay {self.name!r}: read {self.read}, written {self.written}, duplicates "
            f"{self.duplicates}, filtered {self.filtered}, skipped {skipped}, "
            f"{self.events_per_s:,.0f} events/s over {self.elapsed_s:.1f}s"
        )

"""Replayer: read a topic's history into one target store, idempotently, and stop at the end.

A bounded job, so a raw aiokafka loop rather than faststream. Per batch:

1. poll records below each partition's end (captured at start from fetch high
   watermarks, see ``reader``);
2. drop what the filter excludes;
3. hand the rest to the batch pipeline the sink worker runs too
   (``event_spine.pipeline``): the ``BatchProcessor`` decodes, checks keys and
   writes idempotently (a stored event's position is its Kafka offset, so a replay
   of the same topic yields the same positions as the live sink); batch N+1 is
   decoded while batch N is written;
4. only then the ``CommitUnit`` commits the positions to the replay's own group
   ``spine-replay-<name>``, so a rerun with the same name resumes after the last
   durable batch (a batch written but not committed comes again and is absorbed
   as duplicates).

The live sink's routing rules apply: with ``registry`` given, events of a scope
without an ``event_spine`` route (``route_missing``) or whose route names a
non-durable backend outside lab (``route_not_durable``) are skipped and counted by
reason, as the live workers dead-letter them. ``include_unrouted=True`` writes every
scope instead; a replay into a backend (not a route) needs one or the other.

Poison never stops a replay: it is counted by reason and skipped, never written
(so are events the target refuses one by one, as the sink dead-letters them). A
target that stays unavailable or keeps failing stops it (ReplayFailed) after
``max_batch_attempts`` (``WaitAndRetry``: a bounded job waits and writes the batch
again, where the sink gives it back to Kafka), with nothing committed past the
last durable batch; a rerun resumes. So does a target that holds events back (a
store to migrate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from event_spine.audit.keys import LocalAuditKeys
from event_spine.backends.factory import StoreFactory
from event_spine.errors import ConfigurationError, ReplayFailed
from event_spine.kafka.records import RawRecord
from event_spine.kafka.settings import KafkaTarget
from event_spine.pipeline.backoff import Backoff
from event_spine.pipeline.backpressure import WaitAndRetry
from event_spine.pipeline.batches import Batch, BatchPipeline
from event_spine.pipeline.offsets import CommitUnit
from event_spine.pipeline.processor import BatchOutcome, BatchProcessor
from event_spine.replay.filters import ReplayFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS, ReaderSettings, StartFrom, TopicReader
from event_spine.replay.target import ReplayTarget, TargetRoutes
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES

log = logging.getLogger(__name__)

GROUP_PREFIX: Final = "spine-replay-"

ProgressCallback = Callable[[ReplayProgress], None]


def replay_group(name: str) -> str:
    """The consumer group that holds a replay's positions."""
    return f"{GROUP_PREFIX}{name}"


@dataclass(frozen=True)
class ReplayConfig:
    """One replay: source topic, target store, filter, start, and tuning."""

    kafka: KafkaTarget
    topic: str
    name: str
    target: ReplayTarget
    filters: ReplayFilter = field(default_factory=ReplayFilter)
    start: StartFrom = field(default_factory=StartFrom.resume)
    follow: bool = False
    max_records: int = DEFAULT_MAX_RECORDS
    fetch_max_wait_ms: int = 100
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    retry_backoff_initial_ms: int = 200
    retry_backoff_max_ms: int = 5_000
    max_batch_attempts: int = 10
    max_samples: int = 20
    #: The live registry: scopes it does not route (or routes to a non-durable
    #: backend outside lab) are skipped by reason, as the live sink dead-letters them.
    registry: RoutingRegistry | None = None
    #: Write every scope read, routed or not (the registry is not consulted).
    include_unrouted: bool = False

    @property
    def group_id(self) -> str:
        """The replay's own consumer group (never the live sink's)."""
        return replay_group(self.name)

    def effective_filter(self) -> ReplayFilter:
        """The filter, bounded to the target route's scope when the target is a route."""
        route = self.target.route
        if route is None:
            return self.filters
        return self.filters.restricted_to(route.tenant_id, route.env, route.mode, route.project_id)


class Replayer:
    """Runs one replay; ``progress`` is live while it runs."""

    def __init__(
        self,
        config: ReplayConfig,
        *,
        on_progress: ProgressCallback | None = None,
        stores: StoreFactory | None = None,
    ) -> None:
        self.config = config
        self.filter = config.effective_filter()
        self.progress = ReplayProgress(config.name, config.group_id, max_samples=config.max_samples)
        self._on_progress = on_progress
        self._own_stores = stores is None
        self._stores = stores or StoreFactory()
        registry = None if config.include_unrouted else config.registry
        processor = BatchProcessor(
            TargetRoutes(config.target, registry),
            self._stores,
            max_event_bytes=config.max_event_bytes,
            max_attempts=config.max_batch_attempts,
            # A cutover must rebuild the chain the sink wrote: same key (SPINE_AUDIT_KEY).
            link_key=LocalAuditKeys().link_key(),
        )
        backoff = Backoff(config.retry_backoff_initial_ms, config.retry_backoff_max_ms)
        self._offsets = CommitUnit(self.progress.stats)
        retry = WaitAndRetry(backoff, config.max_batch_attempts, self._give_up)
        self._pipeline = BatchPipeline(self._offsets, retry, self, processor)

    async def run(self) -> ReplayProgress:
        """Replay until every partition reaches its end (or until cancelled with follow)."""
        c = self.config
        c.target.validate()
        if c.registry is None and not c.include_unrouted and c.target.route is None:
            raise ConfigurationError(
                f"replay {c.name!r} into {c.target.describe()}: pass the routing registry "
                f"(`--registry`) so scopes the live sink does not store are skipped, or "
                f"`--include-unrouted` to write every scope read."
            )
        self.progress.started_at = time.monotonic()
        reader = TopicReader(
            ReaderSettings(
                kafka=c.kafka,
                topic=c.topic,
                group_id=c.group_id,
                client_id=c.group_id,
                max_records=c.max_records,
                fetch_max_wait_ms=c.fetch_max_wait_ms,
                max_partition_fetch_bytes=c.max_partition_fetch_bytes,
            )
        )
        try:
            await reader.open(c.start, follow=c.follow)
            self._pipeline.bind(reader)
            self.progress.partitions = reader.partitions
            # Commit the starts: a later resume continues from this run's start (not an
            # older run's) and covers exactly the partitions this run covers.
            await self._offsets.commit(reader.positions())
            self._report()
            await self._loop(reader)
        finally:
            self.progress.finished_at = time.monotonic()
            await self._pipeline.close()
            await reader.close()
            if self._own_stores:
                await self._stores.close()
        log.info("%s", self.progress.summary())
        return self.progress

    async def _loop(self, reader: TopicReader) -> None:
        """Poll, filter and submit each batch to the pipeline (which decodes batch N+1
        while batch N is written, and commits N's positions once N is durable).

        The positions a batch commits are read right after its own poll, so a commit
        never covers records that are not durable yet; they also cover the records
        the filter dropped and offsets that hold no record.
        """
        follow = self.config.follow
        while follow or not reader.done:
            records = self._kept(await reader.poll(follow=follow))
            moved = await reader.advance(follow=follow)
            if records or moved:
                await self._pipeline.submit(Batch(records, moved))
        await self._pipeline.flush()

    def _kept(self, records: Sequence[RawRecord]) -> Sequence[RawRecord]:
        """The records the filter keeps (all of them without a filter)."""
        self.progress.read += len(records)
        if self.filter.empty:
            return records
        kept = [rec for rec in records if self.filter.keeps(rec.key, rec.value)]
        self.progress.filtered += len(records) - len(kept)
        return kept

    # -- BatchOwner: what the pipeline calls around each batch ------------------------

    async def settle(self, outcome: BatchOutcome) -> None:
        """Stop instead of skipping what the target failed to write for unknown reasons.

        The sink dead-letters such a group as its last resort; a replay must not commit
        past events it could not write (events the store refuses one by one, as the
        sink does, are only counted as skipped). Nor past events the target holds back
        (a store to migrate): the sink holds them, a replay stops.
        """
        failed = [letter for letter in outcome.dead_letters if letter.reason == "store_error"]
        if failed:
            raise ReplayFailed(
                f"replay {self.config.name!r}: the target failed to write {len(failed)} events "
                f"({failed[0].error!r}); fix it and rerun with the same name to resume"
            ) from failed[0].error
        if outcome.held:
            cause = outcome.held_cause or RuntimeError("events held")
            raise self._give_up("the target cannot take some events yet", cause) from cause

    def committed(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Samples of what was skipped; a progress report."""
        self.progress.sample(outcome)
        self._report()

    def _give_up(self, what: str, cause: BaseException) -> ReplayFailed:
        return ReplayFailed(
            f"replay {self.config.name!r}: {what} ({cause!r}); rerun with the same name to resume"
        )

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress)


async def replay(
    config: ReplayConfig, on_progress: ProgressCallback | None = None
) -> ReplayProgress:
    """Run one replay to its end."""
    return await Replayer(config, on_progress=on_progress).run()

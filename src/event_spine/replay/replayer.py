"""Replayer: read a topic's history into one target store, idempotently, and stop at the end.

A bounded job, so a raw aiokafka loop rather than faststream. Per batch:

1. poll records below each partition's end (captured at start from fetch high
   watermarks, see ``reader``);
2. drop what the filter excludes;
3. hand the rest to the sink's ``BatchProcessor`` (decode, key check, idempotent
   write; a stored event's position is its Kafka offset, so a replay of the same
   topic yields the same positions as the live sink); batch N+1 is decoded while
   batch N is written;
4. only then commit the positions to the replay's own group ``spine-replay-<name>``,
   so a rerun with the same name resumes after the last durable batch (a batch
   written but not committed comes again and is absorbed as duplicates).

The live sink's routing rules apply: with ``registry`` given, events of a scope
without an ``event_spine`` route (``route_missing``) or whose route names a
non-durable backend outside lab (``route_not_durable``) are skipped and counted by
reason, as the live workers dead-letter them. ``include_unrouted=True`` writes every
scope instead; a replay into a backend (not a route) needs one or the other.

Poison never stops a replay: it is counted by reason and skipped, never written
(so are events the target refuses one by one, as the sink dead-letters them). A
target that stays unavailable or keeps failing stops it (ReplayFailed) after
``max_batch_attempts``, with nothing committed past the last durable batch; a rerun
resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from event_spine.audit.keys import LocalAuditKeys
from event_spine.backends.factory import StoreFactory
from event_spine.errors import ConfigurationError, ReplayFailed, StoreUnavailable
from event_spine.kafka.records import RawRecord
from event_spine.kafka.settings import KafkaTarget
from event_spine.replay.filters import ReplayFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS, ReaderSettings, StartFrom, TopicReader
from event_spine.replay.target import ReplayTarget, TargetRoutes
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES
from event_spine.sink_workers.backoff import Backoff
from event_spine.sink_workers.processor import (
    BatchOutcome,
    BatchProcessor,
    BatchRetry,
    PreparedBatch,
)

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
        self._processor = BatchProcessor(
            TargetRoutes(config.target, registry),
            self._stores,
            max_event_bytes=config.max_event_bytes,
            max_attempts=config.max_batch_attempts,
            # A cutover must rebuild the chain the sink wrote: same key (SPINE_AUDIT_KEY).
            link_key=LocalAuditKeys().link_key(),
        )
        self._backoff = Backoff(config.retry_backoff_initial_ms, config.retry_backoff_max_ms)

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
            self.progress.partitions = reader.partitions
            # Commit the starts: a later resume continues from this run's start (not an
            # older run's) and covers exactly the partitions this run covers.
            await self._commit(reader, reader.positions())
            self._report()
            await self._loop(reader)
        finally:
            self.progress.finished_at = time.monotonic()
            await reader.close()
            if self._own_stores:
                await self._stores.close()
        log.info("%s", self.progress.summary())
        return self.progress

    async def _loop(self, reader: TopicReader) -> None:
        """Decode batch N+1 while batch N is written, as the sink does.

        Order stays strict: N+1 is written only after N was written and its positions
        committed. The positions a batch commits are read right after its own poll,
        so a commit never covers records that are not durable yet.
        """
        follow = self.config.follow
        pending: asyncio.Future[None] | None = None
        try:
            while follow or not reader.done:
                records = self._kept(await reader.poll(follow=follow))
                moved = await reader.advance(follow=follow)
                prepared = await self._try_prepare(records) if records else None
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(self._finish(reader, records, prepared, moved))
                # Start the write now, before the next poll and decode (which may not yield).
                await asyncio.sleep(0)
            if pending is not None:
                await pending
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending

    def _kept(self, records: Sequence[RawRecord]) -> Sequence[RawRecord]:
        """The records the filter keeps (all of them without a filter)."""
        self.progress.read += len(records)
        if self.filter.empty:
            return records
        kept = [rec for rec in records if self.filter.keeps(rec.key, rec.value)]
        self.progress.filtered += len(records) - len(kept)
        return kept

    async def _try_prepare(self, records: Sequence[RawRecord]) -> PreparedBatch | None:
        """Decode and route; None when the target must be retried (``_process`` does)."""
        try:
            return await self._processor.prepare(records)
        except (BatchRetry, StoreUnavailable):
            return None

    async def _finish(
        self,
        reader: TopicReader,
        records: Sequence[RawRecord],
        prepared: PreparedBatch | None,
        moved: dict[TopicPartition, int],
    ) -> None:
        """Write one batch, then commit the positions after it."""
        if records:
            self.progress.add(await self._process(records, prepared))
        await self._commit(reader, moved)
        if records or moved:
            self._report()

    async def _process(
        self, records: Sequence[RawRecord], prepared: PreparedBatch | None
    ) -> BatchOutcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                if prepared is not None:
                    outcome = await self._processor.write(prepared)
                else:
                    outcome = await self._processor.process(records)
            except (BatchRetry, StoreUnavailable) as exc:
                prepared = None  # a retry decodes again: a fresh outcome, no double counts
                cause = exc.cause if isinstance(exc, BatchRetry) else exc
                if attempt >= self.config.max_batch_attempts:
                    raise ReplayFailed(
                        f"replay {self.config.name!r}: the target failed {attempt} times in a "
                        f"row ({cause!r}); rerun with the same name to resume"
                    ) from cause
                self.progress.retries += 1
                delay = self._backoff.next_delay_s(getattr(exc, "retry_after_s", None))
                log.warning("replay batch failed (%r); retrying in %.2fs", cause, delay)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self._refuse_store_errors(outcome)
            return outcome

    def _refuse_store_errors(self, outcome: BatchOutcome) -> None:
        """Stop instead of skipping what the target failed to write for unknown reasons.

        The sink dead-letters such a group as its last resort; a replay must not commit
        past events it could not write (events the store refuses one by one, as the
        sink does, are only counted as skipped).
        """
        failed = [letter for letter in outcome.dead_letters if letter.reason == "store_error"]
        if failed:
            raise ReplayFailed(
                f"replay {self.config.name!r}: the target failed to write {len(failed)} events "
                f"({failed[0].error!r}); fix it and rerun with the same name to resume"
            ) from failed[0].error

    async def _commit(self, reader: TopicReader, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await reader.commit(offsets)
        except KafkaError as exc:
            # The batch is durable; a rerun re-reads it and the store absorbs it.
            self.progress.commit_failures += 1
            log.warning("replay offset commit failed: %r", exc)
            return
        self.progress.commits += 1

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress)


async def replay(
    config: ReplayConfig, on_progress: ProgressCallback | None = None
) -> ReplayProgress:
    """Run one replay to its end."""
    return await Replayer(config, on_progress=on_progress).run()

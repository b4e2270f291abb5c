"""BatchPipeline: prepare batch N+1 while batch N is written; commit N once it is durable.

One loop for the sink worker and the replayer (docs/design.md, "The batch
pipeline"). Per ``submit(batch)``:

1. prepare it (decode, route: CPU work on this thread, no store write), while the
   previous batch's write task waits on its store;
2. wait for the previous batch: if it was given back (rewound), give this one back
   too, since N must never be written ahead of N-1 (nor committed);
3. drop the records of held partitions fetched before their rewind (stale);
4. start its write task: write, settle the dead letters (``BatchOwner.settle``),
   count, commit through the ``CommitUnit`` (the commit policy), hold what the
   outcome held.

A failure of any step goes to the ``Backpressure`` policy, which gives the batch
back (sink) or waits and writes it again (replay). ``drain()`` waits for the batch
in flight: a revoke and a stop let it finish and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener

from event_spine.errors import StoreLayoutOutdated, is_retriable
from event_spine.kafka.records import RawRecord
from event_spine.pipeline.backpressure import Backpressure, Failure
from event_spine.pipeline.offsets import (
    CommitUnit,
    PartitionConsumer,
    PartitionKey,
    batch_ends,
    batch_starts,
)
from event_spine.pipeline.processor import BatchOutcome, BatchProcessor, BatchRetry, PreparedBatch
from event_spine.pipeline.status import PipelineStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Batch:
    """Records to write, and the offsets their commit covers once durable."""

    records: Sequence[RawRecord]
    #: Per partition, the next offset to read after this batch.
    ends: Mapping[PartitionKey, int]

    @classmethod
    def of(cls, records: Sequence[RawRecord]) -> Batch:
        """A batch committing ``max offset + 1`` per partition of its records."""
        return cls(records, batch_ends(records))

    def without(self, partitions: set[PartitionKey]) -> Batch:
        """The batch minus every record (and end) of ``partitions``."""
        return Batch(
            [rec for rec in self.records if (rec.topic, rec.partition) not in partitions],
            {key: end for key, end in self.ends.items() if key not in partitions},
        )


class BatchOwner(Protocol):
    """What differs between the sink worker and the replayer around one batch."""

    async def settle(self, outcome: BatchOutcome) -> None:
        """Before the commit: deliver the dead letters (the sink publishes them and
        waits for the acks) or refuse the outcome (a replay stops). Raise BatchRetry
        to have the batch come again."""

    def committed(self, batch: Batch, outcome: BatchOutcome) -> None:
        """After the commit: logs, metrics, progress."""


class BatchPipeline:
    """Pipelined, ordered batch writes with commit-after-durable (module doc)."""

    def __init__(
        self,
        offsets: CommitUnit,
        backpressure: Backpressure,
        owner: BatchOwner,
        processor: BatchProcessor | None = None,
    ) -> None:
        #: Set before the first submit (a sink worker builds it once its registry is open).
        self.processor = processor
        self.offsets = offsets
        self.backpressure = backpressure
        self.owner = owner
        self.stats: PipelineStats = offsets.stats
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending: asyncio.Future[bool] | None = None
        self._pending_batch: Batch | None = None
        self._last_cause: BaseException | None = None

    def bind(self, consumer: PartitionConsumer) -> None:
        """The consumer whose offsets this pipeline commits, seeks and pauses."""
        self.offsets.consumer = consumer

    @property
    def blocked(self) -> bool:
        """True while backing off (partitions paused, or no batch written since a failure)."""
        return self.backpressure.blocked

    async def submit(self, batch: Batch) -> None:
        """Prepare ``batch``, wait for the previous one, then start writing this one.

        Returns once its write task started (it may still be writing). Raises what
        the backpressure policy or the previous batch raised (a replay giving up).
        """
        self._idle.clear()
        try:
            prepared: PreparedBatch | None = None
            if batch.records:  # a replay's batch may only move positions (all filtered)
                self.stats.batches += 1
                self.stats.records += len(batch.records)
                prepared = await self._prepare(batch)
            given_back = bool(batch.records) and prepared is None
            previous, self._pending = self._pending, None
            previous_ok = await previous if previous is not None else True
            if not previous_ok:
                # N-1 was given back: N must not be written ahead of it (nor committed).
                # Giving both back seeks every partition to the lower offset.
                earlier = self._pending_batch.records if self._pending_batch else ()
                cause = self._last_cause or RuntimeError("the previous batch is retried")
                await self._failed([*earlier, *batch.records], BatchRetry(cause), 1)
                return
            if given_back:
                return
            stale = self.offsets.stale(batch.records)
            if stale:
                batch = batch.without(stale)
                if prepared is not None:
                    prepared.drop(stale)
            self._pending_batch = batch
            self._pending = asyncio.ensure_future(self._complete(batch, prepared))
            # Let the write task run up to its first real wait (the store call) now:
            # the next batch is often already buffered, and preparing it never yields,
            # so without this the write would only start after the next prepare.
            await asyncio.sleep(0)
        finally:
            self._idle.set()

    async def flush(self) -> None:
        """Wait for the batch in flight (and raise what it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no batch is being prepared or written; False on timeout."""
        try:
            await asyncio.wait_for(self._drain(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        await self._idle.wait()
        pending = self._pending
        if pending is not None:
            await asyncio.shield(pending)

    async def close(self) -> None:
        """Cancel a batch still in flight (it is not committed) and pending timers."""
        self.backpressure.close()
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending

    async def revoked(self, timeout_s: float) -> None:
        """Partitions are being revoked: let the batch in flight finish and commit, so
        the next owner starts exactly after it (bounded: past ``timeout_s`` a
        redelivery is absorbed by idempotent writes). Held marks are forgotten: the
        next owner starts at the committed (held) offset."""
        await self.drain(timeout_s)
        self.offsets.forget_held()

    # -- one batch ----------------------------------------------------------------

    async def _prepare(self, batch: Batch) -> PreparedBatch | None:
        """Decode and route; None when the batch was given back."""
        assert self.processor is not None, "BatchPipeline.processor is not set"
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.processor.prepare(batch.records)
            except Exception as exc:
                if not await self._failed(batch.records, exc, attempt):
                    return None

    async def _complete(self, batch: Batch, prepared: PreparedBatch | None) -> bool:
        """Write, settle, commit. False when the batch was given back."""
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._write(batch, prepared)
                await self.owner.settle(outcome)
                break
            except Exception as exc:
                prepared = None  # a retry decodes again: a fresh outcome, no double counts
                if not await self._failed(batch.records, exc, attempt):
                    return False
        if not outcome.held:
            self.backpressure.succeeded()
        self._count(outcome)
        await self.offsets.commit(batch.ends, outcome.held)
        if outcome.held:
            self._hold(batch, outcome)
        self.owner.committed(batch, outcome)
        return True

    async def _write(self, batch: Batch, prepared: PreparedBatch | None) -> BatchOutcome:
        if not batch.records:
            return BatchOutcome()
        assert self.processor is not None
        if prepared is not None:
            return await self.processor.write(prepared)
        return await self.processor.process(batch.records)

    async def _failed(self, records: Sequence[RawRecord], exc: BaseException, attempt: int) -> bool:
        """Hand a failure to the backpressure policy; True: write the batch again now."""
        if isinstance(exc, BatchRetry):
            cause, retry_after_s, expected = exc.cause, exc.retry_after_s, True
        else:
            cause, retry_after_s = exc, getattr(exc, "retry_after_s", None)
            expected = is_retriable(exc)
        self._last_cause = cause
        self.stats.last_error = repr(cause)
        failure = Failure(batch_starts(records), cause, retry_after_s, attempt, expected)
        again = await self.backpressure.failed(failure)
        self.stats.retries += 1
        return again

    def _count(self, outcome: BatchOutcome) -> None:
        stats = self.stats
        stats.written += outcome.written
        stats.duplicates += outcome.duplicates
        for letter in outcome.dead_letters:
            stats.dead_lettered[letter.reason] = stats.dead_lettered.get(letter.reason, 0) + 1

    def _hold(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Hold only the partitions with an unrouted event (or one whose store must be
        migrated first), from it on."""
        self.offsets.hold(batch.records, outcome.held)
        cause = outcome.held_cause or RuntimeError("route missing (hold)")
        outdated = isinstance(cause, StoreLayoutOutdated)
        reason = "store_layout_outdated" if outdated else "route_missing"
        self.stats.held[reason] = self.stats.held.get(reason, 0) + 1
        if outdated:
            # The operator's action, in one line: the message names `spine migrate`.
            held = ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(outcome.held.items()))
            log.error("holding %s (nothing dead-lettered): %s", held, cause)
        self._last_cause = cause
        self.stats.last_error = repr(cause)
        self.backpressure.hold(outcome.held, cause)
        self.stats.retries += 1


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoke: wait (bounded) for the batch in flight; assign: re-pause while backing off."""

    def __init__(self, pipeline: BatchPipeline, revoke_timeout_s: float) -> None:
        self.pipeline = pipeline
        self.revoke_timeout_s = revoke_timeout_s

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Let the in-flight batch finish and commit before the partitions move."""
        await self.pipeline.revoked(self.revoke_timeout_s)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Pause state is lost on every rebalance."""
        self.pipeline.backpressure.assigned(assigned)

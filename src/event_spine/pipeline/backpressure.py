"""What a pipeline does while its store (or registry, or dead-letter topic) fails.

Two policies, one seam (``Backpressure``):

- ``RewindAndPause`` (the sink worker): give the batch back to Kafka: seek its
  partitions to the batch's first offsets, pause them, resume after a jittered
  backoff. Nothing is committed, the consumer keeps its group membership, and the
  partitions are read again (quixstreams' ``SinkBackpressureError`` does the same).
- ``WaitAndRetry`` (a replay, a bounded job with no group to keep): wait and write
  the same batch again, up to ``max_attempts``, then give up with an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition

from event_spine.pipeline.backoff import Backoff
from event_spine.pipeline.offsets import CommitUnit, PartitionKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt at a batch."""

    #: Per partition, the first offset the batch covers (where to read it again).
    starts: Mapping[PartitionKey, int]
    cause: BaseException
    retry_after_s: float | None
    #: 1 for the batch's first attempt.
    attempt: int
    #: False for an error that is neither a BatchRetry nor ``retriable``: a bug.
    expected: bool


class Backpressure(Protocol):
    """How a pipeline waits out a failing store."""

    @property
    def blocked(self) -> bool:
        """True from a failure until a batch is written again (not ready)."""

    async def failed(self, failure: Failure) -> bool:
        """True: write the batch again now; False: it was given back to the consumer
        (and must not be written). May raise to stop the pipeline."""

    def hold(self, starts: Mapping[PartitionKey, int], cause: BaseException) -> None:
        """Hold partitions from ``starts`` on (an unrouted event, a store to migrate)."""

    def succeeded(self) -> None:
        """A batch was written."""

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """A rebalance assigned ``partitions``."""

    def close(self) -> None:
        """Cancel pending timers."""


class RewindAndPause:
    """Rewind the failed batch's partitions, pause them, resume after a backoff."""

    def __init__(self, offsets: CommitUnit, backoff: Backoff) -> None:
        self.offsets = offsets
        self.backoff = backoff
        self._paused: set[TopicPartition] = set()
        self._resume_handle: asyncio.TimerHandle | None = None

    @property
    def blocked(self) -> bool:
        """Partitions paused, or no batch written since the last failure: through the
        whole outage, so a probe between two retries (partitions resumed) sees it."""
        return bool(self._paused) or self.backoff.failing

    async def failed(self, failure: Failure) -> bool:
        """Give the batch back; never write it again here."""
        if not failure.expected:  # a bug must not skip the batch: rewind, like a retry
            log.error("sink batch failed unexpectedly", exc_info=failure.cause)
        self._give_back(failure.starts, failure.cause, failure.retry_after_s)
        return False

    def hold(self, starts: Mapping[PartitionKey, int], cause: BaseException) -> None:
        """Rewind and pause only the held partitions, from their first held event."""
        self._give_back(starts, cause, None)

    def _give_back(
        self, starts: Mapping[PartitionKey, int], cause: BaseException, retry_after_s: float | None
    ) -> None:
        consumer = self.offsets.consumer
        if consumer is None:
            return
        self._paused |= self.offsets.rewind(starts)
        owned = consumer.assignment()
        consumer.pause(*[tp for tp in self._paused if tp in owned])
        delay_s = self.backoff.next_delay_s(retry_after_s)
        log.warning("batch rewound, partitions paused for %.2fs: %r", delay_s, cause)
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        self._resume_handle = asyncio.get_running_loop().call_later(delay_s, self._resume)

    def _resume(self) -> None:
        consumer, paused = self.offsets.consumer, self._paused
        self._paused = set()
        self._resume_handle = None
        if consumer is not None:
            owned = consumer.assignment()
            consumer.resume(*[tp for tp in paused if tp in owned])

    def succeeded(self) -> None:
        """Back to the initial delay."""
        self.backoff.reset()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Pause state is lost on every rebalance: re-pause while backing off."""
        consumer = self.offsets.consumer
        if self._paused and consumer is not None:
            self._paused = set(partitions)
            consumer.pause(*self._paused)

    def close(self) -> None:
        """No resume after stop."""
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None


#: Builds the error a WaitAndRetry stops with, from what failed and why.
GiveUp = Callable[[str, BaseException], Exception]


class WaitAndRetry:
    """Wait (jittered backoff) and write the same batch again, ``max_attempts`` times."""

    def __init__(self, backoff: Backoff, max_attempts: int, give_up: GiveUp) -> None:
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.give_up = give_up

    @property
    def blocked(self) -> bool:
        """True from a failure until a batch is written again."""
        return self.backoff.failing

    async def failed(self, failure: Failure) -> bool:
        """Wait, then True (write again); a bug, or the last attempt, raises."""
        if not failure.expected:
            raise failure.cause
        if failure.attempt >= self.max_attempts:
            raise self.give_up(
                f"the target failed {failure.attempt} times in a row", failure.cause
            ) from failure.cause
        delay_s = self.backoff.next_delay_s(failure.retry_after_s)
        log.warning("batch failed (%r); retrying in %.2fs", failure.cause, delay_s)
        await asyncio.sleep(delay_s)
        return True

    def hold(self, starts: Mapping[PartitionKey, int], cause: BaseException) -> None:
        """Nothing to hold in: stop (the cause says what to fix, e.g. `spine migrate`)."""
        raise self.give_up("the target cannot take some events yet", cause) from cause

    def succeeded(self) -> None:
        """Back to the initial delay."""
        self.backoff.reset()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """A bounded job assigns its partitions itself: nothing to do."""

    def close(self) -> None:
        """No timers."""

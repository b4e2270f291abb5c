"""One bounded page of dead letters: newest first, or forward from a position.

``read_dead_letters`` reads from the oldest letter on (all of it for replay, up to its
limit for `spine dlq list`); a listing served over HTTP pages either way, whatever
the DLQ's size. A page reads, per
partition, at most ``limit`` records in one offset window, and says where the next
page starts:

- newest first (the default): each partition's window ends at its end, or below
  ``before[p]``; the windows are merged newest first (by timestamp, each partition
  in offset order) until ``limit`` letters are taken. With one partition (the
  default DLQ) that reads exactly the letters returned.
- forward (``start=(partition, offset)``): one partition, from that offset up.

With a ``reason`` a page holds the matches among what it read: it may be short, or
empty, while ``next`` is set.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from event_spine.dlq.records import DeadLetterRecord, as_record
from event_spine.dlq.scan import opened_dlq_consumer
from event_spine.errors import BrokerUnavailable, InvalidQuery
from event_spine.kafka.settings import KafkaTarget
from event_spine.kafka.watermarks import assign_all, high_watermarks

#: A page's size: the default, and the most one request may ask for.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    """Letters in page order; ``next_before`` / ``next_start`` continue it (None: no more now)."""

    letters: list[DeadLetterRecord]
    next_before: dict[int, int] | None = None
    next_start: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Bounds:
    low: dict[int, int]
    high: dict[int, int]


async def read_dead_letter_page(
    kafka: KafkaTarget,
    dlq_topic: str,
    *,
    limit: int = DEFAULT_LIMIT,
    before: Mapping[int, int] | None = None,
    start: tuple[int, int] | None = None,
    reason: str | None = None,
    timeout_s: float = 10.0,
) -> DeadLetterPage:
    """A page of at most ``limit`` dead letters (module docstring).

    ``before``: partition -> offset, newest first below it (a partition left out:
    from its end). ``start``: (partition, offset), forward. Not both. An unknown
    partition raises InvalidQuery naming the argument.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("limit", f"must be 1 to {MAX_LIMIT}, got {limit}")
    if before is not None and start is not None:
        raise InvalidQuery("before", "cannot be combined with `from`")
    async with opened_dlq_consumer(kafka) as consumer:
        bounds = await _bounds(consumer, dlq_topic, timeout_s)
        if start is not None:
            return await _forward(consumer, dlq_topic, bounds, start, limit, reason, timeout_s)
        return await _newest(consumer, dlq_topic, bounds, before or {}, limit, reason, timeout_s)


async def _bounds(consumer: AIOKafkaConsumer, topic: str, timeout_s: float) -> _Bounds:
    tps = await assign_all(consumer, topic, timeout_s)
    lows = await consumer.beginning_offsets(tps)
    # ListOffsets' end is a lower bound on the local broker: fetch responses say it.
    highs = await high_watermarks(consumer, await consumer.end_offsets(tps), timeout_s)
    return _Bounds(
        {tp.partition: int(o) for tp, o in lows.items()},
        {tp.partition: o for tp, o in highs.items()},
    )


def _check_partition(name: str, partition: int, bounds: _Bounds) -> None:
    if partition not in bounds.high:
        known = ", ".join(str(p) for p in sorted(bounds.high))
        raise InvalidQuery(name, f"partition {partition} is not one of the DLQ's ({known})")


async def _forward(
    consumer: AIOKafkaConsumer,
    topic: str,
    bounds: _Bounds,
    start: tuple[int, int],
    limit: int,
    reason: str | None,
    timeout_s: float,
) -> DeadLetterPage:
    partition, offset = start
    _check_partition("from", partition, bounds)
    low = max(offset, bounds.low[partition])
    high = min(low + limit, bounds.high[partition])
    letters = await _window(consumer, TopicPartition(topic, partition), low, high, timeout_s)
    more = high < bounds.high[partition]
    return DeadLetterPage(
        [x for x in letters if reason is None or x.reason == reason],
        next_start=(partition, high) if more else None,
    )


async def _newest(
    consumer: AIOKafkaConsumer,
    topic: str,
    bounds: _Bounds,
    before: Mapping[int, int],
    limit: int,
    reason: str | None,
    timeout_s: float,
) -> DeadLetterPage:
    for partition in before:
        _check_partition("before", partition, bounds)
    cut: dict[int, int] = {}  # per partition: every letter at or above it was passed
    windows: dict[int, list[DeadLetterRecord]] = {}
    for partition, high in sorted(bounds.high.items()):
        upper = max(min(before.get(partition, high), high), bounds.low[partition])
        lower = max(bounds.low[partition], upper - limit)
        cut[partition] = upper
        tp = TopicPartition(topic, partition)
        windows[partition] = await _window(consumer, tp, lower, upper, timeout_s)
    taken = _merge(windows, cut, bounds, limit, reason)
    more = any(cut[p] > bounds.low[p] for p in cut)
    return DeadLetterPage(taken, next_before=cut if more else None)


def _merge(
    windows: dict[int, list[DeadLetterRecord]],
    cut: dict[int, int],
    bounds: _Bounds,
    limit: int,
    reason: str | None,
) -> list[DeadLetterRecord]:
    """Newest first across the windows (each consumed from its highest offset), moving
    ``cut``; stops at ``limit`` taken, or when a window with older letters below it
    runs out (what comes next may be in that partition, unread)."""
    heap = [(-w[-1].timestamp_ms, p, -w[-1].offset) for p, w in windows.items() if w]
    heapq.heapify(heap)
    taken: list[DeadLetterRecord] = []
    while heap and len(taken) < limit:
        _, partition, _ = heapq.heappop(heap)
        window = windows[partition]
        letter = window.pop()
        cut[partition] = letter.offset
        if reason is None or letter.reason == reason:
            taken.append(letter)
        if window:
            heapq.heappush(heap, (-window[-1].timestamp_ms, partition, -window[-1].offset))
        elif letter.offset > bounds.low[partition]:
            break
    return taken


async def _window(
    consumer: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int, timeout_s: float
) -> list[DeadLetterRecord]:
    """The letters of ``tp`` in [low, high): only that partition is fetched."""
    if low >= high:
        return []
    consumer.assign([tp])
    consumer.seek(tp, low)
    out: list[DeadLetterRecord] = []
    position = low
    deadline = time.monotonic() + timeout_s
    while position < high:
        if time.monotonic() >= deadline:  # a partial window would make the next page skip
            raise BrokerUnavailable(
                f"Reading offsets {low} to {high} of {tp.topic}[{tp.partition}] did not "
                f"finish within {timeout_s}s (stopped at {position}): is the broker slow?"
            )
        batch = await consumer.getmany(tp, timeout_ms=200, max_records=high - position)
        for rec in batch.get(tp, ()):
            if rec.offset < high:
                out.append(as_record(rec))
            position = rec.offset + 1
        position = max(position, await consumer.position(tp))
    return out

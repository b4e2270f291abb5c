"""emit: per-call latency of ``emit_event`` on the caller's thread, broker up and down.

Baseline in the same run: stdlib ``logging`` of the same facts as one JSON line
(stdlib ``json``) to a handler that writes nowhere (structlog is not installed).
Calls are timed one by one with ``time.perf_counter_ns``; our calls and the
baseline's alternate in chunks so both see the same noise (GC and the producer's
sender thread included: that is the caller's real experience).

Three more sides in the same chunks: the same producer with its emit-time route check
on (a ``RouteChecker`` over a SQLite registry routing the scope; the answer is cached,
so this times the check's hot path), and two floors into a deque:

- the floor: the same work written by hand, the fair baseline of the goals. It checks
  both names against their patterns and the payload's type, takes a UUIDv7 event id
  (the library's ``new_event_id``) and the time, serialises the whole wire document
  (schema version, id, ts, type, stream, routing, metadata, payload) with orjson, keys
  it by tenant and stream and appends key and value;
- the bare floor: orjson of four of those fields appended to a deque (no id, time,
  routing, key or checks): what serialising alone costs.

The goals apply to the side with the route check on (the "no silent loss" check is
part of emit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Comparison, Goal, Measured, latency_summary, log
from benchmarks.pipeline import (
    CTX,
    EVENT_TYPE,
    close_undelivered,
    new_topic,
    payload,
    registry_to,
    stream_ids,
)
from event_spine.broker.tansu import TansuBroker
from event_spine.producers.emit import emit_event, set_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.routing.checker import RouteChecker, RouteCheckSettings
from event_spine.schemas.formats import EVENT_TYPE_RE, SCHEMA_VERSION, STREAM_ID_RE
from event_spine.schemas.ids import new_event_id

NAME = "emit"
DESCRIPTION = (
    "emit_event() latency per call on the caller's thread (perf_counter_ns), route check "
    "on, broker up and broker down, vs the same work written by hand into a deque"
)
_OURS = "emit_event + route check"
_HAND = "same work by hand into a deque"
_BARE = "orjson of 4 fields + deque.append"
_LOGGING = "stdlib logging, JSON line"
#: ours / floor <= 1.6 at p50; ratios are floor / ours (above 1: ours is faster).
_FLOOR_RATIO = Goal("ratio_min", 1 / 1.6, "<= 1.6x the floor at p50 (ratio >= 0.625)")


def _phase(phase: str) -> list[Comparison]:
    """The goals of one phase (``up``/``down``): absolute, then against the floor."""
    where = f"broker {phase}"
    return [
        Comparison(
            f"emit p50, {where}",
            f"check_{phase}_p50_us",
            f"hand_{phase}_p50_us",
            "lower",
            Goal("max", 2.5, "p50 <= 2.5 µs"),
            _OURS,
            _HAND,
        ),
        Comparison(
            f"emit p99, {where}",
            f"check_{phase}_p99_us",
            f"hand_{phase}_p99_us",
            "lower",
            Goal("max", 8.0, "p99 <= 8 µs"),
            _OURS,
            _HAND,
        ),
        Comparison(
            f"emit p50 vs the floor, {where}",
            f"check_{phase}_p50_us",
            f"hand_{phase}_p50_us",
            "lower",
            _FLOOR_RATIO,
            _OURS,
            _HAND,
        ),
        Comparison(
            f"emit p50 vs the bare floor, {where}",
            f"check_{phase}_p50_us",
            f"floor_{phase}_p50_us",
            "lower",
            None,
            _OURS,
            _BARE,
            note="Serialising 4 fields without id, time, routing, key or checks: a "
            "lower bound no emit reaches, shown for scale.",
        ),
    ]


COMPARISONS = [
    *_phase("up"),
    *_phase("down"),
    Comparison(
        "route check added at p50, broker up",
        "check_added_up_p50_us",
        None,
        "lower",
        Goal("max", 0.5, "<= 0.5 µs added at p50"),
        "route check",
        note="check_up_p50_us - up_p50_us of the same run (same producer, chunks alternate); "
        "0 when the difference is below the noise (negative).",
    ),
    Comparison(
        "emit p99 vs logging, broker up",
        "check_up_p99_us",
        "log_up_p99_us",
        "lower",
        None,
        _OURS,
        _LOGGING,
    ),
    Comparison(
        "emit p999, broker up",
        "check_up_p999_us",
        "hand_up_p999_us",
        "lower",
        None,
        _OURS,
        _HAND,
    ),
    Comparison(
        "emit max, broker down (never blocked)",
        "check_down_max_us",
        "log_down_max_us",
        "lower",
        Goal("max", 100_000.0, "max <= 100 ms: no call waits on the broker"),
        _OURS,
        _LOGGING,
        note="A call that waited on the broker would take >= 1 s (block_timeout_ms) or a "
        "request timeout; the baseline's max on the same loaded machine is the noise floor "
        "(scheduler preemption, GIL switches, GC).",
    ),
]


def params(smoke: bool) -> dict[str, Any]:
    """Sizes: 200k timed calls per side and phase (smoke: 2k)."""
    if smoke:
        return {"calls": 2_000, "chunk": 500, "warmup": 200}
    return {"calls": 200_000, "chunk": 10_000, "warmup": 10_000}


class _NullStream:
    """A file-like object that drops what it is given."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, message, bound context, extras."""

    def __init__(self, bound: dict[str, Any]) -> None:
        super().__init__()
        self.bound = bound

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **self.bound,
            "stream_id": getattr(record, "stream_id", None),
            "payload": getattr(record, "payload", None),
        }
        return json.dumps(doc)


def json_logger() -> logging.Logger:
    """A logger writing JSON lines to nowhere, not propagating to the root logger."""
    logger = logging.getLogger("event_spine.bench.baseline")
    logger.handlers.clear()
    handler = logging.StreamHandler(_NullStream())
    bound = {
        "tenant_id": CTX.tenant_id,
        "env": CTX.env,
        "mode": CTX.mode,
        "project_id": CTX.project_id,
        **CTX.metadata(),
    }
    handler.setFormatter(JsonFormatter(bound))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


#: Times ``count`` calls from index ``first`` into ``out`` (ns). Each timer below
#: repeats the same loop with its call inlined on purpose: a shared loop taking the
#: call as a function would add a call frame (~0.05-0.1 µs) inside every timed window.
Timer = Callable[[int, int, list[int]], None]


def _emit_timer(producer: EventSpineProducer, checker: RouteChecker | None) -> Timer:
    """Times emit_event with the producer's route check on (checker) or off (None)."""

    def timed(first: int, count: int, out: list[int]) -> None:
        producer.route_checker = checker
        streams = stream_ids()
        clock = time.perf_counter_ns
        for i in range(first, first + count):
            body = payload(i)
            stream = streams[i % len(streams)]
            started = clock()
            emit_event(CTX, EVENT_TYPE, stream, body)
            out.append(clock() - started)

    return timed


def _log_timer(logger: logging.Logger) -> Timer:
    def timed(first: int, count: int, out: list[int]) -> None:
        streams = stream_ids()
        clock = time.perf_counter_ns
        for i in range(first, first + count):
            body = payload(i)
            stream = streams[i % len(streams)]
            started = clock()
            logger.info(EVENT_TYPE, extra={"stream_id": stream, "payload": body})
            out.append(clock() - started)

    return timed


def _floor_timer() -> Timer:
    """orjson of the event's facts + deque.append: the floor of any in-process emit."""
    sink: deque[bytes] = deque(maxlen=100_000)
    envelope = CTX.metadata()

    def timed(first: int, count: int, out: list[int]) -> None:
        streams = stream_ids()
        clock = time.perf_counter_ns
        for i in range(first, first + count):
            body = payload(i)
            stream = streams[i % len(streams)]
            started = clock()
            doc = {"event_type": EVENT_TYPE, "stream_id": stream, "metadata": envelope}
            doc["payload"] = body
            sink.append(orjson.dumps(doc))
            out.append(clock() - started)

    return timed


def _hand_timer() -> Timer:
    """The floor: emit's work written by hand (see the module doc), into a deque."""
    sink: deque[tuple[bytes, bytes]] = deque(maxlen=100_000)
    tenant = CTX.tenant_id
    routing = {"tenant_id": tenant, "env": CTX.env, "mode": CTX.mode, "project_id": CTX.project_id}
    envelope = CTX.metadata()
    event_type_ok, stream_ok = EVENT_TYPE_RE.match, STREAM_ID_RE.match

    def timed(first: int, count: int, out: list[int]) -> None:
        streams = stream_ids()
        clock = time.perf_counter_ns
        for i in range(first, first + count):
            body = payload(i)
            stream = streams[i % len(streams)]
            started = clock()
            if not event_type_ok(EVENT_TYPE) or not stream_ok(stream) or type(body) is not dict:
                raise ValueError("the benchmark's own event is invalid")
            doc = {
                "schema_version": SCHEMA_VERSION,
                "event_id": new_event_id(),
                "ts": datetime.now(UTC),
                "event_type": EVENT_TYPE,
                "stream_id": stream,
                "routing": routing,
                "metadata": envelope,
                "payload": body,
            }
            sink.append((f"{tenant}:{stream}".encode(), orjson.dumps(doc)))
            out.append(clock() - started)

    return timed


def interleaved(timers: list[Timer], calls: int, chunk: int) -> list[list[int]]:
    """``calls`` timed calls per timer, in chunks whose order rotates (same noise)."""
    out: list[list[int]] = [[] for _ in timers]
    for k, start in enumerate(range(0, calls, chunk)):
        n = min(chunk, calls - start)
        for j in range(len(timers)):
            index = (j + k) % len(timers)
            timers[index](start, n, out[index])
    return out


def _route_checker(workdir: Path) -> RouteChecker:
    """A checker over a SQLite registry that routes CTX (enforced in lab/dev too)."""
    registry_db = workdir / "registry.db"

    async def route() -> None:
        registry = await registry_to(registry_db, "sqlite", {"path": str(workdir / "events.db")})
        await registry.store.close()

    asyncio.run(route())
    checker = RouteChecker(
        RouteCheckSettings(
            registry_backend="sqlite",
            registry_config={"path": str(registry_db)},
            lab_and_dev="enforce",
        ),
        audit=None,  # like the baseline: only the emit path is measured
    )
    checker.check(CTX.key())  # the first sight looks the scope up; then it is cached
    return checker


def _one_run(p: dict[str, Any], workdir: Path) -> dict[str, float]:
    calls, chunk, warmup = p["calls"], p["chunk"], p["warmup"]
    logger = json_logger()
    broker = TansuBroker()
    broker.start()
    producer = None
    checker = _route_checker(workdir)
    try:
        topic = asyncio.run(new_topic(broker.bootstrap_servers))
        producer = EventSpineProducer(
            ProducerSettings(
                bootstrap_servers=broker.bootstrap_servers,
                topic=topic,
                # Room for every call of both phases: we time acceptance, not drops.
                buffer_max_events=4 * (calls + warmup) + 1000,
            )
        )
        set_default_producer(producer)
        timers = [
            _emit_timer(producer, None),
            _log_timer(logger),
            _emit_timer(producer, checker),
            _floor_timer(),
            _hand_timer(),
        ]
        interleaved(timers, warmup, chunk)
        if not producer.flush(60):
            raise RuntimeError("warm-up events were not acked")
        up, log_up, check_up, floor_up, hand_up = interleaved(timers, calls, chunk)
        if not producer.flush(120):
            raise RuntimeError("broker-up events were not acked")
        broker.stop()  # broker down from here on: the sender fails and retries
        time.sleep(0.3)
        interleaved(timers, warmup, chunk)
        down, log_down, check_down, floor_down, hand_down = interleaved(timers, calls, chunk)
        stats = producer.stats
        metrics = {
            **latency_summary(up, "up"),
            **latency_summary(log_up, "log_up"),
            **latency_summary(check_up, "check_up"),
            **latency_summary(floor_up, "floor_up"),
            **latency_summary(hand_up, "hand_up"),
            **latency_summary(down, "down"),
            **latency_summary(log_down, "log_down"),
            **latency_summary(check_down, "check_down"),
            **latency_summary(floor_down, "floor_down"),
            **latency_summary(hand_down, "hand_down"),
            "down_calls_over_1ms_count": float(sum(1 for x in down if x > 1_000_000)),
            "log_down_calls_over_1ms_count": float(sum(1 for x in log_down if x > 1_000_000)),
            "up_calls_over_1ms_count": float(sum(1 for x in up if x > 1_000_000)),
            "log_up_calls_over_1ms_count": float(sum(1 for x in log_up if x > 1_000_000)),
            "down_dropped_count": float(stats.dropped),
            "check_lookups_count": float(checker.lookups),
            "down_buffered_count": float(stats.buffered),
        }
    finally:
        set_default_producer(None)
        if producer is not None:
            close_undelivered(producer, 0.2)  # the down phase: buffered by design
        broker.stop()
        checker.close()
    # The check's cost is below the run-to-run noise, so the difference of two medians
    # can come out negative; recorded as 0 then (both medians are in the result).
    for phase in ("up", "down"):
        added = metrics[f"check_{phase}_p50_us"] - metrics[f"{phase}_p50_us"]
        metrics[f"check_added_{phase}_p50_us"] = max(added, 0.0)
    return metrics


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Each repeat: a fresh broker and producer, then the up and the down phase."""
    measured = Measured(info={"gc": "enabled (part of the caller's experience)"})
    for k in range(repeats):
        log(f"emit: repeat {k + 1}/{repeats}")
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            measured.runs.append(_one_run(p, Path(tmp)))
    return measured

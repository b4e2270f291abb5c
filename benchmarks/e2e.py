"""e2e: latency from emit_event() to durable (readable through list_after) at 1k events/s.

A sink worker process (production batching defaults) writes to SQLite; this process
emits at a fixed rate from a thread (an engine's request threads) with the default
producer settings, and a reader pages every stream with ``list_after`` every 5 ms
(as an application reader would); an event's latency is the time from just before
its emit_event() call to the poll that returned it. The poll interval is part of
the figure (it bounds how soon a reader can see anything).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log, percentile
from benchmarks.pipeline import CTX, EVENT_TYPE, PARTITIONS, new_topic, payload, registry_to
from benchmarks.procs import WorkerProcess, wait_assigned
from event_spine.backends.sqlite import SqliteConfig, SqliteEventStore
from event_spine.broker.tansu import TansuBroker
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings

NAME = "e2e"
DESCRIPTION = (
    "end-to-end latency emit_event() -> durable and readable via list_after, at a fixed "
    "1k events/s, one worker process, SQLite"
)
COMPARISONS = [
    Comparison(
        "end-to-end p99 (emit -> list_after)",
        "e2e_p99_ms",
        None,
        "lower",
        Goal("max", 250.0, "p99 <= 250 ms"),
        "emit -> readable",
    ),
    Comparison(
        "end-to-end p50 (emit -> list_after)", "e2e_p50_ms", None, "lower", None, "emit -> readable"
    ),
]
STREAMS = 8


def params(smoke: bool) -> dict[str, Any]:
    """1k events/s for 30 s (smoke: 0.5 s), after a 1 s warm-up."""
    return {
        "rate_per_s": 1000,
        "duration_s": 0.5 if smoke else 30.0,
        "warmup_s": 0.3 if smoke else 1.0,
        "poll_interval_s": 0.005,
        "streams": STREAMS,
    }


class _Emitter(threading.Thread):
    """Emits at a fixed rate on an absolute schedule; records each call's start."""

    def __init__(self, producer: EventSpineProducer, rate: float, seconds: float) -> None:
        super().__init__(name="bench-emitter", daemon=True)
        self.producer = producer
        self.interval_s = 1.0 / rate
        self.count = round(rate * seconds)
        self.sent_at: dict[str, int] = {}
        self.behind_max_s = 0.0

    def run(self) -> None:
        streams = [f"e2e/s{i}" for i in range(STREAMS)]
        began = time.monotonic()
        for i in range(self.count):
            due = began + i * self.interval_s
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                self.behind_max_s = max(self.behind_max_s, -wait)
            started = time.monotonic_ns()
            event_id = self.producer.emit_event(CTX, EVENT_TYPE, streams[i % STREAMS], payload(i))
            self.sent_at[event_id] = started


async def _one_run(bootstrap: str, workdir: Path, p: dict[str, Any]) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    topic = await new_topic(bootstrap, "bench-e2e")
    db = workdir / f"e2e-{tag}.db"
    registry_db = workdir / f"registry-{tag}.db"
    registry = await registry_to(registry_db, "sqlite", {"path": str(db)})
    await registry.store.close()
    worker = WorkerProcess(bootstrap, topic, f"bench-e2e-{tag}", registry_db, 0)
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers=bootstrap, topic=topic))
    store = SqliteEventStore(SqliteConfig(path=str(db)))
    try:
        await worker.start()
        await wait_assigned([worker], PARTITIONS, 60)
        await store.open()
        warm = _Emitter(producer, p["rate_per_s"], p["warmup_s"])
        warm.start()
        await _read_all(store, warm, p)
        emitter = _Emitter(producer, p["rate_per_s"], p["duration_s"])
        emitter.start()
        # The expected ids are only known once the emitter finishes: read while it runs.
        latencies = await _read_all(store, emitter, p)
    finally:
        await store.close()
        await asyncio.to_thread(producer.close, 5)
        await worker.stop()
    values = sorted(latencies)
    return {
        "e2e_p50_ms": percentile(values, 50),
        "e2e_p99_ms": percentile(values, 99),
        "e2e_max_ms": values[-1],
        "e2e_events_count": float(len(values)),
        "emitter_behind_max_ms": emitter.behind_max_s * 1000,
    }


async def _read_all(store: SqliteEventStore, emitter: _Emitter, p: dict[str, Any]) -> list[float]:
    seen: dict[str, float] = {}
    cursors: dict[str, str | None] = {f"e2e/s{i}": None for i in range(STREAMS)}
    deadline = time.monotonic() + p["duration_s"] + 60
    while emitter.is_alive() or len(seen) < len(emitter.sent_at):
        for stream, last in list(cursors.items()):
            after = last
            while page := await store.list_after(CTX.scope, stream, after, 1000):
                now = time.monotonic_ns()
                for event in page:
                    started = emitter.sent_at.get(event.event_id)
                    if started is not None:
                        seen[event.event_id] = (now - started) / 1e6
                after = cursors[stream] = page[-1].event_id
        if time.monotonic() > deadline:
            missing = len(emitter.sent_at) - len(seen)
            raise TimeoutError(f"e2e: {missing} events not readable in time")
        await asyncio.sleep(p["poll_interval_s"])
    return list(seen.values())


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """One broker; each repeat a fresh topic, worker process, store and producer."""
    measured = Measured(
        info={
            "worker": "separate process, production batching defaults "
            "(fetch_max_wait_ms 100, batch_timeout_ms 200, max_records 2000)",
            "producer": "production defaults (linger_ms 5, lz4, acks=all)",
            "reader": f"list_after on {STREAMS} streams every {p['poll_interval_s'] * 1000:g} ms",
        }
    )
    with TansuBroker() as broker:
        for k in range(repeats):
            log(f"e2e: repeat {k + 1}/{repeats}")
            measured.runs.append(asyncio.run(_one_run(broker.bootstrap_servers, workdir, p)))
    return measured

"""e2e: latency from emit_event() to durable (readable through list_after), per profile.

For each latency profile (``event_spine.profiles``: throughput, the default, and
low_latency) in one run, interleaved: a sink worker process with that profile writes
to SQLite; this process emits with a producer of the same profile.

- latency: emit at a fixed 1k events/s from a thread (an engine's request threads)
  while a reader pages every stream with ``list_after`` every 5 ms (as an application
  reader would); an event's latency is the time from just before its emit_event()
  call to the poll that returned it. The poll interval is part of the figure.
- where the time goes: the worker's record ages (``spine_sink_record_age_seconds``,
  now minus the Kafka timestamp the producer's sender set when it appended the record)
  when a batch reached it and once durable, over the 1k/s phase only, as quantiles
  of its buckets (interpolated like ``histogram_quantile`` between the bounds,
  ``observability.ages.BUCKETS_S``: 10 ms steps to 30 ms, then 50, 75, 100, 150, 200,
  300, 500 ms; a quantile is only as exact as its bucket). appended -> received is
  the broker's and the fetch wait's share, received -> durable the worker's (write
  and commit).
- the broker's floor (the same-run baseline): hand aiokafka clients, no spine code
  and no store, with the profile's waits (producer ``linger_ms``, consumer
  ``fetch_max_wait_ms``): ``send()`` at the same 1k events/s, each event's time
  from send to received by a consumer (``rawloops.raw_round_trip``). The end-to-end
  figure cannot go below it on this broker.
- max throughput (what the profile costs): emit a burst as fast as emit_event()
  goes, clock from the first emit to every partition committed by the worker (all
  durable, hence readable). Events/s = burst / that time.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log, percentile
from benchmarks.pipeline import CTX, EVENT_TYPE, PARTITIONS, new_topic, payload, registry_to
from benchmarks.procs import WorkerProcess, merged_committed, wait_assigned
from benchmarks.rawloops import raw_round_trip
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.broker.tansu import TansuBroker
from event_spine.observability.ages import quantile_s
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.profiles import PRODUCER_PROFILES, PROFILES, SINK_PROFILES, Profile

NAME = "e2e"
DESCRIPTION = (
    "end-to-end latency emit_event() -> durable and readable via list_after at a fixed "
    "1k events/s, and max events/s, per latency profile; one worker process, SQLite"
)
COMPARISONS = [
    Comparison(
        "end-to-end p99, low_latency profile (emit -> list_after, 1k/s)",
        "low_latency_e2e_p99_ms",
        "throughput_e2e_p99_ms",
        "lower",
        Goal("max", 30.0, "p99 <= 30 ms"),
        "low_latency",
        "throughput (default)",
    ),
    Comparison(
        "end-to-end p50, low_latency profile (emit -> list_after, 1k/s)",
        "low_latency_e2e_p50_ms",
        "throughput_e2e_p50_ms",
        "lower",
        None,
        "low_latency",
        "throughput (default)",
    ),
    Comparison(
        "end-to-end p99, throughput profile (the default)",
        "throughput_e2e_p99_ms",
        None,
        "lower",
        Goal("max", 250.0, "p99 <= 250 ms"),
        "throughput (default)",
    ),
    Comparison(
        "record age p99 when the worker received it (appended -> fetched), low_latency",
        "low_latency_age_received_p99_ms",
        "throughput_age_received_p99_ms",
        "lower",
        None,
        "low_latency",
        "throughput (default)",
    ),
    Comparison(
        "record age p99 once durable (appended -> written, committed), low_latency",
        "low_latency_age_durable_p99_ms",
        "throughput_age_durable_p99_ms",
        "lower",
        None,
        "low_latency",
        "throughput (default)",
    ),
    *(
        Comparison(
            f"end-to-end {q} vs the broker's own round trip (hand producer -> consumer, "
            f"same waits, same rate), {profile}",
            f"{profile}_e2e_{q}_ms",
            f"{profile}_floor_{q}_ms",
            "lower",
            None,
            profile,
            "hand aiokafka send() -> getmany",
        )
        for profile in PROFILES
        for q in ("p50", "p99")
    ),
    Comparison(
        "max end-to-end events/s, low_latency vs throughput profile (what it costs)",
        "low_latency_max_per_s",
        "throughput_max_per_s",
        "higher",
        None,
        "low_latency",
        "throughput (default)",
    ),
]
STREAMS = 8


def params(smoke: bool) -> dict[str, Any]:
    """1k events/s for 30 s (smoke: 0.5 s) after a 1 s warm-up; a 100k burst (smoke 2k)."""
    return {
        "profiles": list(PROFILES),
        "rate_per_s": 1000,
        "duration_s": 0.5 if smoke else 30.0,
        "warmup_s": 0.3 if smoke else 1.0,
        "poll_interval_s": 0.005,
        "streams": STREAMS,
        "burst_events": 2_000 if smoke else 100_000,
        "timeout_s": 120 if smoke else 300,
    }


class _Emitter(threading.Thread):
    """Emits at a fixed rate on an absolute schedule (rate 0: as fast as it can);
    records each call's start."""

    def __init__(self, producer: EventSpineProducer, rate: float, count: int) -> None:
        super().__init__(name="bench-emitter", daemon=True)
        self.producer = producer
        self.interval_s = 1.0 / rate if rate else 0.0
        self.count = count
        self.sent_at: dict[str, int] = {}
        self.behind_max_s = 0.0

    def run(self) -> None:
        streams = [f"e2e/s{i}" for i in range(STREAMS)]
        began = time.monotonic()
        for i in range(self.count):
            if self.interval_s:
                wait = began + i * self.interval_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    self.behind_max_s = max(self.behind_max_s, -wait)
            started = time.monotonic_ns()
            event_id = self.producer.emit_event(CTX, EVENT_TYPE, streams[i % STREAMS], payload(i))
            self.sent_at[event_id] = started


async def _one_run(
    bootstrap: str, workdir: Path, p: dict[str, Any], profile: str
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    topic = await new_topic(bootstrap, "bench-e2e")
    db = workdir / f"e2e-{tag}.db"
    registry_db = workdir / f"registry-{tag}.db"
    registry = await registry_to(registry_db, "sqlite", {"path": str(db)})
    await registry.store.close()
    worker = WorkerProcess(
        bootstrap, topic, f"bench-e2e-{tag}", registry_db, 0, {"profile": profile}
    )
    producer = EventSpineProducer(
        ProducerSettings(bootstrap_servers=bootstrap, topic=topic, profile=profile)
    )
    store = SqliteEventStore(SqliteConfig(path=str(db)))
    rate = p["rate_per_s"]
    try:
        await worker.start()
        await wait_assigned([worker], PARTITIONS, 60)
        await store.open()
        warm = _Emitter(producer, rate, round(rate * p["warmup_s"]))
        warm.start()
        await _read_all(store, warm, p, worker=worker)
        ages_before = await _ages_when_durable(worker, len(warm.sent_at))
        emitter = _Emitter(producer, rate, round(rate * p["duration_s"]))
        emitter.start()
        # The expected ids are only known once the emitter finishes: read while it runs.
        rounds: list[float] = []
        latencies = await _read_all(store, emitter, p, rounds, worker=worker)
        already = len(warm.sent_at) + len(emitter.sent_at)
        ages_after = await _ages_when_durable(worker, already)
        ages = {
            stage: [b - a for a, b in zip(ages_before[stage], ages_after[stage], strict=True)]
            for stage in ages_after
        }
        max_per_s = await _burst(producer, worker, already, p)
    finally:
        await store.close()
        await asyncio.to_thread(producer.close, 5)
        await worker.stop()
    values = sorted(latencies)
    rounds.sort()
    return {
        # One reader round (list_after on every stream): part of every latency figure.
        f"{profile}_reader_round_p50_ms": percentile(rounds, 50),
        f"{profile}_reader_round_p99_ms": percentile(rounds, 99),
        f"{profile}_e2e_p50_ms": percentile(values, 50),
        f"{profile}_e2e_p99_ms": percentile(values, 99),
        f"{profile}_e2e_max_ms": values[-1],
        f"{profile}_e2e_events_count": float(len(values)),
        f"{profile}_emitter_behind_max_ms": emitter.behind_max_s * 1000,
        **{
            f"{profile}_age_{stage}_p{q}_ms": (quantile_s(ages[stage], q / 100) or 0.0) * 1000
            for stage in ("received", "durable")
            for q in (50, 99)
        },
        f"{profile}_max_per_s": max_per_s,
    }


async def _floor_run(bootstrap: str, p: dict[str, Any], profile: Profile) -> dict[str, float]:
    """The broker's round trip with hand clients at the profile's waits (a fresh topic)."""
    values = await raw_round_trip(
        bootstrap,
        p["rate_per_s"],
        p["duration_s"],
        p["warmup_s"],
        linger_ms=PRODUCER_PROFILES[profile]["linger_ms"],
        fetch_max_wait_ms=SINK_PROFILES[profile]["fetch_max_wait_ms"],
    )
    return {
        f"{profile}_floor_p50_ms": percentile(values, 50),
        f"{profile}_floor_p99_ms": percentile(values, 99),
    }


async def _ages_when_durable(worker: WorkerProcess, count: int) -> dict[str, list[int]]:
    """The worker's record age counts once ``count`` records are durable (the reader
    sees an event once written; its commit, and its durable age, come just after)."""
    deadline = time.monotonic() + 30
    while True:
        ages: dict[str, list[int]] = worker.state.get("ages", {})
        if sum(ages.get("durable", ())) >= count:
            return ages
        if time.monotonic() > deadline:
            raise RuntimeError(f"e2e: the worker reported fewer than {count} records durable")
        await asyncio.sleep(0.01)


async def _burst(
    producer: EventSpineProducer, worker: WorkerProcess, already: int, p: dict[str, Any]
) -> float:
    """Emit ``burst_events`` at full speed; events/s until all are committed."""
    count = int(p["burst_events"])
    began = time.perf_counter()
    burst = _Emitter(producer, 0, count)
    burst.start()
    deadline = began + p["timeout_s"]
    # The topic holds only this run's events: done when the commits add up to all of them.
    while sum(merged_committed([worker]).values()) < already + count:
        if not worker.alive:
            raise RuntimeError("e2e: the worker process died")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"e2e: burst not committed after {p['timeout_s']} s")
        await asyncio.sleep(0.002)
    return count / (time.perf_counter() - began)


async def _read_all(
    store: SqliteEventStore,
    emitter: _Emitter,
    p: dict[str, Any],
    rounds: list[float] | None = None,
    *,
    worker: WorkerProcess,
) -> list[float]:
    seen: dict[str, float] = {}
    cursors: dict[str, str | None] = {f"e2e/s{i}": None for i in range(STREAMS)}
    deadline = time.monotonic() + p["duration_s"] + 60
    while emitter.is_alive() or len(seen) < len(emitter.sent_at):
        round_began = time.perf_counter()
        for stream, last in list(cursors.items()):
            after = last
            while page := await store.list_after(CTX.scope, stream, after, 1000):
                now = time.monotonic_ns()
                for event in page:
                    started = emitter.sent_at.get(event.event_id)
                    if started is not None:
                        seen[event.event_id] = (now - started) / 1e6
                after = cursors[stream] = page[-1].event_id
        if rounds is not None:
            rounds.append((time.perf_counter() - round_began) * 1000)
        if time.monotonic() > deadline:
            missing = len(emitter.sent_at) - len(seen)
            raise RuntimeError(
                f"e2e: {missing} of {len(emitter.sent_at)} events not readable "
                f"{p['duration_s'] + 60:g} s after the start; the worker has written "
                f"{worker.state.get('written', 0)} in all (a stalled worker on the local broker: "
                f"docs/operations.md, the local broker's fetch cost)"
            )
        await asyncio.sleep(p["poll_interval_s"])
    return list(seen.values())


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """One broker; each repeat runs every profile (order alternating), each on a fresh
    topic, worker process, store and producer."""
    measured = Measured(
        info={
            "profiles": {
                name: {"producer": PRODUCER_PROFILES[name], "sink": SINK_PROFILES[name]}
                for name in p["profiles"]
            },
            "worker": "separate process, max_records 2000, SQLite (synchronous=FULL)",
            "producer": "lz4, acks=all; linger_ms from the profile",
            "floor": "hand aiokafka producer send() at the same rate -> hand consumer "
            "(partitions assigned), each profile's linger_ms and fetch_max_wait_ms; "
            "send -> received",
            "reader": f"list_after on {STREAMS} streams every {p['poll_interval_s'] * 1000:g} ms",
            "max_per_s": f"a burst of {p['burst_events']} events emitted at full speed -> "
            "every partition committed",
        }
    )
    with TansuBroker() as broker:
        for k in range(repeats):
            metrics: dict[str, float] = {}
            order = p["profiles"] if k % 2 == 0 else list(reversed(p["profiles"]))
            for profile in order:
                log(f"e2e: repeat {k + 1}/{repeats}, profile {profile}")
                metrics |= asyncio.run(_one_run(broker.bootstrap_servers, workdir, p, profile))
                metrics |= asyncio.run(_floor_run(broker.bootstrap_servers, p, profile))
            measured.runs.append(metrics)
    # The machine is shared: the load at the end beside machine.load_avg_at_start.
    measured.info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return measured

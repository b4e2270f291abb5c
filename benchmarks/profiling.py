"""Profile the hot paths while the emit, producer and sink benchmarks run (our side only).

``python -m benchmarks.profiling [emit|producer|producer-confluent|sink|sink-postgres ...]
[--native] [--out DIR]``

- emit: cProfile of the caller's thread over 100k emit_event() calls (exact call
  counts and own time per function).
- producer, producer-confluent (the confluent-kafka transport), sink: py-spy
  (``pip install py-spy``) attached to this process for the measured phase only,
  every thread, 200 samples/s, idle threads excluded; the collapsed stacks are
  folded into own ("self") and inclusive time per function and per thread.
  ``--native`` adds C frames (librdkafka, confluent-kafka's callbacks, the GIL
  waits inside them); py-spy then pauses the process for each sample, so the
  events/s it prints are lower than unprofiled.

Writes ``DIR/profile-<name>.txt`` (default DIR: benchmarks/results/profiles).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import RESULTS_DIR, log
from benchmarks.pipeline import (
    CTX,
    EVENT_TYPE,
    make_items,
    new_topic,
    payload,
    preload,
    registry_to,
    sink_settings,
    stream_ids,
)
from benchmarks.sink import postgres_database, until_committed
from event_spine.broker.tansu import TansuBroker
from event_spine.producers.emit import emit_event, set_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.sink_workers.worker import SinkWorker

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy==0.4.3")
    return found


@contextlib.contextmanager
def spied(raw: Path, rate: int = 200, native: bool = False) -> Iterator[None]:
    """py-spy records this process (all threads) while the block runs."""
    proc = subprocess.Popen(
        [
            _py_spy(),
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            str(rate),
            "--threads",
            # Native stacks need the process paused while sampling.
            "--native" if native else "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def fold(raw: Path, top: int = 30) -> str:
    """Own and inclusive sample counts per function, per thread, from collapsed stacks."""
    own: dict[str, Counter[str]] = {}
    incl: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        names = [_short(f) for f in frames if not f.startswith(("thread ", "process "))]
        if not names:
            continue
        totals[thread] += count
        own.setdefault(thread, Counter())[names[-1]] += count
        for name in set(names):
            incl.setdefault(thread, Counter())[name] += count
    out = io.StringIO()
    for thread, total in totals.most_common():
        out.write(f"\n=== {thread}: {total} samples (non-idle)\n-- own time\n")
        for name, n in own[thread].most_common(top):
            out.write(f"{n / total * 100:6.1f}%  {name}\n")
        out.write("-- inclusive time\n")
        for name, n in incl[thread].most_common(top):
            out.write(f"{n / total * 100:6.1f}%  {name}\n")
    return out.getvalue()


def profile_emit(calls: int = 100_000) -> str:
    """cProfile of emit_event() on the caller's thread, broker up."""
    with TansuBroker() as broker:
        topic = asyncio.run(new_topic(broker.bootstrap_servers))
        producer = EventSpineProducer(
            ProducerSettings(
                bootstrap_servers=broker.bootstrap_servers,
                topic=topic,
                buffer_max_events=calls * 2,
            )
        )
        set_default_producer(producer)
        try:
            streams = stream_ids()
            bodies = [payload(i) for i in range(calls)]
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(calls):
                emit_event(CTX, EVENT_TYPE, streams[i % 64], bodies[i])
            profiler.disable()
            producer.flush(60)
        finally:
            set_default_producer(None)
            producer.close(5)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"cProfile, caller's thread, {calls:,} emit_event() calls (profiler overhead ~2x)\n")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(15)
    return out.getvalue()


def profile_producer(
    raw: Path, events: int = 300_000, transport: str = "aiokafka", native: bool = False
) -> str:
    """py-spy over emit -> acked (caller + sender threads, and librdkafka's)."""
    with TansuBroker() as broker:
        topic = asyncio.run(new_topic(broker.bootstrap_servers))
        producer = EventSpineProducer(
            ProducerSettings(
                bootstrap_servers=broker.bootstrap_servers,
                topic=topic,
                overflow_policy="block",
                block_timeout_ms=120_000,
                transport=transport,
            )
        )
        set_default_producer(producer)
        try:
            emit_event(CTX, EVENT_TYPE, "orders/warmup", payload(0))
            producer.flush(30)
            streams = stream_ids()
            with spied(raw, native=native):
                started = time.perf_counter()
                for i in range(events):
                    emit_event(CTX, EVENT_TYPE, streams[i % 64], payload(i))
                producer.flush(300)
                elapsed = time.perf_counter() - started
        finally:
            set_default_producer(None)
            producer.close(5)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    head = (
        f"py-spy{' --native' if native else ''}, emit -> acked, transport {transport}, "
        f"{events:,} events, {events / elapsed:,.0f} events/s, load average {load}\n"
    )
    return head + fold(raw)


async def _sink(raw: Path, events: int, backend: str = "sqlite") -> str:
    with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap)
        ends = await preload(bootstrap, topic, make_items(events))
        registry_db = Path(tmp) / "registry.db"
        async with contextlib.AsyncExitStack() as stack:
            config: dict[str, str] = {"path": str(Path(tmp) / "s.db")}
            if backend == "postgres":
                config = {"dsn": await stack.enter_async_context(postgres_database())}
            registry = await registry_to(registry_db, backend, config)
            worker = SinkWorker(sink_settings(bootstrap, topic, registry_db), registry=registry)
            with spied(raw):
                await worker.start()
                try:
                    first, last = await until_committed(worker, ends, 600)
                finally:
                    await worker.stop()
                    await registry.store.close()
    rate = events / (last - first)
    where = "PostgreSQL" if backend == "postgres" else "SQLite"
    return f"py-spy, topic -> {where}, one SinkWorker, {events:,} events, {rate:,.0f} events/s\n"


def profile_sink(raw: Path, events: int = 200_000, backend: str = "sqlite") -> str:
    """py-spy over one SinkWorker draining a loaded topic into SQLite or PostgreSQL."""
    head = asyncio.run(_sink(raw, events, backend))
    return head + fold(raw)


def main(argv: list[str] | None = None) -> None:
    """Profile the named paths; write one text report each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=["emit", "producer", "sink"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "profiles")
    parser.add_argument("--native", action="store_true", help="py-spy: C frames too")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        log(f"profiling {name}")
        stem = f"profile-{name}{'-native' if args.native else ''}"
        raw = args.out / f"{stem}.raw.txt"
        if name == "emit":
            text = profile_emit()
        elif name == "producer":
            text = profile_producer(raw, native=args.native)
        elif name == "producer-confluent":
            text = profile_producer(raw, transport="confluent", native=args.native)
        elif name == "sink":
            text = profile_sink(raw)
        elif name == "sink-postgres":
            text = profile_sink(raw, backend="postgres")
        else:
            raise SystemExit(
                f"unknown path {name!r}: emit, producer, producer-confluent, sink or sink-postgres"
            )
        path = args.out / f"{stem}.txt"
        path.write_text(text)
        log(f"wrote {path}")


if __name__ == "__main__":
    logging_quiet = __import__("benchmarks.runner", fromlist=["quiet_logs"])
    logging_quiet.quiet_logs()
    main()

"""A sink worker in its own process, reporting progress as JSON lines on stdout.

``python -m benchmarks.worker_proc --bootstrap B --topic T --group G --registry-db R
[--latency-ms 5] [--sink-json '{"group_instance_id": "w1"}'] [--wait-go]``. ``--wait-go``:
print ``{"waiting": true}`` once imported, then join only after a line on stdin (so
several processes join together, whatever their import times). ``--latency-ms`` wraps
every store so that each append_batch first sleeps that long (an injected write
latency, as tests/support/faults.py injects faults); ``--sink-json`` sets more
SinkSettings fields; ``--log-file PATH`` writes aiokafka's and event-spine's DEBUG
lines there with wall-clock times (benchmarks.recovery_timeline reads them). Lines:
``{"t": monotonic, "booted": monotonic, "assigned_at": monotonic|null, "assigned": n,
"seen": n, "written": n, "first": monotonic|null, "first_write": monotonic|null,
"committed": {partition: offset}, "cpu_s": process CPU seconds, "cpu_first_s": the same
at the first record|null, "cpu_booted_s": at "booted", "cpu_first_write_s": at the
first write|null, "ages": {"received"|"durable": per-bucket record age counts}}``
(ages: ``observability.ages``) every 10 ms while something other than the CPU time
changes. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from event_spine.cli.main import lean_worker_process

lean_worker_process()  # as `spine worker` does, before anything imports faststream

from benchmarks.pipeline import sink_settings  # noqa: E402
from event_spine.backends import AppendResult, EventStore, StoreFactory, StreamCursor  # noqa: E402
from event_spine.schemas import (  # noqa: E402
    EventPage,
    EventQuery,
    ResourceRoute,
    Scope,
    StoredEvent,
    StreamPage,
)
from event_spine.sink_workers.worker import SinkWorker  # noqa: E402


class SlowStore:
    """Delegates to a real store; every append_batch first waits ``latency_s``."""

    def __init__(self, inner: EventStore, latency_s: float) -> None:
        self.inner = inner
        self.latency_s = latency_s

    async def open(self) -> None:
        """Open the real store."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the real store."""
        await self.inner.close()

    async def ping(self) -> None:
        """Ping the real store."""
        await self.inner.ping()

    async def append_batch(self, events: Sequence[StoredEvent]) -> AppendResult:
        """Sleep, then write."""
        await asyncio.sleep(self.latency_s)
        return await self.inner.append_batch(events)

    async def list_after(
        self, scope: Scope, stream_id: str, after_event_id: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Read through."""
        return await self.inner.list_after(scope, stream_id, after_event_id, limit)

    async def get(self, scope: Scope, event_id: str) -> StoredEvent | None:
        """Read through."""
        return await self.inner.get(scope, event_id)

    async def cursor(self, scope: Scope, stream_id: str) -> StreamCursor | None:
        """Read through."""
        return await self.inner.cursor(scope, stream_id)

    async def query(self, scope: Scope, q: EventQuery) -> EventPage:
        """Read through."""
        return await self.inner.query(scope, q)

    async def list_streams(
        self, scope: Scope, prefix: str | None = None, limit: int = 100, after: str | None = None
    ) -> StreamPage:
        """Read through."""
        return await self.inner.list_streams(scope, prefix, limit, after)

    async def count_event_types(self, scope: Scope, stream_id: str) -> dict[str, int]:
        """Read through."""
        return await self.inner.count_event_types(scope, stream_id)


class SlowFactory(StoreFactory):
    """A StoreFactory whose stores all answer ``latency_s`` later."""

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s
        self._wrapped: dict[int, SlowStore] = {}

    async def event_store(self, route: ResourceRoute) -> EventStore:
        """The real store, wrapped once."""
        real = await super().event_store(route)
        wrapper = self._wrapped.get(id(real))
        if wrapper is None:
            wrapper = self._wrapped[id(real)] = SlowStore(real, self.latency_s)
        return wrapper


def _assigned(worker: SinkWorker) -> int:
    """Partitions owned; before the first batch the worker has not seen its consumer yet,
    so ask faststream's subscriber (a harness may peek; the worker API has no hook)."""
    owned = len(worker.assignment())
    broker = worker._broker
    if owned or broker is None:
        return owned
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is not None:
            owned += len(consumer.assignment())
    return owned


async def _report(
    worker: SinkWorker, stop: asyncio.Event, booted: float, booted_cpu: float
) -> None:
    first: float | None = None
    first_write: float | None = None
    cpu_first: float | None = None
    cpu_first_write: float | None = None
    assigned_at: float | None = None
    last = ""
    while not stop.is_set():
        if first is None and worker.stats.records:
            first = time.monotonic()
            cpu_first = time.process_time()
        if first_write is None and worker.stats.written:
            first_write = time.monotonic()
            cpu_first_write = time.process_time()
        assigned = _assigned(worker)
        if assigned_at is None and assigned:
            assigned_at = time.monotonic()
        state = {
            "booted": booted,
            "assigned_at": assigned_at,
            "assigned": assigned,
            "seen": worker.stats.records,
            "written": worker.stats.written,
            "first": first,
            "first_write": first_write,
            "committed": {str(p): off for (_, p), off in worker.stats.committed.items()},
            "duplicates": worker.stats.duplicates,
            "ages": worker.endpoints.metrics.record_ages.snapshot(),
        }
        text = json.dumps(state, sort_keys=True)
        if text != last:
            last = text
            cpu = {
                "cpu_s": time.process_time(),
                "cpu_first_s": cpu_first,
                "cpu_booted_s": booted_cpu,
                "cpu_first_write_s": cpu_first_write,
            }
            sys.stdout.write(json.dumps({"t": time.monotonic(), **state, **cpu}) + "\n")
            sys.stdout.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.01 if first is not None else 0.002)


def _debug_to(path: Path, booted: float) -> None:
    """aiokafka's and event-spine's DEBUG lines into ``path``, each with its wall-clock
    time (``%(created)f``: one clock for every process of a timeline)."""
    handler = logging.FileHandler(path)
    handler.addFilter(_no_fetch_bodies)
    handler.setFormatter(logging.Formatter("%(created).6f %(name)s %(levelname)s %(message)s"))
    for name in ("aiokafka", "event_spine"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False  # not to stderr
    # The process' own milestones on the same clock: exec (from /proc) and imports done.
    wall = time.time() - time.monotonic()
    marks = logging.getLogger("event_spine.bench.marks")
    marks.debug("process started at %.6f", _process_start_wall())
    marks.debug("imports done at %.6f (CPU %.2f s)", booted + wall, time.process_time())


def _no_fetch_bodies(record: logging.LogRecord) -> bool:
    """Drop aiokafka's Fetch responses: their repr holds every record's bytes."""
    args = record.args
    return not (
        isinstance(args, tuple) and len(args) == 4 and "FetchResponse" in type(args[3]).__name__
    )


def _process_start_wall() -> float:
    """Wall-clock time this process was started (Linux: /proc/self/stat counts it in
    clock ticks of CLOCK_BOOTTIME; 10 ms resolution)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    age_s = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / ticks  # stat(5) #22
    return time.time() - age_s


async def main(argv: list[str] | None = None) -> None:
    """Run one worker until SIGTERM."""
    booted = time.monotonic()  # after the imports: what a restart costs before the join
    booted_cpu = time.process_time()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--registry-db", required=True, type=Path)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--sink-json", default="{}", help="More SinkSettings fields (JSON).")
    parser.add_argument("--wait-go", action="store_true", help="Join after a line on stdin.")
    parser.add_argument("--log-file", type=Path, help="DEBUG lines of aiokafka and event-spine.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.ERROR)
    if args.log_file is not None:
        _debug_to(args.log_file, booted)
    settings = sink_settings(
        args.bootstrap,
        args.topic,
        args.registry_db,
        group_id=args.group,
        **json.loads(args.sink_json),
    )
    stores = SlowFactory(args.latency_ms / 1000) if args.latency_ms > 0 else StoreFactory()
    worker = SinkWorker(settings, stores=stores)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.wait_go:
        sys.stdout.write(json.dumps({"t": time.monotonic(), "waiting": True}) + "\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
    await worker.start()
    try:
        await _report(worker, stop, booted, booted_cpu)
    finally:
        await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())

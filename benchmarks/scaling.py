"""scaling: 1, 2, 3 and 4 sink worker processes on a store with 5 ms injected write latency.

Every append_batch first sleeps 5 ms (a remote database's round trip) in a
wrapper store. Workers run as separate processes (as deployed: one
consumer-group member per process/pod), started together on a topic loaded
once, each run with a fresh group and a fresh store. Clock: first record seen by
any worker -> every partition committed to its end.

Two stores behind the latency. The goal is measured on the in-memory store (each
process its own): a remote store whose server does not share this machine's two
cores, so what is measured is the sink's scale-out. Beside it, without a goal,
one SQLite file shared by both processes: SQLite takes one writer at a time and
fsyncs each commit, so its figure shows the embedded default's ceiling, not the
workers'.

Beside the rates, the costs the scale model in docs/scaling.md is built from: the
workers' CPU per event (process CPU time from the first record to the end, summed over
the processes) and the broker's (Tansu's CPU time over the run, fetches only: the
topic is loaded before). This machine has two cores shared by the broker, the workers
and this process: past two workers the processes share cores, so 3 and 4 measure
contention, not the sink (no goal on them).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import PARTITIONS, make_items, new_topic, preload, registry_to
from benchmarks.procs import WorkerProcess, merged_committed, wait_assigned
from event_spine.broker.tansu import TansuBroker

NAME = "scaling"
DESCRIPTION = (
    "events/s of 1-4 sink worker processes with 5 ms injected latency per append_batch "
    "(a wrapper store), on a store per process (goal: 2 vs 1) and on one shared SQLite file"
)
#: The stores behind the latency, in run order; the first carries the goal.
STORES = ("memory", "sqlite")
#: Worker counts per store: one SQLite file takes one writer at a time, so 1 and 2 show it.
COUNTS = {"memory": (1, 2, 3, 4), "sqlite": (1, 2)}
COMPARISONS = [
    Comparison(
        "scaling, 2 workers vs 1 (5 ms write latency)",
        "workers2_memory_per_s",
        "workers1_memory_per_s",
        "higher",
        Goal("ratio_min", 1.8, "ratio >= 1.8"),
        "2 workers",
        "1 worker",
    ),
    *[
        Comparison(
            f"scaling, {n} workers vs 1 (5 ms write latency; 2 cores)",
            f"workers{n}_memory_per_s",
            "workers1_memory_per_s",
            "higher",
            None,
            f"{n} workers",
            "1 worker",
            "more processes than cores: the figure shows contention on this machine",
        )
        for n in (3, 4)
    ],
    Comparison(
        "scaling on one shared SQLite file (5 ms write latency)",
        "workers2_sqlite_per_s",
        "workers1_sqlite_per_s",
        "higher",
        None,
        "2 workers",
        "1 worker",
    ),
]


def params(smoke: bool) -> dict[str, Any]:
    """Sizes: 100k events (smoke: 2k), 5 ms latency."""
    return {
        "events": 2_000 if smoke else 100_000,
        "latency_ms": 5.0,
        "timeout_s": 120 if smoke else 600,
        "counts": {store: list(counts) for store, counts in COUNTS.items()},
    }


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (Linux /proc), seconds; 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    count: int,
    backend: str,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    workdir: Path,
    p: dict[str, Any],
    broker_pid: int,
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    registry_db = workdir / f"registry-{tag}.db"
    config = {"path": str(workdir / f"store-{tag}.db")} if backend == "sqlite" else {}
    registry = await registry_to(registry_db, backend, config)
    await registry.store.close()
    group = f"bench-scale-{tag}"
    workers = [
        WorkerProcess(bootstrap, topic, group, registry_db, p["latency_ms"], wait_go=True)
        for _ in range(count)
    ]
    broker_cpu_at_start = _cpu_s(broker_pid)
    try:
        # Imports take seconds on a busy machine: all join at once, or the first member
        # would consume alone until a rebalance.
        for worker in workers:
            await worker.start()
        for worker in workers:
            await worker.wait_ready_to_go()
        for worker in workers:
            worker.go()
        deadline = time.monotonic() + p["timeout_s"]
        while True:
            if not all(w.alive for w in workers):
                raise RuntimeError("a worker process died")
            if (ends_met := merged_committed(workers)) and all(
                ends_met.get(q, 0) >= end for q, end in ends.items()
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"scaling: committed {ends_met} of {ends}")
            await asyncio.sleep(0.005)
        first = min(w.state["first"] for w in workers if w.state.get("first"))
        last = max(w.state.get("t", 0.0) for w in workers)
        assigned = [w.state.get("assigned", 0) for w in workers]
        duplicates = sum(w.state.get("duplicates", 0) for w in workers)
        worker_cpu = sum(
            w.state.get("cpu_s", 0.0) - (w.state.get("cpu_first_s") or 0.0) for w in workers
        )
        broker_cpu = _cpu_s(broker_pid) - broker_cpu_at_start
    finally:
        for worker in workers:
            await worker.stop()
    name = f"workers{count}_{backend}"
    events = sum(ends.values())
    return {
        f"{name}_per_s": events / (last - first),
        f"{name}_worker_cpu_us_per_event": worker_cpu / events * 1e6,
        f"{name}_broker_cpu_us_per_event": broker_cpu / events * 1e6,
        f"{name}_duplicates_count": float(duplicates),
        f"{name}_min_assigned_count": float(min(assigned)),
    }


async def _run(p: dict[str, Any], repeats: int, workdir: Path, measured: Measured) -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        broker_pid = broker.pid
        if broker_pid is None:  # started by the context manager: it has a pid
            raise RuntimeError("scaling: the broker process has no pid")
        topic = await new_topic(bootstrap)
        ends = await preload(bootstrap, topic, make_items(p["events"]))
        # Both start at once: a late joiner would rebalance mid-run, so check first
        # that two starting processes end up in one generation.
        await _check_join(bootstrap, topic, workdir)
        for k in range(repeats):
            log(f"scaling: repeat {k + 1}/{repeats}")
            run_metrics: dict[str, float] = {}
            for backend in STORES:
                counts = p["counts"][backend]
                for count in counts if k % 2 == 0 else list(reversed(counts)):
                    run_metrics |= await _measure(
                        count, backend, bootstrap, topic, ends, workdir, p, broker_pid
                    )
            measured.runs.append(run_metrics)


async def _check_join(bootstrap: str, topic: str, workdir: Path) -> None:
    """Fail loudly if two workers do not split the partitions (scaling would be moot)."""
    tag = uuid.uuid4().hex[:8]
    empty = await new_topic(bootstrap, "bench-join")
    registry_db = workdir / f"registry-join-{tag}.db"
    registry = await registry_to(registry_db, "sqlite", {"path": str(workdir / f"join-{tag}.db")})
    await registry.store.close()
    workers = [WorkerProcess(bootstrap, empty, f"join-{tag}", registry_db, 0) for _ in range(2)]
    try:
        for worker in workers:
            await worker.start()
        await wait_assigned(workers, PARTITIONS, 60)
    finally:
        for worker in workers:
            await worker.stop()


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Load the topic once; per repeat one run per worker count (order alternating)."""
    measured = Measured(
        info={
            "workers": "separate processes (python -m benchmarks.worker_proc)",
            "store": "each append_batch delayed 5 ms; memory (one per process, the goal) and "
            "one SQLite file shared by the processes (synchronous=FULL)",
            "partitions": PARTITIONS,
            "cpu": "worker_cpu_us_per_event: the workers' process CPU from their first record "
            "to the end, summed, per event; broker_cpu_us_per_event: Tansu's CPU over the "
            "run (fetches, commits, group joins) per event",
            "cores": os.cpu_count(),
        }
    )
    asyncio.run(_run(p, repeats, workdir, measured))
    # The machine is shared: the load at the end beside machine.load_avg_at_start.
    measured.info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return measured

"""scaling: 1 vs 2 sink worker processes on a store with 5 ms injected write latency.

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
"""

from __future__ import annotations

import asyncio
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
    "events/s of 2 sink worker processes vs 1 with 5 ms injected latency per append_batch "
    "(a wrapper store), on a store per process (goal) and on one shared SQLite file"
)
#: The stores behind the latency, in run order; the first carries the goal.
STORES = ("memory", "sqlite")
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
    }


async def _measure(
    count: int,
    backend: str,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    workdir: Path,
    p: dict[str, Any],
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    registry_db = workdir / f"registry-{tag}.db"
    config = {"path": str(workdir / f"store-{tag}.db")} if backend == "sqlite" else {}
    registry = await registry_to(registry_db, backend, config)
    await registry.store.close()
    group = f"bench-scale-{tag}"
    workers = [
        WorkerProcess(bootstrap, topic, group, registry_db, p["latency_ms"]) for _ in range(count)
    ]
    try:
        for worker in workers:
            await worker.start()
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
        last = max(w.state["t"] for w in workers)
        assigned = [w.state.get("assigned", 0) for w in workers]
        duplicates = sum(w.state.get("duplicates", 0) for w in workers)
    finally:
        for worker in workers:
            await worker.stop()
    name = f"workers{count}_{backend}"
    return {
        f"{name}_per_s": sum(ends.values()) / (last - first),
        f"{name}_duplicates_count": float(duplicates),
        f"{name}_min_assigned_count": float(min(assigned)),
    }


async def _run(p: dict[str, Any], repeats: int, workdir: Path, measured: Measured) -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap)
        ends = await preload(bootstrap, topic, make_items(p["events"]))
        # Both start at once: a late joiner would rebalance mid-run, so check first
        # that two starting processes end up in one generation.
        await _check_join(bootstrap, topic, workdir)
        for k in range(repeats):
            log(f"scaling: repeat {k + 1}/{repeats}")
            run_metrics: dict[str, float] = {}
            for backend in STORES:
                for count in [1, 2] if k % 2 == 0 else [2, 1]:
                    run_metrics |= await _measure(
                        count, backend, bootstrap, topic, ends, workdir, p
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
    """Load the topic once; per repeat one run with 1 worker and one with 2."""
    measured = Measured(
        info={
            "workers": "separate processes (python -m benchmarks.worker_proc)",
            "store": "each append_batch delayed 5 ms; memory (one per process, the goal) and "
            "one SQLite file shared by the processes (synchronous=FULL)",
            "partitions": PARTITIONS,
        }
    )
    asyncio.run(_run(p, repeats, workdir, measured))
    return measured

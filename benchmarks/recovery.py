"""recovery: time from a kill -9 of a sink worker under load to its replacement's first write.

Two worker processes (slots A and B) consume one 6-partition topic while this process
produces a steady stream of events into it. Then, ``kills`` times: SIGKILL one slot's
process (no LeaveGroup, no commit: a crash, an OOM kill, a lost node), start its
replacement at once (same slot: the same ``instance_id`` when one is set), and clock
kill -> the replacement's first store write (both on CLOCK_MONOTONIC, shared by the
processes), and kill -> every partition committed past where it was at the kill. The
replacement's own start (Python imports, the registry, the join) is inside the figure,
as it is for a restarted pod; ``<config>_booted_s`` says how much of it that was.

Four configurations in the same run, the same broker and load:
- ``ours``: the documented configuration, SinkSettings' defaults plus an
  ``instance_id`` per slot: the replacement continues the dead member's group
  membership (kafka/takeover.py; on Tansu a SyncGroup only, no rebalance);
- ``removal``: the documented configuration before: the same, but the replacement
  removes the dead member (LeaveGroup) and joins as a new member
  (``instance_recovery=remove``): the group rebalances and Tansu holds every JoinGroup
  half a session;
- ``dynamic``: SinkSettings' defaults without an ``instance_id`` (a replica without a
  stable name): the dead member's partitions wait out its session;
- ``old``: the defaults before issue 14 (session 10 s, dynamic).
Static membership (``group_instance_id``) is not rerun: 17.2 s median on Tansu
(benchmarks/results/2026-12-02-recovery.json), which pads a static member's JoinGroup
and SyncGroup to 3 s each.

The killed slot alternates (a, b, a, ...): whether the killed member led the group
changed what Tansu did in the removal configuration, and always killing one slot would
always kill the leader (or never).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import (
    HEADERS,
    PARTITIONS,
    aiokafka_producer,
    make_items,
    new_topic,
    registry_to,
)
from benchmarks.procs import WorkerProcess, merged_committed, wait_assigned
from event_spine.broker.tansu import TansuBroker
from event_spine.sink_workers.settings import SinkSettings

NAME = "recovery"
DESCRIPTION = (
    "seconds from a kill -9 of a sink worker under load to its replacement's first write, "
    "median and max over N kills: instance_id continuing the dead member vs removing it "
    "(the defaults before) and vs the old defaults"
)
#: Before issue 14: SinkSettings' defaults then, dynamic membership.
OLD: dict[str, Any] = {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 1_000}
_OURS = "defaults + instance_id (continue the dead member)"
_REMOVAL = "defaults + instance_id, removal (the defaults before)"
COMPARISONS = [
    Comparison(
        "recovery after kill -9, median (s)",
        "ours_median_s",
        "removal_median_s",
        "lower",
        Goal("max", 5.0, "median <= 5 s"),
        _OURS,
        _REMOVAL,
    ),
    Comparison(
        "recovery after kill -9, max (s)",
        "ours_max_s",
        "removal_max_s",
        "lower",
        None,
        _OURS,
        _REMOVAL,
    ),
    Comparison(
        "recovery after kill -9, every partition written again, median (s)",
        "ours_all_partitions_median_s",
        "removal_all_partitions_median_s",
        "lower",
        None,
        _OURS,
        _REMOVAL,
    ),
    Comparison(
        "recovery after kill -9, median, vs the old defaults (s)",
        "ours_median_s",
        "old_median_s",
        "lower",
        Goal("max", 5.0, "median <= 5 s"),
        _OURS,
        "old defaults (session 10 s, dynamic)",
    ),
    Comparison(
        "recovery after kill -9 without instance_id (session 6 s), median (s)",
        "dynamic_median_s",
        "old_median_s",
        "lower",
        None,
        "defaults, no instance_id",
        "old defaults (session 10 s, dynamic)",
    ),
]


def params(smoke: bool) -> dict[str, Any]:
    """10 kills per configuration (smoke: 1, to keep the suite short) under 500 events/s."""
    return {
        "kills": 1 if smoke else 10,
        "rate_per_s": 500,
        "settle_s": 1.0,
        "timeout_s": 90.0,
    }


def configs() -> dict[str, dict[str, Any]]:
    """Name -> SinkSettings fields of slot A and B (``{slot}`` is filled in)."""
    fields = SinkSettings.model_fields
    defaults = {
        "session_timeout_ms": fields["session_timeout_ms"].default,
        "heartbeat_interval_ms": fields["heartbeat_interval_ms"].default,
    }
    return {
        # The documented configuration: a stable instance name per replica.
        "ours": {**defaults, "instance_id": "{slot}"},
        "removal": {**defaults, "instance_id": "{slot}", "instance_recovery": "remove"},
        "dynamic": defaults,
        "old": OLD,
    }


async def _load(bootstrap: str, topic: str, rate_per_s: int, stop: asyncio.Event) -> int:
    """Produce ``rate_per_s`` events per second until ``stop``; returns how many."""
    producer = aiokafka_producer(bootstrap)
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            began = time.monotonic()
            for key, value in make_items(rate_per_s // 10):  # fresh event ids every time
                await producer.send(topic, value, key=key, headers=HEADERS)
            sent += rate_per_s // 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, 0.1 - (time.monotonic() - began)))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _worker(slot: str, config: dict[str, Any], ctx: dict[str, Any]) -> WorkerProcess:
    sink = {k: (v.format(slot=slot) if isinstance(v, str) else v) for k, v in config.items()}
    return WorkerProcess(
        ctx["bootstrap"], ctx["topic"], ctx["group"], ctx["registry_db"], 0, sink=sink
    )


async def _recovered(
    workers: dict[str, WorkerProcess], slot: str, before: dict[int, int], timeout_s: float
) -> tuple[float, float]:
    """(the replacement's first write, every partition committed past ``before``).

    The second clock matters with dynamic membership: the replacement may write while
    the dead member, not yet expired, still holds some partitions nobody writes.
    """
    deadline = time.monotonic() + timeout_s
    all_moved: float | None = None
    replacement = workers[slot]
    while all_moved is None or replacement.state.get("first_write") is None:
        if not replacement.alive:
            raise RuntimeError("the replacement worker exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not recovered {timeout_s}s after the kill")
        now = merged_committed(list(workers.values()))
        # Every partition, also one the dead member owned but had not committed yet.
        if all_moved is None and all(now.get(q, 0) > before.get(q, 0) for q in range(PARTITIONS)):
            all_moved = time.monotonic()
        await asyncio.sleep(0.005)
    return float(replacement.state["first_write"]), all_moved


async def measure_config(
    name: str, config: dict[str, Any], ctx: dict[str, Any], p: dict[str, Any]
) -> tuple[list[float], list[float], list[tuple[float, float, float, float]]]:
    """``kills`` recovery times (s) of one configuration, on a fresh group: to the
    replacement's first write, to every partition committed again, and the phases
    (kill -> replacement imported and running, kill -> replacement assigned, and the
    replacement's CPU seconds at both).

    The killed slot alternates (a, b, a, ...): see the module docstring."""
    ctx = {**ctx, "group": f"bench-recovery-{name}-{uuid.uuid4().hex[:8]}"}
    workers = {slot: _worker(slot, config, ctx) for slot in ("a", "b")}
    times: list[float] = []
    all_times: list[float] = []
    phases: list[tuple[float, float, float, float]] = []
    try:
        for worker in workers.values():
            await worker.start()
        await wait_assigned(list(workers.values()), PARTITIONS, p["timeout_s"])
        for k in range(p["kills"]):
            slot = "ab"[k % 2]
            await asyncio.sleep(p["settle_s"])  # both writing: a steady state
            await wait_assigned(list(workers.values()), PARTITIONS, p["timeout_s"])
            before = merged_committed(list(workers.values()))
            workers[slot].kill()
            killed_at = time.monotonic()
            await workers[slot].stop()  # reap it
            workers[slot] = _worker(slot, config, ctx)
            await workers[slot].start()
            first, every = await _recovered(workers, slot, before, p["timeout_s"])
            times.append(first - killed_at)
            all_times.append(every - killed_at)
            state = workers[slot].state
            phases.append(
                (
                    state["booted"] - killed_at,
                    state["assigned_at"] - killed_at,
                    state["cpu_booted_s"],
                    state["cpu_first_write_s"] or 0.0,
                )
            )
            log(
                f"recovery: {name} kill {k + 1}/{p['kills']} (slot {slot}): first write "
                f"{times[-1]:.2f} s, every partition {all_times[-1]:.2f} s"
            )
    finally:
        for worker in workers.values():
            await worker.stop()
    return times, all_times, phases


async def _run(p: dict[str, Any], workdir: Path, measured: Measured) -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap, "bench-recovery")
        registry_db = workdir / "registry.db"
        registry = await registry_to(registry_db, "sqlite", {"path": str(workdir / "store.db")})
        await registry.store.close()
        ctx = {"bootstrap": bootstrap, "topic": topic, "registry_db": registry_db}
        stop = asyncio.Event()
        load = asyncio.ensure_future(_load(bootstrap, topic, p["rate_per_s"], stop))
        metrics: dict[str, float] = {}
        try:
            for name, config in configs().items():
                times, all_times, phases = await measure_config(name, config, ctx, p)
                measured.info[f"{name}_booted_s"] = [round(ph[0], 3) for ph in phases]
                measured.info[f"{name}_assigned_s"] = [round(ph[1], 3) for ph in phases]
                # Load-independent: the replacement's CPU seconds from exec to its imports
                # done and to its first write.
                measured.info[f"{name}_cpu_imports_s"] = [round(ph[2], 3) for ph in phases]
                measured.info[f"{name}_cpu_to_first_write_s"] = [round(ph[3], 3) for ph in phases]
                metrics[f"{name}_median_s"] = statistics.median(times)
                metrics[f"{name}_max_s"] = max(times)
                metrics[f"{name}_all_partitions_median_s"] = statistics.median(all_times)
                metrics[f"{name}_all_partitions_max_s"] = max(all_times)
                measured.info[f"{name}_times_s"] = [round(t, 3) for t in times]
                measured.info[f"{name}_all_partitions_times_s"] = [round(t, 3) for t in all_times]
        finally:
            stop.set()
            measured.info["events_produced"] = await load
        measured.runs.append(metrics)


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """One run of ``kills`` kills per configuration (``repeats`` is not used: the N kills
    are the repeats)."""
    del repeats
    measured = Measured(
        info={
            "workers": "2 processes (benchmarks.worker_proc), the killed slot alternates a, b",
            "configs": configs(),
            "store": "one SQLite file",
            "partitions": PARTITIONS,
            "loadavg_at_start": os.getloadavg(),
        }
    )
    asyncio.run(_run(p, workdir, measured))
    measured.info["loadavg_at_end"] = os.getloadavg()
    return measured

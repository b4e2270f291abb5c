"""replay: events/s replaying a topic into a fresh SQLite store.

Subject: ``event_spine.replay.Replayer`` when it imports (manual partition
assignment, the sink's BatchProcessor, commits to its own group); otherwise the
sink path (a SinkWorker in a fresh consumer group) into a fresh SQLite, labelled
so in the result. Baseline: the hand-written getmany + executemany + commit loop
with manual assignment (no group join either). Clock: start -> everything
durable, on both sides (the Replayer's own start-up is included).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import make_items, new_topic, preload, watch
from benchmarks.rawloops import RawSqliteSink
from benchmarks.sink import run_worker
from event_spine.broker.tansu import TansuBroker

NAME = "replay"
DESCRIPTION = (
    "events/s replaying a topic into a fresh SQLite (Replayer if present, else the sink path "
    "from a fresh group) vs the hand-written loop"
)
COMPARISONS = [
    Comparison(
        "replay into fresh SQLite",
        "replay_per_s",
        "raw_per_s",
        "higher",
        Goal("min", 50_000.0, ">= 50k events/s"),
        "replay",
        "hand-written getmany+executemany+commit",
    ),
]


def params(smoke: bool) -> dict[str, Any]:
    """Sizes: 200k events (smoke: 2k)."""
    return {"events": 2_000 if smoke else 200_000, "timeout_s": 120 if smoke else 600}


def subject() -> str:
    """What is benchmarked: the Replayer, or the sink-path fallback."""
    try:
        from event_spine.replay import Replayer  # noqa: F401, PLC0415
    except ImportError:
        return "sink path (SinkWorker, fresh consumer group) into a fresh SQLite: no Replayer"
    return "event_spine.replay.Replayer (StartFrom.beginning, SQLite target)"


async def _replayer(bootstrap: str, topic: str, db: Path, events: int) -> float:
    from event_spine.replay import (  # noqa: PLC0415 - optional, see subject()
        ReplayConfig,
        Replayer,
        ReplayTarget,
        StartFrom,
    )

    config = ReplayConfig(
        kafka=bootstrap,
        topic=topic,
        name=f"bench-{uuid.uuid4().hex[:8]}",
        target=ReplayTarget.of_backend("sqlite", {"path": str(db)}),
        start=StartFrom.beginning(),
        include_unrouted=True,  # like the raw baseline: every event read is written
    )
    started = time.perf_counter()
    progress = await Replayer(config).run()
    elapsed = time.perf_counter() - started
    if progress.written != events:
        raise RuntimeError(f"replay wrote {progress.written} of {events}: {progress.summary()}")
    return events / elapsed


async def _raw(
    bootstrap: str, topic: str, db: Path, ends: dict[int, int], timeout_s: float
) -> float:
    sink = RawSqliteSink(db)
    started = time.perf_counter()
    await sink.open()
    task = asyncio.ensure_future(
        sink.run(bootstrap, topic, f"raw-{uuid.uuid4().hex[:8]}", assign=True)
    )
    try:
        _, last = await watch(sink.seen, sink.positions, ends, timeout_s, task)
    finally:
        sink.stop.set()
        await task
        await sink.close()
    return sum(ends.values()) / (last - started)


async def _run(p: dict[str, Any], repeats: int, workdir: Path, measured: Measured) -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap)
        ends = await preload(bootstrap, topic, make_items(p["events"]))
        use_replayer = "Replayer" in measured.info["subject"]
        for k in range(repeats):
            log(f"replay: repeat {k + 1}/{repeats}")
            out: dict[str, float] = {}
            for side in ["ours", "raw"] if k % 2 == 0 else ["raw", "ours"]:
                db = workdir / f"{side}-{k}-{uuid.uuid4().hex[:6]}.db"
                if side == "raw":
                    out["raw_per_s"] = await _raw(bootstrap, topic, db, ends, p["timeout_s"])
                elif use_replayer:
                    out["replay_per_s"] = await _replayer(bootstrap, topic, db, p["events"])
                else:
                    out["replay_per_s"] = await run_worker(
                        bootstrap, topic, ends, workdir, "sqlite", {"path": str(db)}, p["timeout_s"]
                    )
            measured.runs.append(out)


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Load the topic once; each repeat replays it into fresh files, both sides."""
    measured = Measured(info={"subject": subject(), "store": "SQLite, synchronous=FULL"})
    asyncio.run(_run(p, repeats, workdir, measured))
    return measured

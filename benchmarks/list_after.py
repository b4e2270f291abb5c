"""list_after: latency of ``list_after(stream, last_event_id, 100)`` on a 1M-event SQLite.

The store is built once per run in a temporary folder, straight through
``SqliteEventStore.append_batch`` in batches of 20,000 (its build time is
reported). Anchors are random events with at least 100 successors in their
stream. Baseline, interleaved query by query: the same page read with one
hand-written SQL statement on a plain sqlite3 connection (anchor position in a
subquery, no watermark check, no thread hop) and decoded with msgspec.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, latency_summary, log
from benchmarks.pipeline import CTX, make_record
from event_spine.backends.base import record_from_json
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.schemas.wire import StoredEvent

NAME = "list_after"
DESCRIPTION = (
    "list_after(stream, last_event_id, 100) latency on a 1M-event SQLite store built with "
    "append_batch, vs one hand-written SQL query"
)
_RAW = "hand-written SQL + msgspec decode"
COMPARISONS = [
    Comparison(
        "list_after(100) p50, 1M-event store",
        "ours_p50_us",
        "raw_p50_us",
        "lower",
        Goal("ratio_min", 0.9, "ratio >= 0.9"),
        "list_after",
        _RAW,
    ),
    Comparison(
        "list_after(100) p99, 1M-event store",
        "ours_p99_us",
        "raw_p99_us",
        "lower",
        Goal("ratio_min", 0.9, "ratio >= 0.9"),
        "list_after",
        _RAW,
    ),
]
_RAW_SQL = (
    "SELECT body, position FROM spine_events WHERE tenant_id = ? AND env = ? AND mode = ?"
    " AND project_id = ? AND stream_id = ? AND position > (SELECT position FROM spine_events"
    " WHERE event_id = ?) ORDER BY position LIMIT 100"
)


def params(smoke: bool) -> dict[str, Any]:
    """1M events over 1,000 streams, 2,000 queries per repeat (smoke: 5k, 20, 50)."""
    if smoke:
        return {"events": 5_000, "streams": 20, "batch": 2_000, "queries": 50}
    return {"events": 1_000_000, "streams": 1_000, "batch": 20_000, "queries": 2_000}


async def build(path: Path, p: dict[str, Any]) -> tuple[float, list[tuple[str, str]]]:
    """Fill the store; returns the build seconds and (stream, anchor id) samples."""
    events, streams, batch = p["events"], p["streams"], p["batch"]
    per_stream = events // streams
    rng = random.Random(7)
    keep = min(1.0, 4 * p["queries"] / events)
    anchors: list[tuple[str, str]] = []
    store = SqliteEventStore(SqliteConfig(path=str(path)))
    await store.open()
    elapsed = 0.0
    try:
        for start in range(0, events, batch):
            chunk = []
            for i in range(start, min(start + batch, events)):
                stream = f"orders/o_{i % streams:04d}"
                event = StoredEvent(make_record(i, stream), i)
                chunk.append(event)
                # An anchor needs 100 successors in its stream.
                if i // streams < per_stream - 100 and rng.random() < keep:
                    anchors.append((stream, event.event_id))
            began = time.perf_counter()
            await store.append_batch(chunk)
            elapsed += time.perf_counter() - began
    finally:
        await store.close()
    rng.shuffle(anchors)
    return elapsed, anchors


async def _queries(path: Path, anchors: list[tuple[str, str]]) -> dict[str, float]:
    store = SqliteEventStore(SqliteConfig(path=str(path)))
    await store.open()
    conn = sqlite3.connect(path)
    scope = CTX.scope
    key = (CTX.tenant_id, CTX.env, CTX.mode, CTX.project_id)
    ours: list[int] = []
    raw: list[int] = []
    clock = time.perf_counter_ns
    try:
        for n, (stream, anchor) in enumerate(anchors):
            for side in ("ours", "raw") if n % 2 == 0 else ("raw", "ours"):
                started = clock()
                if side == "ours":
                    page = await store.list_after(scope, stream, anchor, 100)
                    ours.append(clock() - started)
                else:
                    rows = conn.execute(_RAW_SQL, (*key, stream, anchor)).fetchall()
                    page = [StoredEvent(record_from_json(body), pos) for body, pos in rows]
                    raw.append(clock() - started)
                if len(page) != 100:
                    raise RuntimeError(f"{side}: {len(page)} events after {anchor}, expected 100")
    finally:
        conn.close()
        await store.close()
    return {**latency_summary(ours, "ours"), **latency_summary(raw, "raw")}


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Build once, then ``repeats`` rounds of interleaved queries."""
    path = workdir / "list_after.db"
    log(f"list_after: building a {p['events']:,}-event store")
    build_s, anchors = asyncio.run(build(path, p))
    anchors = anchors[: p["queries"]]
    if not anchors:
        raise RuntimeError("no anchor has 100 successors: use more events per stream")
    measured = Measured(
        info={
            "build_s": build_s,
            "build_per_s": p["events"] / build_s,
            "build": f"append_batch of {p['batch']:,} events, SQLite synchronous=FULL, "
            "event generation excluded",
            "db_bytes": path.stat().st_size,
            "anchors": len(anchors),
        }
    )
    for k in range(repeats):
        log(f"list_after: repeat {k + 1}/{repeats}")
        metrics = asyncio.run(_queries(path, anchors))
        if k == 0:
            metrics |= {"build_s": build_s, "build_per_s": p["events"] / build_s}
        measured.runs.append(metrics)
    return measured

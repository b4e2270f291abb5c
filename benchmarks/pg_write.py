"""pg_write: PostgresEventStore.append_batch of 2,000-event batches vs two hand-written writers.

The sink benchmark measures the whole worker (fetch, decode, routing, commit);
this one isolates the store's write, batch by batch, paired: each batch goes to
our store, to a hand ``executemany`` writer and to a hand COPY writer (the
``rawloops`` statements: one transaction per batch, events then watermarks), in a
rotating order, each into tables of its own in one fresh database. Clock: one
batch's write, call to commit; the event loop's CPU time is reported beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import make_record, stream_ids
from benchmarks.rawloops import (
    _PG_ADVANCE,
    _PG_DDL,
    _PG_FROM_STAGING,
    _PG_INSERT,
    _PG_STAGING,
)
from benchmarks.sink import _postgres_ready, postgres_database
from event_spine.backends.postgres import PostgresConfig
from event_spine.backends.postgres.events import PostgresEventStore
from event_spine.schemas.wire import ReceivedEvent, StoredEvent, encode_record

NAME = "pg_write"
DESCRIPTION = (
    "PostgresEventStore.append_batch of 2,000-event batches vs a hand executemany writer and "
    "a hand COPY writer, paired batch by batch"
)
COMPARISONS = [
    Comparison(
        "append_batch(2000) PostgreSQL vs executemany",
        "ours_per_s",
        "executemany_per_s",
        "higher",
        Goal("ratio_min", 1.3, "ratio >= 1.3"),
        "append_batch",
        "hand executemany",
    ),
    Comparison(
        "append_batch(2000) PostgreSQL vs COPY",
        "ours_per_s",
        "copy_per_s",
        "higher",
        None,
        "append_batch",
        "hand COPY + INSERT SELECT",
    ),
]
_BATCH = 2_000
Writer = Callable[[list[StoredEvent]], Awaitable[None]]


def params(smoke: bool) -> dict[str, Any]:
    """Batches of 2,000 events per repeat (smoke: 2)."""
    return {"batches": 2 if smoke else 30, "batch_size": _BATCH}


def _batches(count: int, size: int) -> list[list[StoredEvent]]:
    """Events as the sink hands them over: decoded, with their wire bytes."""
    streams = stream_ids()
    out = []
    for b in range(count):
        batch: list[StoredEvent] = []
        for i in range(b * size, (b + 1) * size):
            record = make_record(i, streams[i % len(streams)])
            batch.append(ReceivedEvent(record, i, raw=encode_record(record)))
        out.append(batch)
    return out


def _rows(events: list[StoredEvent]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rows, marks = [], {}
    for e in events:
        r = e.record
        key = (
            r.routing.tenant_id,
            r.routing.env,
            r.routing.mode,
            r.routing.project_id,
            r.stream_id,
        )
        rows.append((r.event_id, *key, e.position, r.event_type, r.ts, getattr(e, "raw", b"")))
        marks[key] = (e.position, r.event_id)
    return rows, sorted((*k, p, i) for k, (p, i) in marks.items())


async def _hand_writers(dsn: str) -> tuple[Writer, Writer, Callable[[], Awaitable[None]]]:
    import asyncpg  # noqa: PLC0415 - optional dependency

    em = await asyncpg.connect(dsn)
    await em.execute(_PG_DDL)
    cp = await asyncpg.connect(dsn)
    await cp.execute(_PG_DDL.replace("raw_", "rc_"))
    await cp.execute(_PG_STAGING.replace("raw_events", "rc_events"))
    from_staging = _PG_FROM_STAGING.replace("INTO raw_events", "INTO rc_events")
    advance_copy = _PG_ADVANCE.replace("raw_cursors", "rc_cursors")

    async def executemany(events: list[StoredEvent]) -> None:
        rows, marks = _rows(events)
        async with em.transaction():
            await em.executemany(_PG_INSERT, rows)
            await em.executemany(_PG_ADVANCE, marks)

    async def copy(events: list[StoredEvent]) -> None:
        rows, marks = _rows(events)
        async with cp.transaction():
            await cp.copy_records_to_table("raw_staging", records=rows)
            await cp.execute(from_staging)
            await cp.executemany(advance_copy, marks)

    async def close() -> None:
        await em.close()
        await cp.close()

    return executemany, copy, close


async def _repeat(data: list[list[StoredEvent]]) -> dict[str, float]:
    async with postgres_database() as dsn:
        store = PostgresEventStore(PostgresConfig(dsn=dsn))
        await store.open()
        executemany, copy, close = await _hand_writers(dsn)

        async def ours(events: list[StoredEvent]) -> None:
            await store.append_batch(events)

        sides: dict[str, Writer] = {"ours": ours, "executemany": executemany, "copy": copy}
        wall: dict[str, list[float]] = {k: [] for k in sides}
        cpu: dict[str, list[float]] = {k: [] for k in sides}
        try:
            for n, events in enumerate(data):
                names = list(sides)
                for name in names[n % 3 :] + names[: n % 3]:
                    cpu_began, began = time.process_time(), time.perf_counter()
                    await sides[name](events)
                    wall[name].append(time.perf_counter() - began)
                    cpu[name].append(time.process_time() - cpu_began)
        finally:
            await close()
            await store.close()
    out: dict[str, float] = {}
    for name in sides:
        out[f"{name}_per_s"] = len(data[0]) / statistics.median(wall[name])
        out[f"{name}_loop_cpu_ms"] = statistics.median(cpu[name]) * 1000
    return out


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Per repeat: a fresh database, every batch written by each side in turn."""
    del workdir
    measured = Measured(info={"batch_size": p["batch_size"], "clock": "median batch"})
    reason = asyncio.run(_postgres_ready())
    if reason:
        measured.info["skipped"] = {"postgres": reason}
        return measured
    data = _batches(p["batches"], p["batch_size"])
    for k in range(repeats):
        log(f"pg_write: repeat {k + 1}/{repeats}")
        measured.runs.append(asyncio.run(_repeat(data)))
    return measured

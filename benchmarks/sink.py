"""sink: events/s from topic to committed-in-store, one worker, vs a hand-written loop.

The topic is loaded once; every repeat consumes all of it with fresh consumer
groups into fresh stores: our SinkWorker (faststream batch subscriber, route
lookup, idempotent batch write with watermarks, manual commit) and the
hand-written aiokafka getmany + executemany + commit loop of ``rawloops``, on the
same data, alternating which goes first; for PostgreSQL also the same loop writing
with COPY into a temporary table (``RawPostgresCopySink``), the bulk way. Clock:
first record received -> every partition committed to its end (the group join is
excluded on both sides). PostgreSQL: 127.0.0.1:5432, user root, trust auth, a
database created and dropped by the run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import make_items, new_topic, preload, registry_to, sink_settings, watch
from benchmarks.rawloops import RawPostgresCopySink, RawPostgresSink, RawSqliteSink, _RawSink
from event_spine.broker.tansu import TansuBroker
from event_spine.sink_workers.worker import SinkWorker

NAME = "sink"
DESCRIPTION = (
    "events/s from topic to committed-in-store with one SinkWorker vs a hand-written aiokafka "
    "getmany + executemany + commit loop on the same data (SQLite and PostgreSQL; for "
    "PostgreSQL also the same loop writing by COPY)"
)
_RAW = "hand-written getmany+executemany+commit"
_RAW_COPY = "hand-written getmany+COPY+INSERT SELECT+commit"
COMPARISONS = [
    Comparison(
        "sink -> SQLite",
        "sqlite_ours_per_s",
        "sqlite_raw_per_s",
        "higher",
        Goal("ratio_min", 1.0, "ratio >= 1.0"),
        "SinkWorker",
        _RAW,
    ),
    Comparison(
        "sink -> PostgreSQL",
        "postgres_ours_per_s",
        "postgres_raw_per_s",
        "higher",
        Goal("ratio_min", 1.3, "ratio >= 1.3"),
        "SinkWorker",
        _RAW,
    ),
    Comparison(
        "sink -> PostgreSQL vs a hand COPY loop",
        "postgres_ours_per_s",
        "postgres_rawcopy_per_s",
        "higher",
        None,
        "SinkWorker",
        _RAW_COPY,
    ),
]
PG_ADMIN_DSN = "postgresql://root@127.0.0.1:5432/postgres"


def params(smoke: bool) -> dict[str, Any]:
    """Sizes: 200k events (smoke: 2k); timeout per side in seconds."""
    return {
        "events": 2_000 if smoke else 200_000,
        "timeout_s": 120 if smoke else 600,
        "backends": ["sqlite", "postgres"],
    }


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh database on the local server; yields its DSN, drops it afterwards."""
    import asyncpg  # noqa: PLC0415 - optional dependency

    name = f"spine_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql://root@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def store_config(backend: str, workdir: Path, dsn: str | None, tag: str) -> dict[str, Any]:
    """A fresh store of ``backend`` (a new file, or new tables in the run's database)."""
    if backend == "sqlite":
        return {"path": str(workdir / f"ours-{tag}.db")}
    return {"dsn": dsn, "table_prefix": f"b{tag}_"}


async def until_committed(
    worker: SinkWorker, ends: dict[int, int], timeout_s: float
) -> tuple[float, float]:
    """Watch a started worker: (first record received, every partition committed)."""
    return await watch(
        lambda: worker.stats.records,
        lambda: {p: off for (_, p), off in worker.stats.committed.items()},
        ends,
        timeout_s,
    )


async def run_worker(
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    workdir: Path,
    backend: str,
    config: dict[str, Any],
    timeout_s: float,
) -> float:
    """One SinkWorker until everything is committed; returns events/s."""
    tag = uuid.uuid4().hex[:8]
    registry = await registry_to(workdir / f"registry-{tag}.db", backend, config)
    worker = SinkWorker(
        sink_settings(bootstrap, topic, workdir / f"registry-{tag}.db"), registry=registry
    )
    await worker.start()
    try:
        first, last = await until_committed(worker, ends, timeout_s)
    finally:
        await worker.stop()
        await registry.store.close()
    return sum(ends.values()) / (last - first)


async def run_raw(
    sink: _RawSink, bootstrap: str, topic: str, ends: dict[int, int], timeout_s: float
) -> float:
    """The hand-written loop until everything is committed; returns events/s."""
    await sink.open()
    task = asyncio.ensure_future(sink.run(bootstrap, topic, f"raw-{uuid.uuid4().hex[:8]}"))
    try:
        first, last = await watch(sink.seen, sink.positions, ends, timeout_s, task)
    finally:
        sink.stop.set()
        await task
        await sink.close()
    return sum(ends.values()) / (last - first)


async def _postgres_ready() -> str | None:
    try:
        import asyncpg  # noqa: PLC0415

        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()
    except Exception as exc:  # any failure: skip PostgreSQL with the reason
        return f"PostgreSQL at 127.0.0.1:5432 is not usable: {exc!r}"
    return None


async def _one_backend(
    backend: str,
    k: int,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    workdir: Path,
    timeout_s: float,
    dsn: str | None,
) -> dict[str, float]:
    out: dict[str, float] = {}
    sides = ["ours", "raw"] + (["rawcopy"] if backend == "postgres" else [])
    # Each side goes first in turn.
    sides = sides[k % len(sides) :] + sides[: k % len(sides)]
    for side in sides:
        tag = f"{k}{side}{uuid.uuid4().hex[:6]}"
        if side == "ours":
            config = store_config(backend, workdir, dsn, tag)
            rate = await run_worker(bootstrap, topic, ends, workdir, backend, config, timeout_s)
        else:
            sink: _RawSink = (
                RawSqliteSink(workdir / f"raw-{tag}.db")
                if backend == "sqlite"
                else RawPostgresCopySink(dsn or "")
                if side == "rawcopy"
                else RawPostgresSink(dsn or "")
            )
            rate = await run_raw(sink, bootstrap, topic, ends, timeout_s)
            if backend == "postgres":
                await _drop_raw_tables(dsn or "")  # a fresh raw table for the next side
        out[f"{backend}_{side}_per_s"] = rate
    return out


async def _run(p: dict[str, Any], repeats: int, workdir: Path, measured: Measured) -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap)
        ends = await preload(bootstrap, topic, make_items(p["events"]))
        backends = list(p["backends"])
        if "postgres" in backends and (reason := await _postgres_ready()):
            backends.remove("postgres")
            measured.info["skipped"] = {"postgres": reason}
        runs: list[dict[str, float]] = [{} for _ in range(repeats)]
        for backend in backends:
            if backend == "postgres":
                async with postgres_database() as dsn:
                    for k in range(repeats):
                        log(f"sink: postgres repeat {k + 1}/{repeats}")
                        runs[k] |= await _one_backend(
                            backend, k, bootstrap, topic, ends, workdir, p["timeout_s"], dsn
                        )
            else:
                for k in range(repeats):
                    log(f"sink: {backend} repeat {k + 1}/{repeats}")
                    runs[k] |= await _one_backend(
                        backend, k, bootstrap, topic, ends, workdir, p["timeout_s"], None
                    )
        measured.runs.extend(runs)


async def _drop_raw_tables(dsn: str) -> None:
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS raw_events, raw_cursors")
    finally:
        await conn.close()


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Load the topic once, then per backend ``repeats`` interleaved pairs."""
    measured = Measured(
        info={
            "partitions": 6,
            "worker_settings": "production defaults "
            "(max_records 2000, fetch_max_wait_ms 100), session_timeout 2 s",
        }
    )
    asyncio.run(_run(p, repeats, workdir, measured))
    return measured

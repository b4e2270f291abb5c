"""backends: ``append_batch`` throughput with 500-event batches, per backend.

SQLite (a file, synchronous=FULL) and PostgreSQL (127.0.0.1:5432) are real; DynamoDB,
Firestore and Cosmos DB run on their local emulators (tests/servers/emulators.py)
when those start here: their figures are EMULATOR numbers, which say nothing about
the cloud services' throughput. Each batch spans 10 streams; each repeat writes
into fresh tables. SQLite and PostgreSQL also get a hand-written baseline: the same
rows with one ``executemany`` per batch in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.common import REPO_ROOT, Comparison, Measured, log
from benchmarks.pipeline import make_record
from benchmarks.sink import postgres_database
from event_spine.backends.seams import EventStore
from event_spine.schemas.wire import StoredEvent, encode_record

NAME = "backends"
DESCRIPTION = (
    "append_batch throughput with 500-event batches: sqlite, postgres, and the dynamodb, "
    "firestore and cosmos EMULATORS when they start"
)
_RAW = "hand-written executemany"
COMPARISONS = [
    Comparison(
        "append_batch(500) SQLite",
        "sqlite_per_s",
        "sqlite_raw_per_s",
        "higher",
        None,
        "SqliteEventStore",
        _RAW,
    ),
    Comparison(
        "append_batch(500) PostgreSQL",
        "postgres_per_s",
        "postgres_raw_per_s",
        "higher",
        None,
        "PostgresEventStore",
        _RAW,
    ),
    Comparison(
        "append_batch(500) DynamoDB Local (emulator)",
        "dynamodb_emulator_per_s",
        None,
        "higher",
        None,
        "DynamoEventStore on DynamoDB Local",
    ),
    Comparison(
        "append_batch(500) Firestore (emulator)",
        "firestore_emulator_per_s",
        None,
        "higher",
        None,
        "FirestoreEventStore on the npm emulator",
    ),
    Comparison(
        "append_batch(500) Cosmos DB (emulator)",
        "cosmos_emulator_per_s",
        None,
        "higher",
        None,
        "CosmosEventStore on the npm emulator",
    ),
]
BATCH = 500
EMULATORS = ("dynamodb", "firestore", "cosmos")


def params(smoke: bool) -> dict[str, Any]:
    """Batches per backend and repeat (emulators are slow: fewer)."""
    if smoke:
        return {"batches": {"sqlite": 2, "postgres": 2, "dynamodb": 1, "firestore": 1, "cosmos": 1}}
    return {
        "batches": {"sqlite": 100, "postgres": 100, "dynamodb": 20, "firestore": 10, "cosmos": 4}
    }


def batches(count: int, first_position: int = 0) -> list[list[StoredEvent]]:
    """``count`` batches of 500 events over 10 streams, positions increasing."""
    out = []
    n = first_position
    for _ in range(count):
        batch = []
        for j in range(BATCH):
            batch.append(StoredEvent(make_record(n, f"orders/b_{j % 10}"), n))
            n += 1
        out.append(batch)
    return out


async def _timed(store: EventStore, data: list[list[StoredEvent]]) -> float:
    await store.open()
    try:
        started = time.perf_counter()
        for batch in data:
            result = await store.append_batch(batch)
            if result.written != len(batch):
                raise RuntimeError(f"{type(store).__name__} wrote {result.written} of {len(batch)}")
        return sum(len(b) for b in data) / (time.perf_counter() - started)
    finally:
        await store.close()


def _raw_rows(
    batch: list[StoredEvent], ts_text: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rows = []
    marks: dict[tuple[str, ...], tuple[int, str]] = {}
    for event in batch:
        r = event.record.routing
        key = (r.tenant_id, r.env, r.mode, r.project_id, event.record.stream_id)
        ts = event.record.ts
        rows.append(
            (
                event.event_id,
                *key,
                event.position,
                event.record.event_type,
                ts.isoformat() if ts_text else ts,
                encode_record(event.record),
            )
        )
        marks[key] = (event.position, event.event_id)
    return rows, [(*k, pos, eid) for k, (pos, eid) in sorted(marks.items())]


async def _raw_sqlite(path: Path, data: list[list[StoredEvent]]) -> float:
    from benchmarks.rawloops import RawSqliteSink  # noqa: PLC0415

    sink = RawSqliteSink(path)
    await sink.open()
    loop = asyncio.get_running_loop()
    try:
        started = time.perf_counter()
        for batch in data:
            rows, marks = _raw_rows(batch, ts_text=True)
            await loop.run_in_executor(sink._executor, sink._write_sync, rows, marks)
        return sum(len(b) for b in data) / (time.perf_counter() - started)
    finally:
        await sink.close()


async def _raw_postgres(dsn: str, data: list[list[StoredEvent]]) -> float:
    from benchmarks.rawloops import _PG_ADVANCE, _PG_INSERT, RawPostgresSink  # noqa: PLC0415

    sink = RawPostgresSink(dsn)
    await sink.open()
    conn = sink._conn
    try:
        await conn.execute("TRUNCATE raw_events, raw_cursors")
        started = time.perf_counter()
        for batch in data:
            rows, marks = _raw_rows(batch, ts_text=False)
            async with conn.transaction():
                await conn.executemany(_PG_INSERT, rows)
                await conn.executemany(_PG_ADVANCE, marks)
        return sum(len(b) for b in data) / (time.perf_counter() - started)
    finally:
        await sink.close()


def _emulators_module() -> ModuleType:
    """tests/servers/emulators.py, loaded by path (tests/ is not a package on sys.path)."""
    path = REPO_ROOT / "tests" / "servers" / "emulators.py"
    spec = importlib.util.spec_from_file_location("_spine_bench_emulators", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.asynccontextmanager
async def emulator(name: str) -> AsyncIterator[Callable[[], EventStore]]:
    """Start one emulator; yields a factory of fresh stores on it."""
    emu = _emulators_module()
    if name == "dynamodb":
        import aioboto3  # noqa: PLC0415

        from event_spine.backends.dynamodb import DynamoConfig  # noqa: PLC0415
        from event_spine.backends.dynamodb.events import DynamoEventStore  # noqa: PLC0415

        with emu.DynamoDBLocal() as server:
            session = aioboto3.Session(
                aws_access_key_id=emu.DYNAMODB_ACCESS_KEY_ID,
                aws_secret_access_key=emu.DYNAMODB_SECRET_ACCESS_KEY,
                region_name=emu.DYNAMODB_REGION,
            )

            def dynamo() -> EventStore:
                config = DynamoConfig(
                    events_table=f"ev_{uuid.uuid4().hex[:10]}",
                    region=emu.DYNAMODB_REGION,
                    endpoint_url=server.endpoint,
                    create_tables=True,
                )
                return DynamoEventStore(config, session)

            yield dynamo
    elif name == "firestore":
        from event_spine.backends.firestore import FirestoreConfig  # noqa: PLC0415
        from event_spine.backends.firestore.events import FirestoreEventStore  # noqa: PLC0415

        with emu.FirestoreEmulator() as server, _env(FIRESTORE_EMULATOR_HOST=server.endpoint):

            def firestore() -> EventStore:
                return FirestoreEventStore(
                    FirestoreConfig(
                        project=emu.FIRESTORE_PROJECT,
                        collection_prefix=f"b{uuid.uuid4().hex[:10]}_",
                        max_commit_bytes=3 * 1024 * 1024,  # the emulator refuses > 4 MiB
                    )
                )

            yield firestore
    else:
        from event_spine.backends.cosmos import CosmosConfig  # noqa: PLC0415
        from event_spine.backends.cosmos.events import CosmosEventStore  # noqa: PLC0415

        with emu.CosmosEmulator() as server, _env(SPINE_BENCH_COSMOS_KEY=emu.COSMOS_EMULATOR_KEY):

            def cosmos() -> EventStore:
                return CosmosEventStore(
                    CosmosConfig(
                        endpoint=server.endpoint,
                        database=f"bench_{uuid.uuid4().hex[:10]}",
                        key_env="SPINE_BENCH_COSMOS_KEY",
                        verify_tls=False,  # the emulator's self-signed certificate
                        transactional_batch=False,  # the emulator fails batches (500)
                    )
                )

            yield cosmos


async def _real(p: dict[str, Any], repeats: int, workdir: Path, measured: Measured) -> None:
    from benchmarks.sink import _postgres_ready  # noqa: PLC0415

    pg_problem = await _postgres_ready()
    if pg_problem:
        measured.info.setdefault("skipped", {})["postgres"] = pg_problem
    sq = batches(p["batches"]["sqlite"])
    pg = batches(p["batches"]["postgres"])
    async with contextlib.AsyncExitStack() as stack:
        dsn = None if pg_problem else await stack.enter_async_context(postgres_database())
        for k in range(repeats):
            log(f"backends: sqlite/postgres repeat {k + 1}/{repeats}")
            run = measured.runs[k]
            from event_spine.backends.sqlite import SqliteConfig  # noqa: PLC0415
            from event_spine.backends.sqlite.events import SqliteEventStore  # noqa: PLC0415

            tag = f"{k}{uuid.uuid4().hex[:6]}"
            order = ["ours", "raw"] if k % 2 == 0 else ["raw", "ours"]
            for side in order:
                if side == "ours":
                    cfg = SqliteConfig(path=str(workdir / f"s-{tag}.db"))
                    run["sqlite_per_s"] = await _timed(SqliteEventStore(cfg), sq)
                else:
                    run["sqlite_raw_per_s"] = await _raw_sqlite(workdir / f"r-{tag}.db", sq)
            if dsn is None:
                continue
            from event_spine.backends.postgres import PostgresConfig  # noqa: PLC0415
            from event_spine.backends.postgres.events import PostgresEventStore  # noqa: PLC0415

            for side in order:
                if side == "ours":
                    cfg_pg = PostgresConfig(dsn=dsn, table_prefix=f"b{tag}_")
                    run["postgres_per_s"] = await _timed(PostgresEventStore(cfg_pg), pg)
                else:
                    run["postgres_raw_per_s"] = await _raw_postgres(dsn, pg)


async def _emulated(p: dict[str, Any], repeats: int, measured: Measured) -> None:
    for name in EMULATORS:
        data = batches(p["batches"][name])
        try:
            async with emulator(name) as new_store:
                for k in range(repeats):
                    log(f"backends: {name} emulator repeat {k + 1}/{repeats}")
                    measured.runs[k][f"{name}_emulator_per_s"] = await _timed(new_store(), data)
        except Exception as exc:  # a missing emulator or SDK: recorded, not fatal
            measured.info.setdefault("skipped", {})[name] = f"{type(exc).__name__}: {exc}"[:500]
            log(f"backends: {name} skipped: {exc!r}"[:300])


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Real backends first, then each emulator started once for its repeats."""
    measured = Measured(
        runs=[{} for _ in range(repeats)],
        info={
            "batch_size": BATCH,
            "emulators": "dynamodb, firestore and cosmos figures are EMULATOR numbers "
            "(DynamoDB Local 3.3.0, @firestore-emulator/server, @vercel/cosmosdb-server; "
            "cosmos with transactional_batch=False), not the cloud services'",
        },
    )
    asyncio.run(_real(p, repeats, workdir, measured))
    asyncio.run(_emulated(p, repeats, measured))
    return measured

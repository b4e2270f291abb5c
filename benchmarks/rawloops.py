"""Hand-written baselines: what a careful engineer would write without event-spine.

- ``RawSqliteSink`` / ``RawPostgresSink``: aiokafka ``getmany`` -> decode (the
  library's validating ``decode_record``: the sink's checks at the sink's cost) -> one
  transaction of ``executemany`` (events, then each stream's watermark) -> commit
  the Kafka offsets. Same schema and indexes as the spine's backends, same fetch
  settings and batch size as a sink worker; no routing, no dead letters.
- ``RawPostgresCopySink``: the same loop writing each batch the bulk way: binary
  COPY into a temporary table, one ``INSERT ... SELECT ... ON CONFLICT (event_id)
  DO NOTHING``, then the watermarks (no check of skipped rows: an event at a taken
  position would stop it with a unique violation).
- ``raw_send_batch`` (the producer's baseline): aiokafka ``create_batch`` /
  ``append`` / ``send_batch``, the API the spine's sender uses, one open batch per
  partition sent when full; partitions from aiokafka's own partitioner, once per key.
- ``raw_send``: aiokafka ``send()`` per event (reported beside it).
- ``raw_confluent``: confluent-kafka ``produce()`` per event with the confluent
  transport's librdkafka options, ``poll(0)`` every 2,000 events, then ``flush()``.
All three send already serialized events with the spine producer's batching,
compression and acks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from benchmarks.pipeline import GROUP_TIMING, HEADERS, aiokafka_producer, make_items, new_topic
from event_spine.schemas.wire import decode_record

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS raw_events (
    event_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, env TEXT NOT NULL,
    mode TEXT NOT NULL, project_id TEXT NOT NULL, stream_id TEXT NOT NULL,
    position INTEGER NOT NULL, event_type TEXT NOT NULL, ts TEXT NOT NULL, body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS raw_events_by_stream
    ON raw_events (tenant_id, env, mode, project_id, stream_id, position);
CREATE INDEX IF NOT EXISTS raw_events_by_type
    ON raw_events (tenant_id, env, mode, project_id, stream_id, event_type, position);
CREATE TABLE IF NOT EXISTS raw_cursors (
    tenant_id TEXT NOT NULL, env TEXT NOT NULL, mode TEXT NOT NULL, project_id TEXT NOT NULL,
    stream_id TEXT NOT NULL, position INTEGER NOT NULL, last_event_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
) WITHOUT ROWID;
"""
_SQLITE_INSERT = "INSERT INTO raw_events VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
_SQLITE_ADVANCE = (
    "INSERT INTO raw_cursors VALUES (?,?,?,?,?,?,?) ON CONFLICT"
    " (tenant_id, env, mode, project_id, stream_id) DO UPDATE SET position = excluded.position,"
    " last_event_id = excluded.last_event_id WHERE excluded.position > raw_cursors.position"
)

_PG_DDL = """
CREATE TABLE IF NOT EXISTS raw_events (
    event_id text COLLATE "C" PRIMARY KEY, tenant_id text NOT NULL, env text NOT NULL,
    mode text NOT NULL, project_id text NOT NULL, stream_id text NOT NULL,
    position bigint NOT NULL, event_type text NOT NULL, ts timestamptz NOT NULL,
    body bytea NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS raw_events_by_stream
    ON raw_events (tenant_id, env, mode, project_id, stream_id, position);
CREATE INDEX IF NOT EXISTS raw_events_by_type
    ON raw_events (tenant_id, env, mode, project_id, stream_id, event_type, position);
CREATE TABLE IF NOT EXISTS raw_cursors (
    tenant_id text NOT NULL, env text NOT NULL, mode text NOT NULL, project_id text NOT NULL,
    stream_id text NOT NULL, position bigint NOT NULL, last_event_id text NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
);
"""
_PG_INSERT = "INSERT INTO raw_events VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING"
_PG_ADVANCE = (
    "INSERT INTO raw_cursors AS c VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT"
    " (tenant_id, env, mode, project_id, stream_id) DO UPDATE SET position = excluded.position,"
    " last_event_id = excluded.last_event_id WHERE excluded.position > c.position"
)

Rows = list[tuple[Any, ...]]


def _rows(records: list[Any], ts_text: bool) -> tuple[Rows, Rows]:
    """Event rows and one watermark row per stream, from raw ConsumerRecords."""
    rows: Rows = []
    marks: dict[tuple[str, ...], tuple[int, str]] = {}
    for rec in records:
        event = decode_record(rec.value)
        r = event.routing
        key = (r.tenant_id, r.env, r.mode, r.project_id, event.stream_id)
        rows.append(
            (
                event.event_id,
                *key,
                rec.offset,
                event.event_type,
                event.ts.isoformat() if ts_text else event.ts,
                rec.value,
            )
        )
        mark = marks.get(key)
        if mark is None or rec.offset > mark[0]:
            marks[key] = (rec.offset, event.event_id)
    return rows, [(*key, pos, eid) for key, (pos, eid) in marks.items()]


class _RawSink:
    """The consume/commit loop; subclasses write one batch."""

    def __init__(self, max_records: int = 2000) -> None:
        self.max_records = max_records
        self.records = 0
        self.committed: dict[int, int] = {}
        self.stop = asyncio.Event()

    def seen(self) -> int:
        """Records received so far."""
        return self.records

    def positions(self) -> dict[int, int]:
        """Committed offset per partition."""
        return self.committed

    async def open(self) -> None:
        """Create tables."""

    async def close(self) -> None:
        """Release the database."""

    async def write(self, records: list[Any]) -> None:
        """One transaction: events, then watermarks."""
        raise NotImplementedError

    async def run(self, bootstrap: str, topic: str, group_id: str, assign: bool = False) -> None:
        """Consume until ``stop`` is set. ``assign``: no group join (replay style)."""
        consumer = AIOKafkaConsumer(
            *(() if assign else (topic,)),
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **GROUP_TIMING,
        )
        await consumer.start()
        try:
            if assign:
                parts = consumer.partitions_for_topic(topic)
                while not parts:
                    await consumer._client.force_metadata_update()
                    parts = consumer.partitions_for_topic(topic)
                consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
                await consumer.seek_to_beginning()
            while not self.stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if not batch:
                    continue
                records = [rec for recs in batch.values() for rec in recs]
                self.records += len(records)
                await self.write(records)
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
                await consumer.commit(offsets)
                for tp, offset in offsets.items():
                    self.committed[tp.partition] = offset
        finally:
            await consumer.stop()


class RawSqliteSink(_RawSink):
    """getmany + executemany + commit into one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: Path, max_records: int = 2000) -> None:
        super().__init__(max_records)
        self.path = path
        # sqlite3 objects are bound to their thread: one connection on one thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-sqlite")
        self._conn: sqlite3.Connection | None = None

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SQLITE_DDL)
        self._conn = conn

    def _write_sync(self, rows: Rows, marks: Rows) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_SQLITE_INSERT, rows)
        conn.executemany(_SQLITE_ADVANCE, marks)
        conn.execute("COMMIT")

    async def open(self) -> None:
        """Open the file on the database thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    async def close(self) -> None:
        """Close the connection and the thread."""
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def write(self, records: list[Any]) -> None:
        """Decode on the loop, write on the database thread."""
        rows, marks = _rows(records, ts_text=True)
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write_sync, rows, marks
        )


class RawPostgresSink(_RawSink):
    """getmany + executemany + commit into PostgreSQL with asyncpg."""

    def __init__(self, dsn: str, max_records: int = 2000) -> None:
        super().__init__(max_records)
        self.dsn = dsn
        self._conn: Any = None

    async def open(self) -> None:
        """Connect and create the tables."""
        import asyncpg  # noqa: PLC0415 - optional dependency

        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.execute(_PG_DDL)

    async def close(self) -> None:
        """Disconnect."""
        if self._conn is not None:
            await self._conn.close()

    async def write(self, records: list[Any]) -> None:
        """One transaction of two executemany calls."""
        rows, marks = _rows(records, ts_text=False)
        async with self._conn.transaction():
            await self._conn.executemany(_PG_INSERT, rows)
            await self._conn.executemany(_PG_ADVANCE, sorted(marks))


_PG_STAGING = "CREATE TEMP TABLE raw_staging (LIKE raw_events) ON COMMIT DELETE ROWS"
_PG_FROM_STAGING = (
    "INSERT INTO raw_events SELECT * FROM raw_staging ON CONFLICT (event_id) DO NOTHING"
)


class RawPostgresCopySink(RawPostgresSink):
    """getmany + COPY into a temporary table + one INSERT ... SELECT + commit."""

    async def open(self) -> None:
        """Connect, create the tables and this session's staging table."""
        await super().open()
        await self._conn.execute(_PG_STAGING)

    async def write(self, records: list[Any]) -> None:
        """One transaction: COPY, INSERT ... SELECT, watermarks."""
        rows, marks = _rows(records, ts_text=False)
        async with self._conn.transaction():
            await self._conn.copy_records_to_table("raw_staging", records=rows)
            await self._conn.execute(_PG_FROM_STAGING)
            await self._conn.executemany(_PG_ADVANCE, sorted(marks))


async def raw_send(
    bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], chunk: int = 2000
) -> float:
    """``send()`` per event, every ack awaited; returns the elapsed seconds.

    Futures are gathered per chunk of 2,000 sends, as the spine's sender drains.
    """
    producer = aiokafka_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        for start in range(0, len(items), chunk):
            futures = [
                await producer.send(topic, value, key=key, headers=HEADERS)
                for key, value in items[start : start + chunk]
            ]
            pending.append(asyncio.ensure_future(asyncio.gather(*futures)))
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def raw_send_batch(bootstrap: str, topic: str, items: Iterable[tuple[bytes, bytes]]) -> float:
    """``create_batch``/``append``/``send_batch``, every ack awaited; elapsed seconds.

    ``items`` may be a generator: whatever it does per event is inside the clock.

    One open batch per partition, sent when the next event does not fit (256 KiB)
    and at the end; ``send_batch`` waits while that partition still has a batch
    queued (aiokafka's backpressure). Each key's partition is computed once with
    aiokafka's DefaultPartitioner (pure Python murmur2), the partition ``send()``
    would pick.
    """
    producer = aiokafka_producer(bootstrap)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        by_key: dict[bytes, int] = {}
        open_batches: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        started = time.perf_counter()
        for key, value in items:
            partition = by_key.get(key)
            if partition is None:
                partition = by_key[key] = partitioner(key, partitions, partitions)
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=HEADERS) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=HEADERS)
        for partition, batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def raw_confluent(
    bootstrap: str,
    topic: str,
    items: list[tuple[bytes, bytes]],
    options: dict[str, Any],
    chunk: int = 2000,
) -> float:
    """confluent-kafka ``produce()`` per event with ``options`` (the transport's
    librdkafka options), ``poll(0)`` every ``chunk`` events, ``flush()`` until every
    event is acked; returns the elapsed seconds (connecting excluded)."""
    from confluent_kafka import Producer  # noqa: PLC0415 - optional dependency

    errors: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({**options, "bootstrap.servers": bootstrap, "on_delivery": report})
    try:
        producer.list_topics(topic, timeout=30)  # connected, metadata known
        produce, poll = producer.produce, producer.poll
        started = time.perf_counter()
        for i, (key, value) in enumerate(items, 1):
            while True:
                try:
                    # Positional, as the transport calls it (keywords cost a dict).
                    produce(topic, value, key, -1, None, None, 0, HEADERS)  # type: ignore[arg-type]
                    break
                except BufferError:  # the queue is full: serve reports, try again
                    poll(0.01)
            if i % chunk == 0:
                poll(0)
        left = producer.flush(300)
        elapsed = time.perf_counter() - started
    finally:
        producer.close()
    if left or errors:
        raise RuntimeError(f"raw confluent loop: {left} unsent, {len(errors)} failed")
    return elapsed


async def raw_round_trip(
    bootstrap: str,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float,
    *,
    linger_ms: int,
    fetch_max_wait_ms: int,
) -> list[float]:
    """The broker's own round trip: on a fresh topic, a hand aiokafka producer
    ``send()``s serialized events on an absolute schedule at ``rate_per_s`` while a
    hand consumer (partitions assigned, no group) reads them; returns each event's
    send -> received time in ms, sorted, those of the first ``warmup_s`` left out. No
    store, no spine code: the floor under an end-to-end figure at the same rate and
    waits."""
    topic = await new_topic(bootstrap, "bench-round-trip")
    warmup = round(rate_per_s * warmup_s)
    items = make_items(warmup + round(rate_per_s * duration_s))
    sent_at: dict[bytes, tuple[int, int]] = {}  # value -> (index, monotonic ns)
    received: list[float] = []
    count = 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = aiokafka_producer(bootstrap, linger_ms=linger_ms)
    await consumer.start()
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        consumer.assign([TopicPartition(topic, p) for p in parts])
        await consumer.seek_to_beginning()

        async def read() -> None:
            nonlocal count
            while count < len(items):
                batch = await consumer.getmany(timeout_ms=fetch_max_wait_ms)
                now = time.monotonic_ns()
                for records in batch.values():
                    count += len(records)
                    for rec in records:
                        index, sent = sent_at[rec.value]
                        if index >= warmup:
                            received.append((now - sent) / 1e6)

        reader = asyncio.ensure_future(read())
        interval_s = 1.0 / rate_per_s
        began = time.monotonic()
        acks: list[asyncio.Future[Any]] = []
        for i, (key, value) in enumerate(items):
            wait = began + i * interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            sent_at[value] = (i, time.monotonic_ns())
            acks.append(await producer.send(topic, value, key=key, headers=HEADERS))
        await asyncio.gather(*acks)
        await asyncio.wait_for(reader, timeout=60)
    finally:
        await producer.stop()
        await consumer.stop()
    return sorted(received)

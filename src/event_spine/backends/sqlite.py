"""SQLite EventStore: the embedded default.

One connection on one dedicated thread per store (sqlite3 objects are bound to
their thread); WAL so readers in other processes never block the writer.

A batch is written as one multi-row ``INSERT`` statement (per 2048 events), which
commits on its own; a trigger moves each stream's watermark forward inside that
same statement, so a crash leaves either all of a statement's events and their
watermarks or none of them. Why one statement rather than ``executemany`` inside
``BEGIN``/``COMMIT``: sqlite3 releases the GIL around every statement step and
must take it back afterwards, waiting up to the interpreter's switch interval
(5 ms) while the event loop thread decodes the next batch. ``executemany`` steps
once per row: measured 1.9 ms per row next to a busy thread, against 11 us with
one statement per batch (``benchmarks/results/PROFILE.md``).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from event_spine.backends.base import (
    Anchor,
    AppendResult,
    DelegatedLifecycle,
    EventStoreBase,
    StreamBatch,
    StreamCursor,
    StreamKey,
    event_body,
    record_from_json,
)
from event_spine.errors import ConcurrentUpdate, StorePermanentError, StoreUnavailable
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

T = TypeVar("T")


class SqliteConfig(BaseModel):
    """Route config of the sqlite backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Database file; created with its folder if missing.")
    # FULL fsyncs every commit: offsets are committed only after a durable write.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(default=30_000, ge=0)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_events (
    event_id   TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    env        TEXT NOT NULL,
    mode       TEXT NOT NULL,
    project_id TEXT NOT NULL,
    stream_id  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    ts         TEXT NOT NULL,
    body       BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spine_events_by_stream
    ON spine_events (tenant_id, env, mode, project_id, stream_id, position);
CREATE TABLE IF NOT EXISTS spine_cursors (
    tenant_id     TEXT NOT NULL,
    env           TEXT NOT NULL,
    mode          TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    stream_id     TEXT NOT NULL,
    position      INTEGER NOT NULL,
    last_event_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
) WITHOUT ROWID;
"""

_INSERT_EVENTS = (
    "INSERT INTO spine_events (event_id, tenant_id, env, mode, project_id, stream_id,"
    " position, event_type, ts, body) VALUES {values} ON CONFLICT DO NOTHING"
)
# Forward-only: a zombie's late, lower watermark changes nothing.
_ADVANCE = (
    " ON CONFLICT (tenant_id, env, mode, project_id, stream_id) DO UPDATE SET"
    " position = excluded.position, last_event_id = excluded.last_event_id"
    " WHERE excluded.position > spine_cursors.position"
)
_ADVANCE_CURSORS = "INSERT INTO spine_cursors VALUES {values}" + _ADVANCE
# Fires only for rows really inserted (not for ON CONFLICT DO NOTHING skips), in the
# inserting statement's own transaction: events and watermark commit together.
_ADVANCE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS spine_events_advance_cursor AFTER INSERT ON spine_events
BEGIN
    INSERT INTO spine_cursors VALUES (new.tenant_id, new.env, new.mode, new.project_id,
        new.stream_id, new.position, new.event_id){_ADVANCE};
END;
"""
#: Rows per statement at most: 2048 x 10 columns stays under SQLite's default limit
#: of 32766 bound parameters.
_MAX_ROWS_PER_STATEMENT = 2048
_PAD_STEP = 256
_STREAM = "tenant_id = ? AND env = ? AND mode = ? AND project_id = ? AND stream_id = ?"


class SqliteDatabase:
    """One SQLite file, one connection, one thread: every call runs on that thread."""

    def __init__(self, config: SqliteConfig, schema: str) -> None:
        self.config = config
        self._schema = schema
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spine-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open the file (WAL) and create the tables."""
        await self.run(lambda: self.db)

    async def close(self) -> None:
        """Close the connection and the thread."""
        if self._conn is not None:
            await self.run(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread, errors mapped to the spine's tree."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._mapped, fn)

    def _mapped(self, fn: Callable[[], T]) -> T:
        with _mapped_errors(self.config.path):
            return fn()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened on first use (only call on the database thread)."""
        if self._conn is None:
            Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.config.path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.config.synchronous}")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: takes the write lock up front, so no upgrade deadlock."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class SqliteEventStore(DelegatedLifecycle, EventStoreBase):
    """EventStore on one SQLite database file."""

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        self._database = self._resource = SqliteDatabase(config, _SCHEMA + _ADVANCE_TRIGGER)
        self._run = self._database.run

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        return await self._run(lambda: self._write_sync(groups))

    def _write_sync(self, groups: list[StreamBatch]) -> AppendResult:
        rows = [_row(event, group.key) for group in groups for event in group.events]
        db = self._database.db
        written = insert_rows(db, _INSERT_EVENTS, rows)
        if written < len(rows):
            _refuse_position_collisions(db, [e.event_id for g in groups for e in g.events])
            # Redelivered events were skipped, so the trigger did not see them: make
            # sure their streams' watermarks cover them too (forward-only, a no-op
            # when they already do).
            cursors: list[tuple[object, ...]] = [
                (*group.key, group.watermark.position, group.watermark.record.event_id)
                for group in groups
            ]
            insert_rows(db, _ADVANCE_CURSORS, cursors)
        return AppendResult(written, len(rows) - written)

    async def _load_page(
        self, key: StreamKey, after_event_id: str | None, limit: int
    ) -> tuple[Anchor | None, list[StoredEvent]]:
        """One hop to the database thread; the watermark bound is a subquery."""

        def read() -> tuple[Anchor | None, list[tuple[bytes, int]]]:
            db = self._database.db
            anchor = None
            after_position = -1
            if after_event_id is not None:
                row = db.execute(
                    "SELECT tenant_id, env, mode, project_id, stream_id, position"
                    " FROM spine_events WHERE event_id = ?",
                    (after_event_id,),
                ).fetchone()
                if row is None:
                    return None, []
                anchor = Anchor(StreamKey._make(row[:5]), row[5])
                if anchor.key != key:
                    return anchor, []
                after_position = anchor.position
            rows = db.execute(
                f"SELECT body, position FROM spine_events WHERE {_STREAM} AND position > ?"
                f" AND position <= (SELECT position FROM spine_cursors WHERE {_STREAM})"
                " ORDER BY position LIMIT ?",
                (*key, after_position, *key, limit),
            ).fetchall()
            return anchor, rows

        # Decoded on the caller's thread: the GIL serializes decoding anyway, and the
        # database thread hands back sooner (a page of 100 from 1M events: 0.61 ms
        # against 0.68 ms decoding there).
        anchor, rows = await self._run(read)
        return anchor, [StoredEvent(record_from_json(body), pos) for body, pos in rows]

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        def read() -> StreamCursor | None:
            row = self._database.db.execute(
                f"SELECT position, last_event_id FROM spine_cursors WHERE {_STREAM}",
                key,
            ).fetchone()
            return None if row is None else StreamCursor(key.stream_id, row[0], row[1])

        return await self._run(read)

    async def _load_event(self, event_id: str) -> StoredEvent | None:
        def read() -> StoredEvent | None:
            row = self._database.db.execute(
                "SELECT body, position FROM spine_events WHERE event_id = ?", (event_id,)
            ).fetchone()
            return None if row is None else StoredEvent(record_from_json(row[0]), row[1])

        return await self._run(read)


def insert_rows(db: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> int:
    """Run ``sql`` (an ``INSERT ... VALUES {values} ON CONFLICT ...``) for ``rows``,
    up to ``_MAX_ROWS_PER_STATEMENT`` rows per statement; returns rows inserted.

    Each statement is padded by repeating its last row (``_padded_size``), so only a
    few statement texts exist (sqlite3 caches them prepared). ``sql`` must make a
    repeated row a no-op, as ``ON CONFLICT DO NOTHING`` and a forward-only upsert do.
    """
    inserted = 0
    for start in range(0, len(rows), _MAX_ROWS_PER_STATEMENT):
        chunk = rows[start : start + _MAX_ROWS_PER_STATEMENT]
        size = _padded_size(len(chunk))
        chunk.extend([chunk[-1]] * (size - len(chunk)))
        cursor = db.execute(_statement(sql, size, len(chunk[0])), [v for row in chunk for v in row])
        inserted += cursor.rowcount
    return inserted


def _padded_size(rows: int) -> int:
    """A power of two up to 256 rows, then a multiple of 256: at most 16 statement
    texts, and at most 255 repeated rows per statement."""
    if rows <= _PAD_STEP:
        return 1 << (rows - 1).bit_length()
    return -(-rows // _PAD_STEP) * _PAD_STEP


@functools.cache
def _statement(sql: str, rows: int, width: int) -> str:
    placeholders = "(" + ",".join("?" * width) + ")"
    return sql.format(values=",".join([placeholders] * rows))


def _refuse_position_collisions(db: sqlite3.Connection, event_ids: list[str]) -> None:
    """A row skipped although its id is new means another event holds its position:
    the offsets were reused (e.g. a recreated topic). Refuse instead of losing it."""
    stored: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        stored.update(
            r[0]
            for r in db.execute(
                f"SELECT event_id FROM spine_events WHERE event_id IN ({marks})", chunk
            )
        )
    lost = [event_id for event_id in event_ids if event_id not in stored]
    if lost:
        raise StorePermanentError(
            f"{len(lost)} event(s) (first {lost[0]!r}) collide with stored events at the same "
            f"stream position: were the topic's offsets reset? Replay into a fresh store."
        )


def _row(event: StoredEvent, key: StreamKey) -> tuple[object, ...]:
    record = event.record
    return (
        record.event_id,
        *key[:4],
        record.stream_id,
        event.position,
        record.event_type,
        record.ts.isoformat(),
        event_body(event),
    )


@contextmanager
def _mapped_errors(path: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        # Locked, busy, disk I/O, unable to open: all may pass.
        raise StoreUnavailable(f"SQLite store {path!r} is unavailable: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StorePermanentError(f"SQLite store {path!r} refused the write: {exc}") from exc


_REGISTRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_routes (
    resource_kind TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    env           TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    mode          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_kind, tenant_id, env, project_id, mode)
) WITHOUT ROWID;
"""
_ROUTE_KEY = "resource_kind = ? AND tenant_id = ? AND env = ? AND project_id = ? AND mode = ?"


class SqliteRegistryStore(DelegatedLifecycle):
    """RegistryStore on SQLite: one row per route, compare-and-set on ``version``."""

    def __init__(self, config: SqliteConfig) -> None:
        self._database = self._resource = SqliteDatabase(config, _REGISTRY_SCHEMA)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""

        def read() -> ResourceRoute | None:
            row = self._database.db.execute(
                f"SELECT body FROM spine_routes WHERE {_ROUTE_KEY}",
                _key_row(key),
            ).fetchone()
            return None if row is None else ResourceRoute.model_validate_json(row[0])

        return await self._database.run(read)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""

        def read() -> list[ResourceRoute]:
            rows = self._database.db.execute(
                "SELECT body FROM spine_routes WHERE resource_kind = ? AND tenant_id = ?"
                " AND env = ? AND project_id = ?",
                (resource_kind.value, tenant_id, env, project_id),
            ).fetchall()
            return [ResourceRoute.model_validate_json(body) for (body,) in rows]

        return await self._database.run(read)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

        def read() -> list[ResourceRoute]:
            rows = self._database.db.execute("SELECT body FROM spine_routes").fetchall()
            return [ResourceRoute.model_validate_json(body) for (body,) in rows]

        return await self._database.run(read)

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set on the stored version inside one write transaction."""

        def write() -> None:
            key = _key_row(route.key())
            with self._database.transaction() as db:
                row = db.execute(
                    f"SELECT version FROM spine_routes WHERE {_ROUTE_KEY}",
                    key,
                ).fetchone()
                if (row[0] if row else 0) != expected_version:
                    raise ConcurrentUpdate(
                        f"{route.describe()} changed since it was read "
                        f"(expected version {expected_version})"
                    )
                db.execute(
                    "INSERT OR REPLACE INTO spine_routes VALUES (?,?,?,?,?,?,?)",
                    (*key, route.version, route.model_dump_json()),
                )

        await self._database.run(write)


def _key_row(key: RouteKey) -> tuple[str, str, str, str, str]:
    return (key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode)


_TABULAR_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_rows (
    tenant_id  TEXT NOT NULL,
    env        TEXT NOT NULL,
    mode       TEXT NOT NULL,
    project_id TEXT NOT NULL,
    tbl        TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, tbl, key)
) WITHOUT ROWID;
"""
_ROW = "tenant_id = ? AND env = ? AND mode = ? AND project_id = ? AND tbl = ?"


class SqliteTabularStore(DelegatedLifecycle):
    """TabularStore on SQLite."""

    def __init__(self, config: SqliteConfig) -> None:
        self._database = self._resource = SqliteDatabase(config, _TABULAR_SCHEMA)

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace."""
        data = orjson.dumps(value)

        def write() -> None:
            with self._database.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO spine_rows VALUES (?,?,?,?,?,?,?)",
                    (*scope.key(), table, key, data),
                )

        await self._database.run(write)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""

        def read() -> dict[str, Any] | None:
            row = self._database.db.execute(
                f"SELECT value FROM spine_rows WHERE {_ROW} AND key = ?",
                (*scope.key(), table, key),
            ).fetchone()
            return None if row is None else orjson.loads(row[0])

        return await self._database.run(read)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""

        def write() -> bool:
            with self._database.transaction() as db:
                cursor = db.execute(
                    f"DELETE FROM spine_rows WHERE {_ROW} AND key = ?",
                    (*scope.key(), table, key),
                )
            return cursor.rowcount > 0

        return await self._database.run(write)

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""

        def read() -> list[tuple[str, dict[str, Any]]]:
            rows = self._database.db.execute(
                f"SELECT key, value FROM spine_rows WHERE {_ROW}"
                " AND substr(key, 1, ?) = ? AND key > ? ORDER BY key LIMIT ?",
                (*scope.key(), table, len(prefix), prefix, after_key or "", limit),
            ).fetchall()
            return [(key, orjson.loads(value)) for key, value in rows]

        return await self._database.run(read)

"""PostgreSQL backend (asyncpg, one connection pool per store).

Data layout (``<s>`` = config ``schema``, ``<p>`` = config ``table_prefix``)::

    <s>.<p>events   event_id PK; UNIQUE INDEX <p>events_by_stream
                    (tenant_id, env, mode, project_id, stream_id, position);
                    event_type, ts (for operators), body BYTEA = the record's JSON
    <s>.<p>cursors  PK (tenant_id, env, mode, project_id, stream_id):
                    position, last_event_id, updated_at  -- the per-stream watermark
    <s>.<p>routes   PK (resource_kind, tenant_id, env, project_id, mode): version, body JSON
    <s>.<p>rows     PK (tenant_id, env, mode, project_id, tbl, key): value JSON

Why: the event_id key makes a redelivered event a no-op; the stream index serves
``list_after`` as one range scan (``position > p AND position <= watermark ORDER
BY position LIMIT n``, never OFFSET) and exposes two events claiming one offset
(refused: a silent skip would lose one). Ids are ``COLLATE "C"``: byte order is
code point order (what ``list_prefix`` promises), no locale cost. The body is
BYTEA, not JSONB: kept byte for byte (JSONB reorders keys, turns 1e300 into an
integer, refuses ``\\u0000``), not parsed by the server, TOAST-compressed; a 1 MiB
event needs no chunking (a BYTEA value holds up to 1 GB).

One batch is one transaction: ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT
DO NOTHING`` per ~8 MiB of bodies (measured faster than executemany and as fast as
COPY into a temp table, without the temp table; the command tag counts the rows
written), then one upsert of every stream's watermark ``... WHERE
excluded.position > cursors.position`` (forward only: fences a zombie writer).
Streams and events go in one fixed order, so overlapping writers never deadlock.

``open()`` creates missing tables under a transaction-scoped advisory lock
(concurrent opens must not race on the catalog). When they all exist it runs no
DDL, so a role without CREATE privilege works on tables a migration made with
the DDL below. Credentials never go in ``dsn``: PGPASSWORD or ~/.pgpass supply
them. Behind PgBouncer in transaction mode set ``statement_cache_size`` to 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from event_spine.backends.base import (
    AppendResult,
    EventStoreBase,
    StreamBatch,
    StreamCursor,
    StreamKey,
    record_from_json,
    record_to_json,
)
from event_spine.errors import ConcurrentUpdate, StorePermanentError, StoreUnavailable
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

# Fixed key of the DDL advisory lock; per database, shared by every store.
_DDL_LOCK_KEY: Final = 0x5E_5B_1E_DD_1000_0001
# One INSERT carries at most this much body data (the rest go in more statements
# of the same transaction): bounds client and server memory per statement.
_STATEMENT_BYTES: Final = 8 * 1024 * 1024
_STATEMENT_ROWS: Final = 5000


class PostgresConfig(BaseModel):
    """Route config of the postgres backend. Credentials come from the libpq env."""

    # hide_input_in_errors: a mistaken password in `dsn` must not reach the logs.
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True
    )

    dsn: str = Field(description="postgresql://user@host:port/db?sslmode=... (no password here)")
    db_schema: str = Field(default="public", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # At most 40 characters: with the longest suffix ("events_by_stream") a name
    # stays within PostgreSQL's 63-byte identifiers.
    table_prefix: str = Field(default="spine_", pattern=r"^[a-z0-9_]{0,40}$")
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # 0 disables prepared-statement caching (needed behind PgBouncer transaction mode).
    statement_cache_size: int = Field(default=100, ge=0)

    @field_validator("dsn")
    @classmethod
    def _no_secret_in_dsn(cls, dsn: str) -> str:
        parts = urlsplit(dsn)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ValueError("`dsn` must be a postgresql:// URL")
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ValueError("`dsn` must not contain a password: set PGPASSWORD or use ~/.pgpass")
        return dsn

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("`min_pool_size` must not exceed `max_pool_size`")
        return self

    def table(self, name: str) -> str:
        """The quoted, schema-qualified name of one of the backend's tables."""
        return f'"{self.db_schema}"."{self.table_prefix}{name}"'

    def where(self, name: str) -> str:
        """Where a table lives, for messages (never holds a secret: see the validator)."""
        parts = urlsplit(self.dsn)
        server = (parts.netloc.rpartition("@")[2] or "local socket") + parts.path
        return f"PostgreSQL table {self.db_schema}.{self.table_prefix}{name} on {server}"


# --- errors ------------------------------------------------------------------

# SQLSTATE classes a retry can cure: connection (08), rollback by serialization
# or deadlock (40), resources (53), operator intervention incl. statement timeout
# and shutdown (57), system I/O (58), auth (28) and a missing database (3D): the
# last two are configuration, but dead-lettering every batch while a password
# rotates would be worse than pausing.
_RETRIABLE_CLASSES: Final = frozenset({"08", "40", "53", "57", "58", "28", "3D"})
# Lock not available, object in use, no privilege, table dropped under us.
_RETRIABLE_STATES: Final = frozenset({"55P03", "55006", "42501", "42P01"})
_THROTTLED_STATES: Final = frozenset({"53300", "57P03"})


def _mapped_error(exc: Exception, where: str) -> Exception | None:
    """The spine's error for an SDK error, or None when ``exc`` is not one."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state[:2] in _RETRIABLE_CLASSES or state in _RETRIABLE_STATES:
            retry = 1.0 if state in _THROTTLED_STATES else None
            return StoreUnavailable(f"{where} is unavailable [{state}]: {exc}", retry)
        return StorePermanentError(f"{where} refused the operation [{state}]: {exc}")
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        # Client-side encoding refused a value: the same data can never pass.
        return StorePermanentError(f"{where} refused a value: {exc}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # Pool or connection closed, stale statement cache after a schema change.
        return StoreUnavailable(f"{where} is unavailable: {exc}")
    if isinstance(exc, OSError | TimeoutError):
        return StoreUnavailable(f"{where} is unreachable: {exc!r}")
    return None


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except Exception as exc:
        mapped = _mapped_error(exc, where)
        if mapped is None:
            raise
        raise mapped from exc


# --- pool and schema ---------------------------------------------------------


class _Database:
    """One pool, and the tables one store needs (created on open when missing)."""

    def __init__(self, config: PostgresConfig, table: str, ddl: str, names: Sequence[str]) -> None:
        self.config = config
        self.where = config.where(table)
        self._ddl = ddl
        # Schema-qualified names, as to_regclass reads them.
        self._names = [f"{config.db_schema}.{config.table_prefix}{n}" for n in names]
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()  # two open() calls must not build two pools

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool."""
        if self._pool is None:
            raise StoreUnavailable(f"{self.where}: the store is not open (call open())")
        return self._pool

    async def open(self) -> None:
        """Create the pool, then any missing table. Idempotent."""
        async with self._opening:
            if self._pool is None:
                self._pool = await self._new_pool()

    async def _new_pool(self) -> asyncpg.Pool:
        c = self.config
        with _mapped(self.where):
            pool = await asyncpg.create_pool(
                c.dsn,
                min_size=c.min_pool_size,
                max_size=c.max_pool_size,
                command_timeout=c.command_timeout_s,
                timeout=c.connect_timeout_s,
                statement_cache_size=c.statement_cache_size,
                server_settings={"application_name": "event-spine"},
            )
            try:
                await self._create_missing(pool)
            except BaseException:
                pool.terminate()
                raise
        return pool

    async def _create_missing(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire(timeout=self.config.connect_timeout_s) as conn:
            missing = await conn.fetchval(
                "SELECT count(*) FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL",
                self._names,
            )
            if missing == 0:
                return
            async with conn.transaction():
                # Serializes concurrent open()s: CREATE ... IF NOT EXISTS alone can
                # still fail with a unique violation on the catalog when two race.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK_KEY)
                await conn.execute(self._ddl)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # Waits for connections in use; a stuck query must not hang shutdown.
            await asyncio.wait_for(pool.close(), self.config.command_timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one READ COMMITTED transaction."""
        pool = self.pool
        async with pool.acquire(timeout=self.config.connect_timeout_s) as conn, conn.transaction():
            yield conn


def _schema_ddl(config: PostgresConfig) -> str:
    # Not CREATE SCHEMA IF NOT EXISTS: that checks the database CREATE privilege
    # even when the schema exists, which a least-privileged role lacks.
    name = config.db_schema
    return (
        f"DO $$ BEGIN IF to_regnamespace('{name}') IS NULL THEN"
        f' CREATE SCHEMA "{name}"; END IF; END $$;\n'
    )


class _Pooled:
    """open()/close() of a store over one _Database."""

    _db: _Database

    async def open(self) -> None:
        """Connect and create the tables if missing. Idempotent."""
        await self._db.open()

    async def close(self) -> None:
        """Close the pool."""
        await self._db.close()


def _rowcount(status: str) -> int:
    """Rows touched, from a command tag such as ``INSERT 0 37`` or ``UPDATE 1``."""
    return int(status.rpartition(" ")[2])


# --- events ------------------------------------------------------------------

_ID = 'text COLLATE "C" NOT NULL'
_EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {{events}} (
    event_id   text COLLATE "C" PRIMARY KEY,
    tenant_id  {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, stream_id {_ID},
    position   bigint NOT NULL,
    event_type text NOT NULL,
    ts         timestamptz NOT NULL,
    body       bytea NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS "{{p}}events_by_stream"
    ON {{events}} (tenant_id, env, mode, project_id, stream_id, position);
CREATE TABLE IF NOT EXISTS {{cursors}} (
    tenant_id  {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, stream_id {_ID},
    position      bigint NOT NULL,
    last_event_id text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
);
"""
_STREAM = "tenant_id = $1 AND env = $2 AND mode = $3 AND project_id = $4 AND stream_id = $5"


class _EventSql:
    """The event store's statements for one schema and prefix."""

    def __init__(self, config: PostgresConfig) -> None:
        events, cursors = config.table("events"), config.table("cursors")
        # No conflict target: a conflict on either unique index (same event_id, or
        # same stream position) is skipped instead of racing into an error.
        self.insert = (
            f"INSERT INTO {events} (event_id, tenant_id, env, mode, project_id, stream_id,"
            " position, event_type, ts, body) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],"
            " $9::timestamptz[], $10::bytea[]) ON CONFLICT DO NOTHING"
        )
        self.missing = (
            f"SELECT i, p FROM unnest($1::text[], $2::bigint[]) AS n (i, p)"
            f" WHERE NOT EXISTS (SELECT 1 FROM {events} WHERE event_id = n.i)"
        )
        self.advance = (
            f"INSERT INTO {cursors} AS c (tenant_id, env, mode, project_id, stream_id,"
            " position, last_event_id) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])"
            " ON CONFLICT (tenant_id, env, mode, project_id, stream_id) DO UPDATE SET"
            " position = excluded.position, last_event_id = excluded.last_event_id,"
            " updated_at = now() WHERE excluded.position > c.position"
        )
        self.cursor = f"SELECT position, last_event_id FROM {cursors} WHERE {_STREAM}"
        self.event = f"SELECT body, position FROM {events} WHERE event_id = $1"
        self.range = (
            f"SELECT body, position FROM {events} WHERE {_STREAM}"
            " AND position > $6 AND position <= $7 ORDER BY position LIMIT $8"
        )
        self.ddl = _schema_ddl(config) + _EVENTS_DDL.format(
            events=events, cursors=cursors, p=config.table_prefix
        )


def _event_chunks(groups: list[StreamBatch]) -> Iterator[list[list[Any]]]:
    """Column arrays for the unnest INSERT, cut into statements of bounded size."""
    columns: list[list[Any]] = [[] for _ in range(10)]
    size = 0
    for group in groups:
        for event in group.events:
            record = event.record
            body = record_to_json(record)
            row = (record.event_id, *group.key, event.position, record.event_type, record.ts, body)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            size += len(body)
            if size >= _STATEMENT_BYTES or len(columns[0]) >= _STATEMENT_ROWS:
                yield columns
                columns, size = [[] for _ in range(10)], 0
    if columns[0]:
        yield columns


def _cursor_columns(groups: list[StreamBatch]) -> list[list[Any]]:
    rows = [(*g.key, g.watermark.position, g.watermark.record.event_id) for g in groups]
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresEventStore(_Pooled, EventStoreBase):
    """EventStore on PostgreSQL: one transaction per batch, events then watermarks."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._sql = _EventSql(config)
        self._db = _Database(
            config, "events", self._sql.ddl, ["events", "cursors", "events_by_stream"]
        )

    async def ping(self) -> None:
        """One round trip."""
        with _mapped(self._db.where):
            await self._db.pool.fetchval("SELECT 1")

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        # One lock order for every writer (streams by key, events by position), so
        # two workers writing overlapping batches wait on each other, never deadlock.
        groups = sorted(groups, key=lambda g: g.key)
        total = sum(len(g.events) for g in groups)
        written = 0
        with _mapped(self._db.where):
            async with self._db.transaction() as conn:
                for columns in _event_chunks(groups):
                    written += _rowcount(await conn.execute(self._sql.insert, *columns))
                if written < total:
                    await self._refuse_position_clash(conn, groups)
                await conn.execute(self._sql.advance, *_cursor_columns(groups))
        return AppendResult(written, total - written)

    async def _refuse_position_clash(
        self, conn: asyncpg.Connection, groups: list[StreamBatch]
    ) -> None:
        """A skipped row must be a stored event_id, not another event at its position.

        Runs only when a batch had duplicates (redelivery). A different event at a
        stored position means offsets were reused (topic recreated, two topics into
        one stream): skipping it silently would lose it, so the batch is refused.
        """
        ids = [e.record.event_id for g in groups for e in g.events]
        positions = [e.position for g in groups for e in g.events]
        clashes = await conn.fetch(self._sql.missing, ids, positions)
        if clashes:
            shown = ", ".join(f"{r['i']}@{r['p']}" for r in clashes[:5])
            raise StorePermanentError(
                f"{self._db.where}: {len(clashes)} event(s) collide with a different "
                f"event already stored at the same stream position ({shown}); "
                f"positions are Kafka offsets and must not be reused within a stream"
            )

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        with _mapped(self._db.where):
            row = await self._db.pool.fetchrow(self._sql.cursor, *key)
        return None if row is None else StreamCursor(key.stream_id, row[0], row[1])

    async def _load_event(self, event_id: str) -> StoredEvent | None:
        with _mapped(self._db.where):
            row = await self._db.pool.fetchrow(self._sql.event, event_id)
        return None if row is None else StoredEvent(record_from_json(row[0]), row[1])

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(
                self._sql.range, *key, after_position, upto_position, limit
            )
        return [StoredEvent(record_from_json(body), position) for body, position in rows]


# --- registry ----------------------------------------------------------------

_ROUTES_DDL = f"""
CREATE TABLE IF NOT EXISTS {{routes}} (
    resource_kind {_ID}, tenant_id {_ID}, env {_ID}, project_id {_ID}, mode {_ID},
    version    bigint NOT NULL,
    body       json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_kind, tenant_id, env, project_id, mode)
);
"""
_ROUTE_KEY = "resource_kind = $1 AND tenant_id = $2 AND env = $3 AND project_id = $4"


class PostgresRegistryStore(_Pooled):
    """RegistryStore on PostgreSQL: one row per route, compare-and-set on ``version``.

    The compare-and-set is one conditional statement (INSERT ... ON CONFLICT DO
    NOTHING for a new route, UPDATE ... WHERE version = expected otherwise): the
    row lock makes a concurrent writer re-check the version after the first
    commits, so exactly one of two racing saves wins.
    """

    def __init__(self, config: PostgresConfig) -> None:
        routes = config.table("routes")
        self._db = _Database(
            config, "routes", _schema_ddl(config) + _ROUTES_DDL.format(routes=routes), ["routes"]
        )
        self._select = f"SELECT body FROM {routes}"
        self._insert = (
            f"INSERT INTO {routes} (resource_kind, tenant_id, env, project_id, mode, version,"
            " body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
        )
        self._update = (
            f"UPDATE {routes} SET version = $6, body = $7, updated_at = now()"
            f" WHERE {_ROUTE_KEY} AND mode = $5 AND version = $8"
        )

    async def _bodies(self, where: str = "", *args: Any) -> list[ResourceRoute]:
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(f"{self._select}{where}", *args)
        return [ResourceRoute.model_validate_json(row[0]) for row in rows]

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        found = await self._bodies(f" WHERE {_ROUTE_KEY} AND mode = $5", *_key_row(key))
        return found[0] if found else None

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""
        return await self._bodies(
            f" WHERE {_ROUTE_KEY} ORDER BY mode", resource_kind.value, tenant_id, env, project_id
        )

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route, in key order."""
        return await self._bodies(" ORDER BY resource_kind, tenant_id, env, project_id, mode")

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write ``route`` only if the stored version is ``expected_version``."""
        key, body = _key_row(route.key()), route.model_dump_json()
        with _mapped(self._db.where):
            if expected_version == 0:
                status = await self._db.pool.execute(self._insert, *key, route.version, body)
            else:
                status = await self._db.pool.execute(
                    self._update, *key, route.version, body, expected_version
                )
        if _rowcount(status) != 1:
            raise ConcurrentUpdate(
                f"{route.describe()} changed since it was read "
                f"(expected version {expected_version})"
            )


def _key_row(key: RouteKey) -> tuple[str, str, str, str, str]:
    return (key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode)


# --- tabular -----------------------------------------------------------------

_ROWS_DDL = f"""
CREATE TABLE IF NOT EXISTS {{rows}} (
    tenant_id {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, tbl {_ID}, key {_ID},
    value      json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, env, mode, project_id, tbl, key)
);
"""
_ROW = "tenant_id = $1 AND env = $2 AND mode = $3 AND project_id = $4 AND tbl = $5"


def _prefix_end(prefix: str) -> str | None:
    """The smallest key above every key starting with ``prefix`` (keys are ASCII)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


class PostgresTabularStore(_Pooled):
    """TabularStore on PostgreSQL: one row per (scope, table, key), value as JSON text.

    JSON (not JSONB) keeps the value's text exactly as written, so numbers and key
    order read back unchanged. ``list_prefix`` is a primary-key range scan.
    """

    def __init__(self, config: PostgresConfig) -> None:
        rows = config.table("rows")
        self._db = _Database(
            config, "rows", _schema_ddl(config) + _ROWS_DDL.format(rows=rows), ["rows"]
        )
        self._put = (
            f"INSERT INTO {rows} (tenant_id, env, mode, project_id, tbl, key, value)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT"
            " (tenant_id, env, mode, project_id, tbl, key) DO UPDATE SET"
            " value = excluded.value, updated_at = now()"
        )
        self._get = f"SELECT value FROM {rows} WHERE {_ROW} AND key = $6"
        self._delete = f"DELETE FROM {rows} WHERE {_ROW} AND key = $6"
        self._list = (
            f"SELECT key, value FROM {rows} WHERE {_ROW} AND key >= $6 AND key > $7"
            " AND ($8::text IS NULL OR key < $8) ORDER BY key LIMIT $9"
        )

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace."""
        text = orjson.dumps(value).decode()
        with _mapped(self._db.where):
            await self._db.pool.execute(self._put, *scope.key(), table, key, text)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        with _mapped(self._db.where):
            text = await self._db.pool.fetchval(self._get, *scope.key(), table, key)
        return None if text is None else orjson.loads(text)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; True if it existed."""
        with _mapped(self._db.where):
            status = await self._db.pool.execute(self._delete, *scope.key(), table, key)
        return _rowcount(status) > 0

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows whose key starts with ``prefix``, after ``after_key``, in key order."""
        args = (*scope.key(), table, prefix, after_key or "", _prefix_end(prefix), limit)
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(self._list, *args)
        return [(key, orjson.loads(value)) for key, value in rows]

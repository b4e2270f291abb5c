"""PostgresEventStore: one transaction per batch, events then watermarks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import asyncpg

from event_spine.backends.base import (
    AppendResult,
    Columns,
    DelegatedLifecycle,
    EventIdConflict,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    event_body,
    record_from_json,
    skipped_conflicts,
    without_conflicts,
)
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.postgres.database import (
    _DDL_LOCK_KEY,
    _ID,
    _Database,
    _mapped,
    _rowcount,
    _schema_ddl,
)
from event_spine.backends.querying import PrefixScan, Scan
from event_spine.backends.sqlquery import (
    Dialect,
    count_types,
    list_streams,
    prefix_result,
    prefix_scan,
    stream_result,
    stream_scan,
)
from event_spine.errors import StoreLayoutOutdated
from event_spine.schemas.query import EventQuery, Position
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

# Fallback path (a role without TEMPORARY privilege): one INSERT carries at most
# this much body data (the rest go in more statements of the same transaction):
# bounds client and server memory per statement.
_STATEMENT_BYTES: Final = 8 * 1024 * 1024
_STATEMENT_ROWS: Final = 5000

# A batch's rows go to this session table by binary COPY, then one INSERT ... SELECT
# moves them. Why: binding 10 arrays for the unnest INSERT cost the event loop
# ~14 ms per 2,000 events (asyncpg checks every array element's type in Python),
# COPY's Cython encoder ~5 ms (benchmarks/results/PROFILE.md, round 3). Private to
# the session, emptied at commit; created in every transaction when missing (one
# cheap statement) so it also works where sessions are not kept (PgBouncer in
# transaction mode). Same columns for every store: one name serves them all.
_STAGING_TABLE: Final = "spine_events_staging"
# The steady state skips the staging table: a batch of new events goes straight into
# the events table by binary COPY (51k against 42k events/s for 2,000-event batches,
# store alone, the same database, interleaved, 2026-12-03: no temporary heap written
# and scanned again). COPY has no ON CONFLICT, so a batch holding one stored event (a
# redelivery) or a taken position fails with a unique violation, rolls back and takes
# the staged path. Redeliveries come in runs (after a crash or a rebalance), and each
# failed COPY is wasted work: after one, this many batches take the staged path first.
_STAGED_AFTER_CONFLICT: Final = 32
_STAGING_DDL: Final = f"""CREATE TEMP TABLE IF NOT EXISTS {_STAGING_TABLE} (
    event_id {_ID}, tenant_id {_ID}, env {_ID}, mode {_ID}, project_id {_ID},
    stream_id {_ID}, position bigint NOT NULL, event_type text NOT NULL,
    ts timestamptz NOT NULL, body bytea NOT NULL
) ON COMMIT DELETE ROWS"""
_COLUMNS: Final = (
    "event_id",
    "tenant_id",
    "env",
    "mode",
    "project_id",
    "stream_id",
    "position",
    "event_type",
    "ts",
    "body",
)

#: Version 2: events keyed by scope + event_id (version 1, unmarked: event_id alone).
LAYOUT_VERSION: Final = 2
# In the same transaction as the tables: a store that sees the events table sees
# its marker.
_EVENTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {{layout}} (component text PRIMARY KEY, version integer NOT NULL);
INSERT INTO {{layout}} VALUES ('events', {LAYOUT_VERSION}) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {{events}} (
    event_id   {_ID},
    tenant_id  {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, stream_id {_ID},
    position   bigint NOT NULL,
    event_type text NOT NULL,
    ts         timestamptz NOT NULL,
    body       bytea NOT NULL,
    -- The id first: UUIDv7 ids grow with time, so inserts append to the index
    -- whatever the tenant (scope first spread them over the whole index).
    PRIMARY KEY (event_id, tenant_id, env, mode, project_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS "{{p}}events_by_stream"
    ON {{events}} (tenant_id, env, mode, project_id, stream_id, position);
-- Queries by event type and counts per type (docs/backends.md: its cost). Additive:
-- open() builds it on an existing table (blocking writes meanwhile: on a large one
-- create it first with CREATE INDEX CONCURRENTLY under this name).
CREATE INDEX IF NOT EXISTS "{{p}}events_by_type"
    ON {{events}} (tenant_id, env, mode, project_id, stream_id, event_type, position);
CREATE TABLE IF NOT EXISTS {{cursors}} (
    tenant_id  {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, stream_id {_ID},
    position      bigint NOT NULL,
    last_event_id text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
);
"""
# timestamptz: times compare exactly in SQL.
_DIALECT = Dialect(
    mark=lambda n: f"${n}",
    ts_column="e.ts",
    ts_param=lambda mark: mark,
    ts_value=lambda ts: ts,
    exact_ts=True,
)
_STREAM = "tenant_id = $1 AND env = $2 AND mode = $3 AND project_id = $4 AND stream_id = $5"


_PRIMARY_KEY = (
    "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'"
)


async def layout_version(
    conn: asyncpg.Connection, layout: str, config: PostgresConfig
) -> int | None:
    """The events layout: None for layout 1 (events table without marker), else its
    version (a database without the events table counts as current: it is created so)."""
    names = [f"{config.db_schema}.{config.table_prefix}{n}" for n in ("events", "layout")]
    has_events, has_layout = await conn.fetchrow(
        "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL", *names
    )
    if not has_events:
        return LAYOUT_VERSION
    if not has_layout:
        return None
    version = await conn.fetchval(f"SELECT version FROM {layout} WHERE component = 'events'")
    return None if version is None or version < LAYOUT_VERSION else int(version)


class _EventSql:
    """The event store's statements for one schema and prefix."""

    def __init__(self, config: PostgresConfig) -> None:
        events, cursors = config.table("events"), config.table("cursors")
        #: Unquoted, for COPY (asyncpg quotes it with the schema).
        self.events_name = f"{config.table_prefix}events"
        self.layout = config.table("layout")
        # No conflict target: a conflict on either unique index (same identity, or
        # same stream position) is skipped instead of racing into an error.
        self.insert = (
            f"INSERT INTO {events} (event_id, tenant_id, env, mode, project_id, stream_id,"
            " position, event_type, ts, body) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],"
            " $9::timestamptz[], $10::bytea[]) ON CONFLICT DO NOTHING"
        )
        # The staged rows in the order COPY wrote them (a seq scan of a private table
        # emptied at every commit): the lock order of _write holds. First try: skip
        # only rows whose identity is stored. ON CONFLICT without a target makes both
        # unique indexes arbiters: 1.45x the server time per 2,000 rows (PROFILE.md,
        # round 3). An event at a taken position then fails with a unique violation
        # (reused offsets, or a concurrent writer's race), and the batch is written
        # again with `staged_skip`, which skips it so that _skipped_conflicts sees it.
        columns = ", ".join(_COLUMNS)
        staged = f"INSERT INTO {events} ({columns}) SELECT {columns} FROM pg_temp.{_STAGING_TABLE}"
        self.staged_new = (
            f"{staged} ON CONFLICT (event_id, tenant_id, env, mode, project_id) DO NOTHING"
        )
        self.staged_skip = f"{staged} ON CONFLICT DO NOTHING"
        # The body each skipped row's identity holds (NULL: not stored), in input order.
        self.stored = (
            f"SELECT e.body FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            f" $5::text[]) WITH ORDINALITY AS n (t, v, m, p, i, k) LEFT JOIN {events} e"
            " ON (e.tenant_id, e.env, e.mode, e.project_id, e.event_id) = (n.t, n.v, n.m,"
            " n.p, n.i) ORDER BY n.k"
        )
        self.advance = (
            f"INSERT INTO {cursors} AS c (tenant_id, env, mode, project_id, stream_id,"
            " position, last_event_id) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])"
            " ON CONFLICT (tenant_id, env, mode, project_id, stream_id) DO UPDATE SET"
            " position = excluded.position, last_event_id = excluded.last_event_id,"
            " updated_at = now() WHERE excluded.position > c.position"
        )
        self.events, self.cursors = events, cursors
        self.cursor = f"SELECT position, last_event_id FROM {cursors} WHERE {_STREAM}"
        self.event = (
            f"SELECT body, position FROM {events} WHERE tenant_id = $1 AND env = $2"
            " AND mode = $3 AND project_id = $4 AND event_id = $5"
        )
        self.columns = (
            f"SELECT event_id, event_type, ts FROM {events} WHERE tenant_id = $1 AND env = $2"
            " AND mode = $3 AND project_id = $4 AND event_id = ANY($5::text[])"
        )
        self.range = (
            f"SELECT body, position FROM {events} WHERE {_STREAM}"
            " AND position > $6 AND position <= $7 ORDER BY position LIMIT $8"
        )
        self.ddl = _schema_ddl(config) + _EVENTS_DDL.format(
            events=events, cursors=cursors, layout=self.layout, p=config.table_prefix
        )


def _event_chunks(groups: list[StreamBatch]) -> Iterator[list[list[Any]]]:
    """Column arrays for the unnest INSERT, cut into statements of bounded size."""
    columns: list[list[Any]] = [[] for _ in range(10)]
    size = 0
    for group in groups:
        for event in group.events:
            record = event.record
            body = event_body(event)
            row = (record.event_id, *group.key, event.position, record.event_type, record.ts, body)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            size += len(body)
            if size >= _STATEMENT_BYTES or len(columns[0]) >= _STATEMENT_ROWS:
                yield columns
                columns, size = [[] for _ in range(10)], 0
    if columns[0]:
        yield columns


def _event_rows(groups: list[StreamBatch]) -> list[tuple[Any, ...]]:
    """The COPY records of a batch, in lock order."""
    return [
        (e.record.event_id, *g.key, e.position, e.record.event_type, e.record.ts, event_body(e))
        for g in groups
        for e in g.events
    ]


def _cursor_columns(groups: list[StreamBatch]) -> list[list[Any]]:
    rows = [(*g.key, g.watermark.position, g.watermark.record.event_id) for g in groups]
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresEventStore(DelegatedLifecycle, EventStoreBase):
    """EventStore on PostgreSQL: one transaction per batch, events then watermarks."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._sql = _EventSql(config)
        self._db = self._resource = _Database(
            config,
            "events",
            self._sql.ddl,
            ["layout", "events", "cursors", "events_by_stream"],
            check=self._on_open,
            optional=["events_by_type"],
        )
        # Whether the role may create the staging table (TEMPORARY privilege, which
        # PUBLIC has by default); without it, the unnest INSERT (slower, same result).
        self._staged = True
        #: Batches left to write the staged way before trying COPY straight into the
        #: events table again (_STAGED_AFTER_CONFLICT).
        self._staged_first = 0

    async def ping(self) -> None:
        """One round trip."""
        with _mapped(self._db.where):
            await self._db.pool.fetchval("SELECT 1")

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        # One lock order for every writer (streams by key, events by position), so
        # two workers writing overlapping batches wait on each other, never deadlock.
        groups = sorted(groups, key=lambda g: g.key)
        with _mapped(self._db.where):
            if self._staged_first:
                self._staged_first -= 1
            else:
                try:
                    return await self._copy_new(groups)
                except asyncpg.UniqueViolationError:
                    self._staged_first = _STAGED_AFTER_CONFLICT  # rolled back: no row kept
            if not self._staged:
                return await self._write_once(groups, None)
            try:
                return await self._write_once(groups, self._sql.staged_new)
            except asyncpg.UniqueViolationError:
                # A taken position (reused offsets, or another writer's race): once
                # more, skipping every conflict (the first transaction rolled back).
                return await self._write_once(groups, self._sql.staged_skip)

    async def _copy_new(self, groups: list[StreamBatch]) -> AppendResult:
        """One transaction: every event by COPY into the events table, then every
        watermark. A unique violation (an event already stored, or a taken position)
        rolls it all back."""
        rows = _event_rows(groups)
        async with self._db.transaction() as conn:
            await conn.copy_records_to_table(
                self._sql.events_name,
                records=rows,
                columns=_COLUMNS,
                schema_name=self.config.db_schema,
            )
            await conn.execute(self._sql.advance, *_cursor_columns(groups))
        return AppendResult(len(rows))

    async def _write_once(self, groups: list[StreamBatch], staged: str | None) -> AppendResult:
        """One transaction: events (through the staging table unless ``staged`` is
        None), then the watermarks of the streams whose events are all settled."""
        total = sum(len(g.events) for g in groups)
        written = 0
        conflicts: list[EventIdConflict] = []
        async with self._db.transaction() as conn:
            if staged is not None:
                written = await self._insert_staged(conn, groups, staged)
            else:
                for columns in _event_chunks(groups):
                    written += _rowcount(await conn.execute(self._sql.insert, *columns))
            if written < total:
                conflicts = await self._skipped_conflicts(conn, groups)
            settled = without_conflicts(groups, conflicts)
            if settled:
                await conn.execute(self._sql.advance, *_cursor_columns(settled))
        return AppendResult(written, total - written - len(conflicts), tuple(conflicts))

    async def _insert_staged(
        self, conn: asyncpg.Connection, groups: list[StreamBatch], insert: str
    ) -> int:
        """COPY the batch into the staging table, then ``insert`` from it; rows written."""
        await conn.execute(_STAGING_DDL)
        await conn.copy_records_to_table(
            _STAGING_TABLE, records=_event_rows(groups), columns=_COLUMNS, schema_name="pg_temp"
        )
        return _rowcount(await conn.execute(insert))

    async def _skipped_conflicts(
        self, conn: asyncpg.Connection, groups: list[StreamBatch]
    ) -> list[EventIdConflict]:
        """Redeliveries, conflicts, or reused positions (refused) among skipped rows.

        Runs only when a batch had rows skipped (redelivery, conflict, reused offsets).
        """
        events = [(g.key.scope_key(), e) for g in groups for e in g.events]
        columns = [[scope[i] for scope, _ in events] for i in range(4)]
        rows = await conn.fetch(self._sql.stored, *columns, [e.event_id for _, e in events])
        pairs = [(event, row[0]) for (_, event), row in zip(events, rows, strict=True)]
        return skipped_conflicts(pairs, self._db.where)

    async def _on_open(self, conn: asyncpg.Connection) -> None:
        await self._check_layout(conn)
        self._staged = bool(
            await conn.fetchval("SELECT has_database_privilege(current_database(), 'TEMPORARY')")
        )

    async def _check_layout(self, conn: asyncpg.Connection) -> None:
        """Refuse an events table keyed by event_id alone (layout 1, no marker)."""
        if await layout_version(conn, self._sql.layout, self.config) is None:
            raise StoreLayoutOutdated(
                f"{self._db.where} holds events in layout 1 (keyed by event_id alone); this "
                f"release reads layout {LAYOUT_VERSION}. Migrate it first: `spine migrate "
                f"'postgres:<this route's config as JSON>'`."
            )

    async def migrate(self) -> str:
        """Re-key a layout-1 events table by scope + event_id, in one transaction."""
        c = self.config
        with _mapped(self._db.where):
            conn = await asyncpg.connect(c.dsn, timeout=c.connect_timeout_s)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK_KEY)
                    if await layout_version(conn, self._sql.layout, c) is not None:
                        return await self._add_indexes(conn)
                    events = self._sql.events
                    count = await conn.fetchval(f"SELECT count(*) FROM {events}")
                    key = await conn.fetchval(_PRIMARY_KEY, f"{c.db_schema}.{c.table_prefix}events")
                    await conn.execute(
                        f'ALTER TABLE {events} DROP CONSTRAINT "{key}", ADD PRIMARY KEY'
                        " (event_id, tenant_id, env, mode, project_id)"
                    )
                    await conn.execute(self._sql.ddl)
            finally:
                await conn.close()
        return f"re-keyed {count} event(s); now at layout {LAYOUT_VERSION}"

    async def _query_stream(self, key: StreamKey, q: EventQuery, start: int | None) -> Scan:
        sql, params = stream_scan(
            _DIALECT, self._sql.events, self._sql.cursors, key, q, start, q.limit
        )
        return stream_result(await self._fetch(sql, params), q)

    async def _query_prefix(
        self, scope: Scope, q: EventQuery, start: Position | None
    ) -> PrefixScan:
        sql, params = prefix_scan(
            _DIALECT, self._sql.events, self._sql.cursors, scope.key(), q, start, q.limit
        )
        return prefix_result(await self._fetch(sql, params), q, start)

    async def _count_types(self, key: StreamKey) -> dict[str, int]:
        sql, params = count_types(_DIALECT, self._sql.events, self._sql.cursors, key)
        return {t: int(n) for t, n in await self._fetch(sql, params)}

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        sql, params = list_streams(
            _DIALECT, self._sql.cursors, scope, prefix, after, limit, descending
        )
        return [StreamCursor(*row) for row in await self._fetch(sql, params)]

    async def _fetch(self, sql: str, params: list[object]) -> list[Any]:
        with _mapped(self._db.where):
            return list(await self._db.pool.fetch(sql, *params))

    async def _add_indexes(self, conn: asyncpg.Connection) -> str:
        """At the current layout: create the indexes a later release added, if missing."""
        name = f"{self.config.db_schema}.{self.config.table_prefix}events_by_type"
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return f"already at layout {LAYOUT_VERSION}: nothing to do"
        await conn.execute(self._sql.ddl)
        return f"at layout {LAYOUT_VERSION}; created the query index {name}"

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        with _mapped(self._db.where):
            row = await self._db.pool.fetchrow(self._sql.cursor, *key)
        return None if row is None else StreamCursor(key.stream_id, row[0], row[1])

    async def operator_columns(self, scope: Scope, event_ids: Sequence[str]) -> dict[str, Columns]:
        """The event_type and ts columns of these events (``OperatorColumns``)."""
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(self._sql.columns, *scope.key(), list(event_ids))
        return {
            r["event_id"]: {
                "event_type": r["event_type"],
                "ts": r["ts"].isoformat(),
                "ts_type": "instant",  # timestamptz: compared as an instant
            }
            for r in rows
        }

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        with _mapped(self._db.where):
            row = await self._db.pool.fetchrow(self._sql.event, *scope, event_id)
        return None if row is None else StoredEvent(record_from_json(row[0]), row[1])

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(
                self._sql.range, *key, after_position, upto_position, limit
            )
        return [StoredEvent(record_from_json(body), position) for body, position in rows]

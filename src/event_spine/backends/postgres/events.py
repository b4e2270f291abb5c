"""PostgresEventStore: one transaction per batch, events then watermarks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import asyncpg

from event_spine.backends.base import (
    AppendResult,
    DelegatedLifecycle,
    EventStoreBase,
    StreamBatch,
    StreamCursor,
    StreamKey,
    event_body,
    record_from_json,
)
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.postgres.database import _ID, _Database, _mapped, _rowcount, _schema_ddl
from event_spine.errors import StorePermanentError
from event_spine.schemas.wire import StoredEvent

# One INSERT carries at most this much body data (the rest go in more statements
# of the same transaction): bounds client and server memory per statement.
_STATEMENT_BYTES: Final = 8 * 1024 * 1024
_STATEMENT_ROWS: Final = 5000

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


def _cursor_columns(groups: list[StreamBatch]) -> list[list[Any]]:
    rows = [(*g.key, g.watermark.position, g.watermark.record.event_id) for g in groups]
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresEventStore(DelegatedLifecycle, EventStoreBase):
    """EventStore on PostgreSQL: one transaction per batch, events then watermarks."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._sql = _EventSql(config)
        self._db = self._resource = _Database(
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

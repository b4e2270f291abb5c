"""The replay ledger as a table in the routing registry's database (SQLite or
PostgreSQL), beside the API keys: ``spine_dlq_replays`` (docs/console.md)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.database import SqliteDatabase
from event_spine.dlq.ledger import Replayed, ReplayLedger, by_partition
from event_spine.dlq.records import Position
from event_spine.errors import ReplayLedgerUnsupported
from event_spine.schemas.routes import BackendType

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_dlq_replays (
    dlq_topic     TEXT NOT NULL,
    dlq_partition INTEGER NOT NULL,
    dlq_offset    INTEGER NOT NULL,
    replayed_at   TEXT NOT NULL,
    replayed_by   TEXT NOT NULL,
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
) WITHOUT ROWID;
"""
_POSTGRES_COLUMNS = (
    "dlq_topic text NOT NULL, dlq_partition integer NOT NULL, dlq_offset bigint NOT NULL,"
    " replayed_at timestamptz NOT NULL, replayed_by text NOT NULL,"
    " PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)"
)


def _exact(
    rows: list[tuple[Any, ...]], positions: Collection[Position], when: Any
) -> dict[Position, Replayed]:
    """Rows of the range queries, kept when their position was asked for."""
    wanted = set(positions)
    out = {}
    for partition, offset, at, by in rows:
        if (partition, offset) in wanted:
            out[(partition, offset)] = Replayed(partition, offset, when(at), by)
    return out


class SqliteReplayLedger(DelegatedLifecycle):
    """The ledger in the registry's SQLite file (its own connection and thread)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._db = SqliteDatabase(SqliteConfig.model_validate(config), _SQLITE_SCHEMA)
        self._resource = self._db

    async def replayed(
        self, topic: str, positions: Collection[Position]
    ) -> dict[Position, Replayed]:
        """The rows of those of ``positions`` already replayed from ``topic``."""
        ranges = by_partition(positions)

        def read() -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for partition, (low, high) in ranges.items():
                rows += self._db.db.execute(
                    "SELECT dlq_partition, dlq_offset, replayed_at, replayed_by"
                    " FROM spine_dlq_replays WHERE dlq_topic = ? AND dlq_partition = ?"
                    " AND dlq_offset BETWEEN ? AND ?",
                    (topic, partition, low, high),
                ).fetchall()
            return rows

        rows = await self._db.run(read) if ranges else []
        return _exact(rows, positions, datetime.fromisoformat)

    async def record(self, topic: str, rows: Collection[Replayed]) -> None:
        """Add rows; a letter already recorded keeps its first row."""
        values = [(topic, r.partition, r.offset, r.at.isoformat(), r.by) for r in rows]

        def write() -> None:
            with self._db.transaction() as db:
                db.executemany(
                    "INSERT INTO spine_dlq_replays VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                    values,
                )

        if values:
            await self._db.run(write)


class PostgresReplayLedger(DelegatedLifecycle):
    """The ledger in the registry's PostgreSQL schema (``<prefix>dlq_replays``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # Imported here: asyncpg is the postgres extra's.
        from event_spine.backends.postgres.database import side_table  # noqa: PLC0415

        cfg = PostgresConfig.model_validate(config)
        self._table = cfg.table("dlq_replays")
        self._where = cfg.where("dlq_replays")
        self._db = self._resource = side_table(cfg, "dlq_replays", _POSTGRES_COLUMNS)

    async def replayed(
        self, topic: str, positions: Collection[Position]
    ) -> dict[Position, Replayed]:
        """The rows of those of ``positions`` already replayed from ``topic``."""
        from event_spine.backends.postgres.database import map_errors  # noqa: PLC0415

        rows: list[tuple[Any, ...]] = []
        with map_errors(self._where):
            for partition, (low, high) in by_partition(positions).items():
                found = await self._db.pool.fetch(
                    f"SELECT dlq_partition, dlq_offset, replayed_at, replayed_by"
                    f" FROM {self._table} WHERE dlq_topic = $1 AND dlq_partition = $2"
                    f" AND dlq_offset BETWEEN $3 AND $4",
                    topic,
                    partition,
                    low,
                    high,
                )
                rows += [tuple(r) for r in found]
        return _exact(rows, positions, lambda at: at)

    async def record(self, topic: str, rows: Collection[Replayed]) -> None:
        """Add rows; a letter already recorded keeps its first row."""
        from event_spine.backends.postgres.database import map_errors  # noqa: PLC0415

        if not rows:
            return
        with map_errors(self._where):
            await self._db.pool.executemany(
                f"INSERT INTO {self._table} VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                [(topic, r.partition, r.offset, r.at, r.by) for r in rows],
            )


def replay_ledger_for(backend: BackendType, config: dict[str, Any]) -> ReplayLedger:
    """The replay ledger living in the registry's database (unopened)."""
    if backend is BackendType.SQLITE:
        return SqliteReplayLedger(config)
    if backend is BackendType.POSTGRES:
        return PostgresReplayLedger(config)
    raise ReplayLedgerUnsupported(
        f"The DLQ replay ledger lives in the routing registry's database, which must be "
        f"SQLite or PostgreSQL (as for API keys); `--registry` is {backend.value}."
    )

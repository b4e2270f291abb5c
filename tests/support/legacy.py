"""Stores in the layout of the release before scoped identities (layout 1).

Written with that release's own DDL and file layout (copied here, frozen), so the
migration tests read what a real old store holds.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import asyncpg

from event_spine.backends.base import event_body
from event_spine.schemas import StoredEvent

SQLITE_LAYOUT_1 = """
CREATE TABLE spine_events (
    event_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, env TEXT NOT NULL,
    mode TEXT NOT NULL, project_id TEXT NOT NULL, stream_id TEXT NOT NULL,
    position INTEGER NOT NULL, event_type TEXT NOT NULL, ts TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX spine_events_by_stream
    ON spine_events (tenant_id, env, mode, project_id, stream_id, position);
CREATE TABLE spine_cursors (
    tenant_id TEXT NOT NULL, env TEXT NOT NULL, mode TEXT NOT NULL,
    project_id TEXT NOT NULL, stream_id TEXT NOT NULL, position INTEGER NOT NULL,
    last_event_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, stream_id)
) WITHOUT ROWID;
"""


def _rows(events: list[StoredEvent]) -> list[tuple[object, ...]]:
    return [
        (
            e.event_id,
            *e.record.routing.key(),
            e.record.stream_id,
            e.position,
            e.record.event_type,
            e.record.ts.isoformat(),
            event_body(e),
        )
        for e in events
    ]


def _cursors(events: list[StoredEvent]) -> list[tuple[object, ...]]:
    last: dict[tuple[str, ...], StoredEvent] = {}
    for event in events:
        last[(*event.record.routing.key(), event.record.stream_id)] = event
    return [(*key, e.position, e.event_id) for key, e in last.items()]


def write_sqlite_layout_1(path: Path, events: list[StoredEvent]) -> None:
    """An SQLite file as the previous release left it."""
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_LAYOUT_1)
        db.executemany(f"INSERT INTO spine_events VALUES ({','.join('?' * 10)})", _rows(events))
        db.executemany("INSERT INTO spine_cursors VALUES (?, ?, ?, ?, ?, ?, ?)", _cursors(events))
    db.close()


def to_filesystem_layout_1(root: Path) -> None:
    """Turn a current filesystem store into the previous layout: one global id index."""
    for path in sorted((root / "by-id").rglob("*")):
        if path.is_file():
            target = root / "ids" / path.name[:2] / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
    shutil.rmtree(root / "by-id")
    (root / "layout.json").unlink()


async def write_postgres_layout_1(
    conn: asyncpg.Connection, schema: str, events: list[StoredEvent]
) -> None:
    """PostgreSQL tables as the previous release created them."""
    ident = 'text COLLATE "C" NOT NULL'
    await conn.execute(
        f'CREATE SCHEMA "{schema}";'
        f'CREATE TABLE "{schema}"."spine_events" (event_id text COLLATE "C" PRIMARY KEY,'
        f" tenant_id {ident}, env {ident}, mode {ident}, project_id {ident},"
        f" stream_id {ident}, position bigint NOT NULL, event_type text NOT NULL,"
        " ts timestamptz NOT NULL, body bytea NOT NULL);"
        f'CREATE UNIQUE INDEX "spine_events_by_stream" ON "{schema}"."spine_events"'
        " (tenant_id, env, mode, project_id, stream_id, position);"
        f'CREATE TABLE "{schema}"."spine_cursors" (tenant_id {ident}, env {ident},'
        f" mode {ident}, project_id {ident}, stream_id {ident}, position bigint NOT NULL,"
        " last_event_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (tenant_id, env, mode, project_id, stream_id));"
    )
    rows = [(*r[:8], events[i].record.ts, r[9]) for i, r in enumerate(_rows(events))]
    await conn.executemany(
        f'INSERT INTO "{schema}"."spine_events" VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)', rows
    )
    await conn.executemany(
        f'INSERT INTO "{schema}"."spine_cursors" VALUES ($1,$2,$3,$4,$5,$6,$7)', _cursors(events)
    )

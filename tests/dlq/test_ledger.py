"""The DLQ replay ledger on every store that holds it: the registry's SQLite file, a
PostgreSQL schema, and memory (for users' tests): the same contract."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from event_spine.dlq import MemoryReplayLedger, Replayed, ReplayLedger, replay_ledger_for
from event_spine.errors import ReplayLedgerUnsupported
from event_spine.schemas.routes import BackendType
from support.postgres import temp_database

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def ledger(request, tmp_path: Path) -> AsyncIterator[ReplayLedger]:
    if request.param == "postgres":
        async with temp_database("spine_ledger") as dsn:
            store = replay_ledger_for(BackendType.POSTGRES, {"dsn": dsn})
            await store.open()
            yield store
            await store.close()
        return
    store = (
        replay_ledger_for(BackendType.SQLITE, {"path": str(tmp_path / "registry.db")})
        if request.param == "sqlite"
        else MemoryReplayLedger()
    )
    await store.open()
    yield store
    await store.close()


async def test_recorded_letters_are_found_exactly_and_keep_their_first_row(
    ledger: ReplayLedger,
) -> None:
    await ledger.record("t.dlq", [Replayed(0, 3, AT, "console:abc"), Replayed(1, 7, AT, "cli")])
    asked = [(0, 2), (0, 3), (0, 4), (1, 7), (2, 3)]
    found = await ledger.replayed("t.dlq", asked)
    assert found == {
        (0, 3): Replayed(0, 3, AT, "console:abc"),
        (1, 7): Replayed(1, 7, AT, "cli"),
    }
    # Another topic's letters at the same positions are its own.
    assert await ledger.replayed("other.dlq", asked) == {}
    # Recording a letter again keeps the first row (who replayed it first, when).
    await ledger.record("t.dlq", [Replayed(0, 3, AT.replace(hour=13), "cli")])
    again = await ledger.replayed("t.dlq", [(0, 3)])
    assert again[(0, 3)].by == "console:abc"
    assert again[(0, 3)].at == AT
    assert await ledger.replayed("t.dlq", []) == {}
    await ledger.record("t.dlq", [])


async def test_the_sqlite_ledger_is_a_table_in_the_registry_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    ledger = replay_ledger_for(BackendType.SQLITE, {"path": str(path)})
    await ledger.open()
    try:
        await ledger.record("t.dlq", [Replayed(0, 3, AT, "console:abc")])
    finally:
        await ledger.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM spine_dlq_replays").fetchall()
    assert rows == [("t.dlq", 0, 3, AT.isoformat(), "console:abc")]


def test_registries_without_a_ledger_table_are_refused() -> None:
    with pytest.raises(ReplayLedgerUnsupported, match="SQLite or PostgreSQL"):
        replay_ledger_for(BackendType.FILESYSTEM, {"root": "/tmp/x"})

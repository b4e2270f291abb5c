"""The contract suite on the stores that need no server: memory, SQLite, filesystem."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from contract import EventStoreContract, LegacyStore, OpenStore
from event_spine.backends import (
    EventStore,
    MemoryEventStore,
    RegistryStore,
    TabularStore,
    build_event_store,
)
from event_spine.backends.base import StreamCursor, StreamKey
from event_spine.backends.filesystem import FilesystemConfig
from event_spine.backends.filesystem.events import FilesystemEventStore
from event_spine.backends.filesystem.tabular import FilesystemTabularStore
from event_spine.backends.memory.registry import MemoryRegistryStore
from event_spine.backends.memory.tabular import MemoryTabularStore
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.database import insert_rows
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.backends.sqlite.tabular import SqliteTabularStore
from event_spine.errors import BackendNotAllowed, EventValidationError
from event_spine.routing import open_registry_store
from event_spine.schemas import ResourceRoute, StoredEvent
from event_spine.schemas.formats import STREAM_ID_RE
from query_contract import assert_reads_stop_at_the_watermark, typed
from registry_contract import OpenRegistryStore, RegistryStoreContract
from support.events import SCOPE, stream_of
from support.legacy import to_filesystem_layout_1, write_sqlite_layout_1
from support.stores import OpenedStores
from tabular_contract import OpenTabular, TabularStoreContract


class TestMemoryStore(EventStoreContract):
    durable = False

    async def test_reads_stop_at_a_lagging_watermark(self) -> None:
        store = MemoryEventStore()
        events = typed(10, "lag/1")
        await store.append_batch(events)
        key = StreamKey.of(SCOPE, "lag/1")
        store._cursors[key] = StreamCursor("lag/1", 4, events[4].event_id)
        await assert_reads_stop_at_the_watermark(store, events, 4)

    @pytest.fixture
    async def open_store(self) -> OpenStore:
        shared = MemoryEventStore()

        async def open_() -> EventStore:
            return shared

        return open_


class TestSqliteStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, tmp_path: Path, opened: OpenedStores) -> OpenStore:
        config = SqliteConfig(path=str(tmp_path / "events.db"))

        async def open_() -> EventStore:
            return await opened.add(SqliteEventStore(config))

        return open_

    @pytest.fixture
    async def legacy_store(self, tmp_path: Path) -> LegacyStore:
        async def write(events: list[StoredEvent]) -> Callable[[], EventStore]:
            path = tmp_path / "layout1.db"
            write_sqlite_layout_1(path, events)
            return lambda: SqliteEventStore(SqliteConfig(path=str(path)))

        return write

    async def test_redelivery_restores_a_watermark_that_lags_its_events(
        self, tmp_path: Path, opened: OpenedStores
    ) -> None:
        # The trigger only advances watermarks for rows it inserts; events that are
        # already stored (a database restored from a backup taken between the two, or
        # edited by hand) must still get their watermark back when they come again.
        path = tmp_path / "events.db"
        store = await opened.add(SqliteEventStore(SqliteConfig(path=str(path))))
        events = stream_of(5)
        await store.append_batch(events)
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM spine_cursors")
        assert await store.cursor(SCOPE, "s1") is None
        result = await store.append_batch(events)
        assert (result.written, result.duplicates) == (0, 5)
        cursor = await store.cursor(SCOPE, "s1")
        assert cursor is not None
        assert (cursor.position, cursor.last_event_id) == (4, events[-1].event_id)

    async def test_reads_stop_at_a_lagging_watermark(
        self, tmp_path: Path, opened: OpenedStores
    ) -> None:
        path = tmp_path / "events.db"
        store = await opened.add(SqliteEventStore(SqliteConfig(path=str(path))))
        events = typed(10, "lag/1")
        await store.append_batch(events)
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE spine_cursors SET position = 4, last_event_id = ?", (events[4].event_id,)
            )
        await assert_reads_stop_at_the_watermark(store, events, 4)

    async def test_an_existing_file_gets_the_type_index_when_opened(
        self, tmp_path: Path, opened: OpenedStores
    ) -> None:
        path = tmp_path / "events.db"
        first = await opened.add(SqliteEventStore(SqliteConfig(path=str(path))))
        await first.append_batch(typed(6))
        await first.close()
        with sqlite3.connect(path) as db:  # as a file of the release before queries
            db.execute("DROP INDEX spine_events_by_type")
        store = await opened.add(SqliteEventStore(SqliteConfig(path=str(path))))
        assert await store.count_event_types(SCOPE, "s1") == {"kind.a": 2, "kind.b": 2, "kind.c": 2}
        with sqlite3.connect(path) as db:
            names = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            }
        assert "spine_events_by_type" in names

    @pytest.mark.parametrize("size", [1, 3, 255, 256, 257, 2048, 2049, 4700])
    async def test_any_batch_size_is_written_once(
        self, size: int, tmp_path: Path, opened: OpenedStores
    ) -> None:
        # Statements are padded by repeating their last row: the repeats are no-ops.
        store = await opened.add(SqliteEventStore(SqliteConfig(path=str(tmp_path / "e.db"))))
        events = stream_of(size)
        result = await store.append_batch(events)
        assert (result.written, result.duplicates) == (size, 0)
        with sqlite3.connect(tmp_path / "e.db") as db:
            assert db.execute("SELECT count(*) FROM spine_events").fetchone() == (size,)
        cursor = await store.cursor(SCOPE, "s1")
        assert cursor is not None
        assert cursor.position == size - 1


class TestSqliteStoreWithoutTypeIndex(EventStoreContract):
    """``type_index: false``: no events_by_type index, the same answers."""

    @pytest.fixture
    async def open_store(self, tmp_path: Path, opened: OpenedStores) -> OpenStore:
        config = SqliteConfig(path=str(tmp_path / "events.db"), type_index=False)

        async def open_() -> EventStore:
            store = await opened.add(SqliteEventStore(config))
            with sqlite3.connect(config.path) as db:
                rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
                assert "spine_events_by_type" not in {r[0] for r in rows}
            return store

        return open_


class TestSqliteStoreReadingOnItsThread(EventStoreContract):
    """inline_reads off: every call on the database thread."""

    @pytest.fixture
    async def open_store(self, tmp_path: Path, opened: OpenedStores) -> OpenStore:
        config = SqliteConfig(path=str(tmp_path / "events.db"), inline_reads=False)

        async def open_() -> EventStore:
            return await opened.add(SqliteEventStore(config))

        return open_


async def test_sqlite_inline_read_refused_as_busy_goes_to_the_database_thread(
    tmp_path: Path, opened: OpenedStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A WAL reader is refused as busy only in rare states (recovery after a crash, an
    # exclusive-locking connection) that cannot be staged beside an open store, so
    # the inline read connection is swapped for one to a file another connection
    # holds exclusively: a real "database is locked", raised at once (no waiting).
    store = await opened.add(SqliteEventStore(SqliteConfig(path=str(tmp_path / "e.db"))))
    events = stream_of(3)
    await store.append_batch(events)
    locked = tmp_path / "locked.db"
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("CREATE TABLE spine_events (x)")
    holder.execute("BEGIN EXCLUSIVE")
    busy = sqlite3.connect(locked, isolation_level=None, check_same_thread=False)
    busy.execute("PRAGMA busy_timeout = 0")
    monkeypatch.setattr(store._database, "_reader", lambda: busy)
    try:
        assert await store.list_after(SCOPE, "s1") == events
    finally:
        busy.close()
        holder.close()


class TestFilesystemStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, tmp_path: Path, opened: OpenedStores) -> OpenStore:
        config = FilesystemConfig(root=str(tmp_path / "fs"))

        async def open_() -> EventStore:
            return await opened.add(FilesystemEventStore(config))

        return open_

    @pytest.fixture
    async def legacy_store(self, tmp_path: Path, opened: OpenedStores) -> LegacyStore:
        async def write(events: list[StoredEvent]) -> Callable[[], EventStore]:
            config = FilesystemConfig(root=str(tmp_path / "layout1"))
            await (await opened.add(FilesystemEventStore(config))).append_batch(events)
            to_filesystem_layout_1(tmp_path / "layout1")
            return lambda: FilesystemEventStore(config)

        return write

    @pytest.mark.parametrize("mode", ["saas", "enterprise", "system"])
    def test_refused_outside_lab_mode(self, tmp_path: Path, mode: str) -> None:
        route = ResourceRoute(
            resource_kind="event_spine",
            tenant_id="t_acme",
            env="dev",
            project_id="p_core",
            mode=mode,
            backend_type="filesystem",
            config={"root": str(tmp_path)},
        )
        with pytest.raises(BackendNotAllowed, match=f"not '{mode}'"):
            build_event_store(route)

    async def test_refuses_events_of_a_production_mode(self, tmp_path: Path) -> None:
        store = FilesystemEventStore(FilesystemConfig(root=str(tmp_path)))
        saas = stream_of(1)[0].record.routing.scope().model_copy(update={"mode": "saas"})
        with pytest.raises(BackendNotAllowed):
            await store.append_batch(stream_of(1, scope=saas))


HOSTILE_IDS = ["../../outside/evil", "../" * 12 + "etc/passwd", "a/b", "..", "/abs", "x\\y", ""]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_filesystem_reads_refuse_hostile_ids(
    hostile: str, tmp_path: Path, opened: OpenedStores
) -> None:
    # A planted event file outside the root, where the old `ids/<2>/<id>` join of
    # "../../outside/evil" landed: it must never be read back.
    root = tmp_path / "fs"
    planted = stream_of(1)[0]
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil").write_bytes(
        msgspec.json.encode({"position": 0, "record": planted.record}) + b"\n"
    )
    store = await opened.add(FilesystemEventStore(FilesystemConfig(root=str(root))))
    await store.append_batch(stream_of(2))
    with pytest.raises(EventValidationError, match="event_id"):
        await store.get(SCOPE, hostile)
    with pytest.raises(EventValidationError, match="event_id"):
        await store.list_after(SCOPE, "s1", hostile)
    if STREAM_ID_RE.match(hostile):  # a valid stream id ("a/b"): quoted, one component
        assert await store.list_after(SCOPE, hostile) == []
        return
    with pytest.raises(EventValidationError, match="stream_id"):
        await store.list_after(SCOPE, hostile)
    with pytest.raises(EventValidationError, match="stream_id"):
        await store.cursor(SCOPE, hostile)


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_filesystem_writes_refuse_hostile_ids_and_write_nothing_outside(
    hostile: str, tmp_path: Path, opened: OpenedStores
) -> None:
    root = tmp_path / "fs"
    store = await opened.add(FilesystemEventStore(FilesystemConfig(root=str(root))))
    good = stream_of(1)[0]
    bad_id = StoredEvent(msgspec.structs.replace(good.record, event_id=hostile), 1)
    bad_tenant = StoredEvent(
        msgspec.structs.replace(
            good.record, routing=msgspec.structs.replace(good.record.routing, tenant_id=hostile)
        ),
        2,
    )
    with pytest.raises(EventValidationError, match="event_id"):
        await store.append_batch([bad_id])
    with pytest.raises(EventValidationError, match="tenant_id"):
        await store.append_batch([bad_tenant])
    tables = FilesystemTabularStore(FilesystemConfig(root=str(root)))
    with pytest.raises(EventValidationError, match="table"):
        await tables.put(SCOPE, hostile or ".", "k", {"v": 1})
    with pytest.raises(EventValidationError, match="table"):
        await tables.get(SCOPE, hostile or ".", "k")
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(root)]
    assert outside == []


class TestMemoryRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(self) -> OpenRegistryStore:
        shared = MemoryRegistryStore()

        async def open_() -> RegistryStore:
            return shared

        return open_


class TestSqliteRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(self, tmp_path: Path) -> OpenRegistryStore:
        async def open_() -> RegistryStore:
            return await open_registry_store("sqlite", {"path": str(tmp_path / "registry.db")})

        return open_


class TestFilesystemRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(self, tmp_path: Path) -> OpenRegistryStore:
        async def open_() -> RegistryStore:
            return await open_registry_store("filesystem", {"root": str(tmp_path)})

        return open_


class TestMemoryTabular(TabularStoreContract):
    durable = False

    @pytest.fixture
    async def open_tabular(self) -> OpenTabular:
        shared = MemoryTabularStore()

        async def open_() -> TabularStore:
            return shared

        return open_


class TestSqliteTabular(TabularStoreContract):
    @pytest.fixture
    async def open_tabular(self, tmp_path: Path, opened: OpenedStores) -> OpenTabular:
        async def open_() -> TabularStore:
            store = SqliteTabularStore(SqliteConfig(path=str(tmp_path / "rows.db")))
            await store.open()
            return store

        return open_


class TestFilesystemTabular(TabularStoreContract):
    @pytest.fixture
    async def open_tabular(self, tmp_path: Path) -> OpenTabular:
        async def open_() -> TabularStore:
            store = FilesystemTabularStore(FilesystemConfig(root=str(tmp_path)))
            await store.open()
            return store

        return open_


@pytest.mark.parametrize("max_parameters", [999, 32766])
def test_multi_row_inserts_fit_the_parameter_limit_of_the_sqlite_build(
    tmp_path: Path, max_parameters: int
) -> None:
    # SQLite before 3.32 allows 999 bound parameters per statement; a batch must still
    # go in whole, in statements that fit, and count only the rows really inserted.
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, max_parameters)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
    sql = "INSERT INTO t VALUES {values} ON CONFLICT DO NOTHING"
    rows: list[tuple[object, ...]] = [(i, f"a{i}", f"b{i}") for i in range(2_500)]
    assert insert_rows(db, sql, rows[:1_000]) == 1_000
    assert insert_rows(db, sql, rows) == 1_500
    assert db.execute("SELECT count(*), sum(id) FROM t").fetchone() == (2_500, sum(range(2_500)))
    db.close()


async def test_stores_opening_one_new_file_at_once_all_open(
    tmp_path: Path, opened: OpenedStores
) -> None:
    # A worker and the readers of one route open its file together. Switching a new
    # file to WAL takes an exclusive lock that SQLite does not wait for, so all but one
    # of the opens used to fail with "database is locked" (a few percent of them).
    for attempt in range(50):
        path = str(tmp_path / f"events-{attempt}.db")
        stores = [SqliteEventStore(SqliteConfig(path=path)) for _ in range(6)]
        await asyncio.gather(*(opened.add(store) for store in stores))
        events = stream_of(3)
        assert (await stores[0].append_batch(events)).written == 3
        assert [e.event_id for e in await stores[-1].list_after(SCOPE, "s1")] == [
            e.event_id for e in events
        ]
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

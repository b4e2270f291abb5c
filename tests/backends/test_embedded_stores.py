"""The contract suite on the stores that need no server: memory, SQLite, filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import EventStoreContract, OpenStore
from event_spine.backends import EventStore, MemoryEventStore, build_event_store
from event_spine.backends.filesystem import (
    FilesystemConfig,
    FilesystemEventStore,
    FilesystemTabularStore,
)
from event_spine.backends.memory import MemoryRegistryStore, MemoryTabularStore
from event_spine.backends.sqlite import SqliteConfig, SqliteEventStore, SqliteTabularStore
from event_spine.errors import BackendNotAllowed
from event_spine.routing import RegistryStore, open_registry_store
from event_spine.schemas import ResourceRoute
from event_spine.tabular import TabularStore
from registry_contract import OpenRegistryStore, RegistryStoreContract
from support.events import stream_of
from support.stores import OpenedStores
from tabular_contract import OpenTabular, TabularStoreContract


class TestMemoryStore(EventStoreContract):
    durable = False

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


class TestFilesystemStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, tmp_path: Path, opened: OpenedStores) -> OpenStore:
        config = FilesystemConfig(root=str(tmp_path / "fs"))

        async def open_() -> EventStore:
            return await opened.add(FilesystemEventStore(config))

        return open_

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

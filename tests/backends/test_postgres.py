"""The PostgreSQL backend against a real server, plus its own failure modes.

The server runs before the session (127.0.0.1:5432, trust auth; override the
admin DSN with SPINE_TEST_PG_ADMIN_DSN). The session creates its own database
``spine_test_<uuid>`` through the ``postgres`` database and drops it at the end;
every test gets a fresh schema in it, so tests never share tables. No emulator
gaps: this is the real server, so the harness has no workarounds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import ValidationError

import event_spine.backends.postgres.events as pg
from contract import EventStoreContract, LegacyStore, OpenStore
from event_spine.backends import EventStore, RegistryStore, TabularStore
from event_spine.backends.base import event_body
from event_spine.backends.factory import build_store
from event_spine.backends.postgres import PostgresConfig
from event_spine.backends.postgres.events import PostgresEventStore
from event_spine.backends.postgres.registry import PostgresRegistryStore
from event_spine.backends.postgres.tabular import PostgresTabularStore
from event_spine.errors import ConfigurationError, StorePermanentError, StoreUnavailable
from event_spine.routing import open_registry_store
from event_spine.schemas import EventQuery, StoredEvent
from query_contract import assert_reads_stop_at_the_watermark, typed
from registry_contract import OpenRegistryStore, RegistryStoreContract
from servers.emulators import free_port
from support.events import SCOPE, stored, stream_of
from support.legacy import write_postgres_layout_1
from support.postgres import temp_database
from support.stores import OpenedStores
from tabular_contract import OpenTabular, TabularStoreContract


@pytest.fixture(scope="session")
async def pg_dsn() -> AsyncIterator[str]:
    """A database of this session's own, dropped at the end."""
    async with temp_database("spine_test") as dsn:
        yield dsn


@pytest.fixture
async def admin(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the session database, for arranging and inspecting."""
    conn = await asyncpg.connect(pg_dsn, timeout=5)
    yield conn
    await conn.close()


@pytest.fixture
def settings(pg_dsn: str) -> dict[str, Any]:
    """Route config with a fresh schema: this test's tables are its own."""
    return {
        "dsn": pg_dsn,
        "schema": f"t_{uuid.uuid4().hex[:12]}",
        "min_pool_size": 1,
        "max_pool_size": 4,
        "command_timeout_s": 10,
    }


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, settings: dict[str, Any], opened: OpenedStores) -> OpenStore:
        config = PostgresConfig.model_validate(settings)

        async def open_() -> EventStore:
            store: EventStore = await opened.add(PostgresEventStore(config))
            return store

        return open_

    @pytest.fixture
    async def legacy_store(
        self, settings: dict[str, Any], admin: asyncpg.Connection
    ) -> LegacyStore:
        config = PostgresConfig.model_validate(settings)

        async def write(events: list[StoredEvent]) -> Callable[[], EventStore]:
            await write_postgres_layout_1(admin, config.db_schema, events)
            return lambda: PostgresEventStore(config)

        return write


class TestPostgresRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(
        self, settings: dict[str, Any]
    ) -> AsyncIterator[OpenRegistryStore]:
        stores: list[RegistryStore] = []

        async def open_() -> RegistryStore:
            # Through the factory, as the CLI and the sink open it.
            stores.append(await open_registry_store("postgres", settings))
            return stores[-1]

        yield open_
        for store in stores:
            await store.close()


class TestPostgresTabular(TabularStoreContract):
    @pytest.fixture
    async def open_tabular(self, settings: dict[str, Any], opened: OpenedStores) -> OpenTabular:
        config = PostgresConfig.model_validate(settings)

        async def open_() -> TabularStore:
            store: TabularStore = await opened.add(PostgresTabularStore(config))
            return store

        return open_


# --- configuration -----------------------------------------------------------


def test_password_in_dsn_is_refused_without_echoing_it() -> None:
    for dsn in ("postgresql://app:s3cr3t@db/x", "postgresql://db/x?password=s3cr3t"):
        with pytest.raises(ConfigurationError) as info:
            build_store("postgres", {"dsn": dsn}, "events")
        assert "PGPASSWORD" in str(info.value)
        assert "s3cr3t" not in str(info.value)


def test_identifiers_are_validated() -> None:
    with pytest.raises(ValidationError):
        PostgresConfig(dsn="postgresql://db/x", schema='x"; DROP TABLE y; --')
    with pytest.raises(ValidationError):
        PostgresConfig(dsn="postgresql://db/x", table_prefix="Bad-Prefix")
    with pytest.raises(ValidationError):
        PostgresConfig(dsn="postgresql://db/x", min_pool_size=5, max_pool_size=2)
    store = build_store("postgres", {"dsn": "postgresql://db/x", "schema": "ev"}, "events")
    assert isinstance(store, PostgresEventStore)
    assert store.config.table("events") == '"ev"."spine_events"'


# --- the server going away ----------------------------------------------------


async def test_closed_port_is_store_unavailable() -> None:
    config = PostgresConfig(dsn=f"postgresql://127.0.0.1:{free_port()}/x", connect_timeout_s=2)
    for store in (
        PostgresEventStore(config),
        PostgresRegistryStore(config),
        PostgresTabularStore(config),
    ):
        with pytest.raises(StoreUnavailable, match=r"PostgreSQL table .* unreachable"):
            await store.open()
    never_opened = PostgresEventStore(config)
    with pytest.raises(StoreUnavailable, match="not open"):
        await never_opened.ping()


async def test_closed_store_is_unavailable(settings: dict[str, Any]) -> None:
    store = PostgresEventStore(PostgresConfig.model_validate(settings))
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.append_batch(stream_of(1))


async def _hold_cursor_row(admin: asyncpg.Connection, config: PostgresConfig) -> None:
    """Lock stream s1's watermark row, so the next batch of s1 blocks on it."""
    await admin.execute("BEGIN")
    await admin.execute(
        f"SELECT 1 FROM {config.table('cursors')} WHERE stream_id = 's1' FOR UPDATE"
    )


async def _blocked_backend(admin: asyncpg.Connection) -> int:
    for _ in range(200):
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'event-spine' AND wait_event_type = 'Lock'"
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("the batch never blocked on the watermark row")


async def test_connection_killed_mid_batch_is_unavailable_and_rolls_back(
    settings: dict[str, Any], pg_dsn: str, opened: OpenedStores
) -> None:
    config = PostgresConfig.model_validate(settings)
    store = await opened.add(PostgresEventStore(config))
    events = stream_of(10)
    await store.append_batch(events[:5])
    holder = await asyncpg.connect(pg_dsn)
    killer = await asyncpg.connect(pg_dsn)
    try:
        await _hold_cursor_row(holder, config)
        # The batch inserts its events, then waits for the watermark row: the
        # server dies (here: its backend is terminated) in the middle.
        batch = asyncio.create_task(store.append_batch(events[5:]))
        await killer.execute("SELECT pg_terminate_backend($1)", await _blocked_backend(killer))
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await batch
        await holder.execute("ROLLBACK")
    finally:
        await holder.close()
        await killer.close()
    # Nothing of the failed batch stayed; the pool reconnects for the retry.
    result = await store.append_batch(events[5:])
    assert (result.written, result.duplicates) == (5, 0)
    assert await store.list_after(SCOPE, "s1", None, 100) == events


async def test_statement_timeout_is_unavailable(
    settings: dict[str, Any], admin: asyncpg.Connection, opened: OpenedStores
) -> None:
    config = PostgresConfig.model_validate(settings | {"command_timeout_s": 0.3})
    store = await opened.add(PostgresEventStore(config))
    events = stream_of(4)
    await store.append_batch(events[:2])
    await _hold_cursor_row(admin, config)
    with pytest.raises(StoreUnavailable):
        await store.append_batch(events[2:])
    await admin.execute("ROLLBACK")
    assert (await store.append_batch(events[2:])).written == 2


# --- data the server refuses --------------------------------------------------


async def test_reads_stop_at_a_lagging_watermark(
    settings: dict[str, Any], opened: OpenedStores, admin: asyncpg.Connection
) -> None:
    config = PostgresConfig.model_validate(settings)
    store = await opened.add(PostgresEventStore(config))
    events = typed(10, "lag/1")
    await store.append_batch(events)
    await admin.execute(
        f"UPDATE {config.table('cursors')} SET position = 4, last_event_id = $1",
        events[4].event_id,
    )
    await assert_reads_stop_at_the_watermark(store, events, 4)


async def test_another_event_at_a_stored_position_is_refused(
    settings: dict[str, Any], opened: OpenedStores
) -> None:
    store = await opened.add(PostgresEventStore(PostgresConfig.model_validate(settings)))
    first = stored(5)
    await store.append_batch([stored(4), first])
    # Offsets reused (a recreated topic): must not be dropped as a "duplicate".
    impostor, later = stored(5), stored(6)
    with pytest.raises(StorePermanentError, match=r"collide.*@5"):
        await store.append_batch([impostor, later])
    assert await store.get(SCOPE, impostor.event_id) is None
    assert await store.get(SCOPE, later.event_id) is None
    cursor = await store.cursor(SCOPE, "s1")
    assert cursor is not None
    assert cursor.position == 5


async def _insert_uncommitted(
    holder: asyncpg.Connection, config: PostgresConfig, event: StoredEvent, event_id: str
) -> None:
    """Another writer's open transaction holding ``event`` (under ``event_id``)."""
    r = event.record
    await holder.execute("BEGIN")
    await holder.execute(
        f"INSERT INTO {config.table('events')} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        event_id,
        *SCOPE.key(),
        r.stream_id,
        event.position,
        r.event_type,
        r.ts,
        event_body(event),
    )


@pytest.mark.parametrize("same_identity", [True, False], ids=["same-event", "other-event"])
async def test_a_concurrent_writer_of_the_batch_is_waited_for(
    settings: dict[str, Any], pg_dsn: str, opened: OpenedStores, same_identity: bool
) -> None:
    """A zombie writer commits one of the batch's rows while the batch waits on it:
    the same event is a duplicate; another event at that position is refused."""
    config = PostgresConfig.model_validate(settings)
    store = await opened.add(PostgresEventStore(config))
    events = stream_of(4)
    await store.append_batch(events[:1])
    holder = await asyncpg.connect(pg_dsn)
    watcher = await asyncpg.connect(pg_dsn)
    try:
        other_id = events[2].event_id if same_identity else stored(99).event_id
        await _insert_uncommitted(holder, config, events[2], other_id)
        batch = asyncio.create_task(store.append_batch(events[1:]))
        await _blocked_backend(watcher)
        await holder.execute("COMMIT")
        if same_identity:
            result = await batch
            assert (result.written, result.duplicates, result.conflicts) == (2, 1, ())
            assert await store.list_after(SCOPE, "s1", None, 100) == events
        else:
            with pytest.raises(StorePermanentError, match=r"collide.*@2"):
                await batch
            assert await store.get(SCOPE, events[1].event_id) is None
    finally:
        await holder.close()
        await watcher.close()


async def test_text_the_server_refuses_is_permanent(
    settings: dict[str, Any], opened: OpenedStores
) -> None:
    table = await opened.add(PostgresTabularStore(PostgresConfig.model_validate(settings)))
    with pytest.raises(StorePermanentError, match="PostgreSQL table"):
        await table.put(SCOPE, "kv", "nul\x00key", {"x": 1})


# --- schema and batching ------------------------------------------------------


async def test_concurrent_open_creates_the_tables_once(
    settings: dict[str, Any], admin: asyncpg.Connection, opened: OpenedStores
) -> None:
    config = PostgresConfig.model_validate(settings)
    stores = [
        *(PostgresEventStore(config) for _ in range(4)),
        PostgresRegistryStore(config),
        PostgresTabularStore(config),
    ]
    await asyncio.gather(*(opened.add(s) for s in stores))
    tables = await admin.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", config.db_schema
    )
    assert [t[0] for t in tables] == [
        "spine_cursors",
        "spine_events",
        "spine_layout",
        "spine_routes",
        "spine_rows",
    ]


async def test_prefixes_in_one_schema_stay_apart(
    settings: dict[str, Any], opened: OpenedStores
) -> None:
    a = await opened.add(PostgresEventStore(PostgresConfig.model_validate(settings)))
    b = await opened.add(
        PostgresEventStore(PostgresConfig.model_validate(settings | {"table_prefix": "other_"}))
    )
    events = stream_of(3)
    await a.append_batch(events)
    assert await b.list_after(SCOPE, "s1") == []
    assert (await b.append_batch(events)).written == 3


@asynccontextmanager
async def dml_role(
    admin: asyncpg.Connection, config: PostgresConfig
) -> AsyncIterator[PostgresConfig]:
    """``config`` as a new login role that may read and write the schema's tables but
    not create anything (no DDL); the role and its grants are dropped on exit."""
    role, schema = f"spine_app_{uuid.uuid4().hex[:8]}", config.db_schema
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        await admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        await admin.execute(
            f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        parts = urlsplit(config.dsn)
        app_dsn = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))
        yield config.model_copy(update={"dsn": app_dsn})
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')


async def test_role_without_temporary_privilege_writes_without_staging(
    settings: dict[str, Any],
    admin: asyncpg.Connection,
    opened: OpenedStores,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No TEMPORARY privilege: the unnest INSERT, split into statements, counts exactly."""
    monkeypatch.setattr(pg, "_STATEMENT_ROWS", 7)
    config = PostgresConfig.model_validate(settings)
    await opened.add(PostgresEventStore(config))  # a migration made the tables
    database = await admin.fetchval("SELECT current_database()")
    async with dml_role(admin, config) as app_config:
        # Only non-superusers lose it: every other test's role (the server's root) keeps it.
        await admin.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        try:
            store = await opened.add(PostgresEventStore(app_config))
            await _split_batches_count_exactly(store)
            await store.close()
        finally:
            await admin.execute(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC')


async def test_batches_split_into_statements_count_exactly(
    settings: dict[str, Any], opened: OpenedStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "_STATEMENT_ROWS", 7)
    store = await opened.add(PostgresEventStore(PostgresConfig.model_validate(settings)))
    await _split_batches_count_exactly(store)


async def _split_batches_count_exactly(store: PostgresEventStore) -> None:
    streams = [stream_of(30, name, start=i * 100) for i, name in enumerate(("a", "b", "c"))]
    everything = [e for s in streams for e in s]
    await store.append_batch(everything[::2])
    result = await store.append_batch(everything)
    assert (result.written, result.duplicates) == (45, 45)
    for name, events in zip(("a", "b", "c"), streams, strict=True):
        assert await store.list_after(SCOPE, name, None, 100) == events


async def test_least_privileged_role_uses_existing_tables(
    settings: dict[str, Any], admin: asyncpg.Connection, opened: OpenedStores
) -> None:
    config = PostgresConfig.model_validate(settings)
    await opened.add(PostgresEventStore(config))  # a migration made the tables
    async with dml_role(admin, config) as app_config:
        app = await opened.add(PostgresEventStore(app_config))
        assert (await app.append_batch(stream_of(3))).written == 3
        await app.close()


async def test_a_role_without_ddl_rights_opens_a_store_that_lacks_the_query_index(
    settings: dict[str, Any], admin: asyncpg.Connection, opened: OpenedStores
) -> None:
    """Upgrading: the app role reads and writes without the new index; `spine migrate`
    (the owner) creates it."""
    config = PostgresConfig.model_validate(settings)
    owner = await opened.add(PostgresEventStore(config))
    await owner.append_batch(typed(6))
    index = f"{config.db_schema}.{config.table_prefix}events_by_type"
    await admin.execute(f'DROP INDEX "{config.db_schema}"."{config.table_prefix}events_by_type"')
    async with dml_role(admin, config) as app_config:
        app = await opened.add(PostgresEventStore(app_config))
        await app.append_batch(typed(3, "s2"))
        page = await app.query(SCOPE, EventQuery(stream_id="s1", event_types=("kind.a",)))
        assert [e.position for e in page.events] == [0, 3]
        await app.close()
        assert await admin.fetchval("SELECT to_regclass($1)", index) is None
        assert "created the query index" in await PostgresEventStore(config).migrate()
        assert await admin.fetchval("SELECT to_regclass($1) IS NOT NULL", index)
        assert "nothing to do" in await PostgresEventStore(config).migrate()


async def test_new_batches_go_by_copy_and_a_redelivery_takes_the_staged_path_for_a_while(
    settings: dict[str, Any], opened: OpenedStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPY straight into the events table while every event is new; a redelivered
    batch rolls that back and is written the staged way, and so are the next
    ``_STAGED_AFTER_CONFLICT`` batches; then COPY again. Every count exact."""
    monkeypatch.setattr(pg, "_STAGED_AFTER_CONFLICT", 2)
    store = await opened.add(PostgresEventStore(PostgresConfig.model_validate(settings)))
    copied: list[int] = []
    copy_new = store._copy_new

    async def counting(groups: list[Any]) -> Any:
        result = await copy_new(groups)  # raises on a stored event: not counted
        copied.append(result.written)
        return result

    monkeypatch.setattr(store, "_copy_new", counting)
    events = stream_of(12)
    assert (await store.append_batch(events[0:2])).written == 2
    assert copied == [2]
    redelivered = await store.append_batch(events[0:4])
    assert (redelivered.written, redelivered.duplicates) == (2, 2)
    for start in (4, 6):  # the staged way
        assert (await store.append_batch(events[start : start + 2])).written == 2
    assert copied == [2]
    assert (await store.append_batch(events[8:12])).written == 4  # COPY again
    assert copied == [2, 4]
    assert await store.list_after(SCOPE, "s1", None, 100) == events

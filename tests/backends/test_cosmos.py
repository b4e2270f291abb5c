"""The Cosmos DB backend on the npm ``@vercel/cosmosdb-server`` emulator.

The emulator starts once for this module; every test gets a fresh database (uuid
suffix). The account key is the emulator's public well-known key, given through
the environment variable named by ``key_env``, as in production.

Emulator gaps, worked around here only (never in the backend):
- Self-signed certificate: the tests set ``verify_tls=False``.
- It never throttles: the 429 paths run through ``FaultProxy``, an HTTPS pass-through
  (the emulator's own certificate) that answers chosen requests itself.
- Its transactional batch understands ``create`` (what the backend sends) but fails
  upserts with 500 "Failed to parse x-ms-documentdb-partitionkey headers": the proxy
  replays that answer for batches so the single-create fallback runs, and a second
  contract run uses ``transactional_batch=False``.
- Its batches are not atomic (ops before a failing one stay written): the backend
  counts per-operation answers, so no workaround is needed.
- A missing item read answers 500, queries ignore ``partition_key``, bare
  ``SELECT * FROM c`` is refused: the backend already reads by query with
  ``c.pk = @pk`` and a WHERE clause everywhere, so nothing to do here.
- It closes the connection after each request (slow): test data stays small.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from azure.cosmos.aio import CosmosClient
from pydantic import ValidationError
from yarl import URL

from contract import EventStoreContract, LegacyStore, OpenStore, read_all, same_id
from event_spine.backends import EventStore, RegistryStore, TabularStore
from event_spine.backends.cosmos import CosmosConfig
from event_spine.backends.cosmos.events import CosmosEventStore
from event_spine.backends.cosmos.layout import _event_item
from event_spine.backends.cosmos.registry import CosmosRegistryStore
from event_spine.backends.cosmos.tabular import CosmosTabularStore
from event_spine.errors import ConfigurationError, StorePermanentError, StoreUnavailable
from event_spine.routing import open_registry_store
from event_spine.schemas import StoredEvent
from registry_contract import OpenRegistryStore, RegistryStoreContract
from servers.emulators import (
    COSMOS_EMULATOR_KEY,
    HOST,
    NODE_MODULES,
    CosmosEmulator,
    free_port,
    running_cosmos,
    start_or_skip,
)
from support.events import SCOPE, stored, stream_of
from support.stores import OpenedStores
from tabular_contract import OpenTabular, TabularStoreContract

pytestmark = pytest.mark.emulator

KEY_ENV = "SPINE_TEST_COSMOS_KEY"
Store = CosmosEventStore | CosmosRegistryStore | CosmosTabularStore


@pytest.fixture(scope="module")
def cosmos() -> Iterator[CosmosEmulator]:
    with running_cosmos(KEY_ENV) as server:
        yield server


def _config(endpoint: str, **overrides: Any) -> CosmosConfig:
    fields: dict[str, Any] = {
        "endpoint": endpoint,
        "database": f"spine_{uuid.uuid4().hex[:12]}",
        "key_env": KEY_ENV,
        "verify_tls": False,  # the emulator's self-signed certificate
    }
    return CosmosConfig(**(fields | overrides))


#: Cosmos's largest write is one transactional batch: 100 operations of one partition
#: key (a stream). 110 events per stream make two batches per stream; the contract's
#: 2,500 cost one emulator connection per request (70 s of the suite's slowest test).
COSMOS_LARGE_BATCH = 330


class TestCosmosEventStore(EventStoreContract):
    large_batch = COSMOS_LARGE_BATCH

    @pytest.fixture
    def config(self, cosmos: CosmosEmulator) -> CosmosConfig:
        return _config(cosmos.endpoint)

    @pytest.fixture
    async def open_store(self, config: CosmosConfig, opened: OpenedStores) -> OpenStore:
        async def open_() -> CosmosEventStore:
            return await opened.add(CosmosEventStore(config))

        return open_

    @pytest.fixture
    async def legacy_store(self, config: CosmosConfig, opened: OpenedStores) -> LegacyStore:
        async def write(events: list[StoredEvent]) -> Callable[[], EventStore]:
            # Written by this release, then as layout 1 had it: no claim items, no marker.
            store = await opened.add(CosmosEventStore(config))
            await store.append_batch(events)
            container = store._events
            query = "SELECT c.id, c.pk FROM c WHERE STARTSWITH(c.pk, 'id#') OR c.pk = 'layout'"
            for item in await container.query(query, {}, None):
                await container.proxy.delete_item(item["id"], partition_key=item["pk"])
            return lambda: CosmosEventStore(config)

        return write


class TestCosmosSingleCreates(EventStoreContract):
    """The same contract on the fallback path (no transactional batch)."""

    large_batch = COSMOS_LARGE_BATCH

    @pytest.fixture
    async def open_store(self, cosmos: CosmosEmulator, opened: OpenedStores) -> OpenStore:
        config = _config(cosmos.endpoint, transactional_batch=False, max_concurrency=8)

        async def open_() -> CosmosEventStore:
            return await opened.add(CosmosEventStore(config))

        return open_

    @pytest.mark.skip(reason="its reads are the batch path's; the other tests cover the writes")
    async def test_paging_returns_each_event_once_in_order_across_many_batches(self) -> None:
        """The slowest contract test (hundreds of reads): run once, in the class above."""


class TestCosmosRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(
        self, cosmos: CosmosEmulator, opened: OpenedStores
    ) -> OpenRegistryStore:
        config = _config(cosmos.endpoint).model_dump()

        async def open_() -> RegistryStore:
            # Through the factory, as the routing layer builds it.
            store = await open_registry_store("cosmos", config)
            opened.stores.append(store)
            return store

        return open_


class TestCosmosTabular(TabularStoreContract):
    @pytest.fixture
    async def open_tabular(self, cosmos: CosmosEmulator, opened: OpenedStores) -> OpenTabular:
        config = _config(cosmos.endpoint)

        async def open_() -> TabularStore:
            return await opened.add(CosmosTabularStore(config))

        return open_


# -- a fault-injecting HTTPS pass-through ------------------------------------

Inject = Callable[[web.Request], web.Response | None]


def _is_batch(request: web.Request) -> bool:
    return request.headers.get("x-ms-cosmos-is-batch-request", "").lower() == "true"


def _cosmos_error(status: int, message: str, **headers: str) -> web.Response:
    body = json.dumps({"code": str(status), "message": message})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


class FaultProxy:
    """Forwards to the emulator; ``inject`` may answer a request instead."""

    def __init__(self, upstream: CosmosEmulator) -> None:
        self.upstream = f"https://{HOST}:{upstream.port}"
        self.port = free_port()
        self.endpoint = f"https://{HOST}:{self.port}/"
        self.inject: Inject | None = None
        self.batches = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        package = NODE_MODULES / "@vercel" / "cosmosdb-server"
        tls.load_cert_chain(package / "cert.pem", package / "key.pem")
        await web.TCPSite(self._runner, HOST, self.port, ssl_context=tls).start()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.batches += _is_batch(request)
        answer = self.inject(request) if self.inject is not None else None
        if answer is not None:
            return answer
        assert self._session is not None
        skip = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(
            request.method, url, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in skip}
        # The account read names the endpoint to use next: keep the SDK on the proxy.
        body = body.replace(self.upstream.encode(), self.endpoint.rstrip("/").encode())
        return web.Response(status=upstream.status, body=body, headers=out)


@pytest.fixture
async def proxy(cosmos: CosmosEmulator) -> AsyncIterator[FaultProxy]:
    running = FaultProxy(cosmos)
    await running.start()
    yield running
    await running.stop()


# -- backend-specific risks ----------------------------------------------------


async def test_unsupported_batch_falls_back_to_single_creates(
    proxy: FaultProxy, opened: OpenedStores
) -> None:
    # The emulator's own answer to a batch it cannot parse (it fails upsert batches so).
    def refuse_batches(request: web.Request) -> web.Response | None:
        if _is_batch(request):
            return _cosmos_error(
                500, "Failed to parse x-ms-documentdb-partitionkey headers: undefined"
            )
        return None

    proxy.inject = refuse_batches
    store = await opened.add(CosmosEventStore(_config(proxy.endpoint)))
    a, b = stream_of(120, "a"), stream_of(30, "b", start=500)
    first = await store.append_batch([*a, *b])
    assert (first.written, first.duplicates) == (150, 0)
    probes = proxy.batches
    assert 1 <= probes <= 2  # one probe per stream written at once, then never again
    extra = stream_of(5, "a", start=200)
    again = await store.append_batch([*a[100:], *extra])
    assert (again.written, again.duplicates) == (5, 20)
    assert proxy.batches == probes
    assert await read_all(store, SCOPE, "a", 50) == [*a, *extra]
    assert await read_all(store, SCOPE, "b", 50) == b


@pytest.mark.parametrize(
    "message",
    [
        "Internal server error",
        # Batches worked before: even the "unsupported" answer is a real failure now.
        "Failed to parse x-ms-documentdb-partitionkey headers: undefined",
    ],
)
async def test_a_real_batch_failure_is_raised_not_swallowed(
    proxy: FaultProxy, opened: OpenedStores, message: str
) -> None:
    store = await opened.add(CosmosEventStore(_config(proxy.endpoint)))
    await store.append_batch(stream_of(3))  # the batch path works here
    proxy.inject = lambda r: _cosmos_error(500, message) if _is_batch(r) else None
    events = stream_of(4, start=10)
    with pytest.raises(StoreUnavailable, match="500"):
        await store.append_batch(events)
    cursor = await store.cursor(SCOPE, "s1")
    assert cursor is not None
    assert cursor.position == 2  # nothing became visible
    proxy.inject = None
    before = proxy.batches
    assert (await store.append_batch(events)).written == 4
    assert proxy.batches == before + 1  # still batching: no silent downgrade


async def test_a_refused_write_leaves_no_identity_claim_behind(
    proxy: FaultProxy, opened: OpenedStores
) -> None:
    """The sink dead-letters events a store refuses: their identity claims must go too,
    or a later event of the scope with that id would wait for their body forever."""
    store = await opened.add(CosmosEventStore(_config(proxy.endpoint)))
    await store.append_batch(stream_of(2))  # the batch path works here
    refused = stored(10, "s1")
    proxy.inject = lambda r: (
        _cosmos_error(413, "Request size is too large") if _is_batch(r) else None
    )
    with pytest.raises(StorePermanentError, match="413"):
        await store.append_batch([refused])
    proxy.inject = None
    # The id was never stored: another stream of the scope may use it.
    elsewhere = same_id(refused, 20, stream_id="s2")
    assert (await store.append_batch([elsewhere])).written == 1
    assert await store.get(SCOPE, refused.event_id) == elsewhere


async def test_throttling_is_retried_then_mapped_with_retry_after(
    proxy: FaultProxy, opened: OpenedStores
) -> None:
    throttled = 0

    def throttle(limit: int) -> Inject:
        def inject(request: web.Request) -> web.Response | None:
            nonlocal throttled
            if not _is_batch(request) or throttled >= limit:
                return None
            throttled += 1
            return _cosmos_error(429, "Request rate is large", **{"x-ms-retry-after-ms": "20"})

        return inject

    config = _config(proxy.endpoint, throttle_retries=3, throttle_max_wait_s=5)
    store = await opened.add(CosmosEventStore(config))
    proxy.inject = throttle(2)  # the SDK waits x-ms-retry-after-ms and tries again
    assert (await store.append_batch(stream_of(5))).written == 5
    assert throttled == 2
    proxy.inject, throttled = throttle(10_000), 0
    with pytest.raises(StoreUnavailable, match="throttling") as info:
        await store.append_batch(stream_of(5, start=10))
    assert info.value.retry_after_s == pytest.approx(0.02)
    assert info.value.retriable
    assert throttled == 4  # the first try and three retries


async def test_concurrent_writers_race_the_watermark_forward_only(
    cosmos: CosmosEmulator, opened: OpenedStores
) -> None:
    config = _config(cosmos.endpoint)
    stores = [await opened.add(CosmosEventStore(config)) for _ in range(3)]
    events = stream_of(15, "race", step=5)

    async def writer(store: CosmosEventStore, seed: int) -> None:
        order = events[:]
        random.Random(seed).shuffle(order)
        for event in order:
            await store.append_batch([event])

    await asyncio.gather(*(writer(store, seed) for seed, store in enumerate(stores)))
    cursor = await stores[0].cursor(SCOPE, "race")
    assert cursor is not None
    assert (cursor.position, cursor.last_event_id) == (70, events[-1].event_id)
    assert await read_all(stores[1], SCOPE, "race") == events


async def test_layout_and_compressed_large_bodies(
    cosmos: CosmosEmulator, opened: OpenedStores
) -> None:
    config = _config(cosmos.endpoint)
    store = await opened.add(CosmosEventStore(config))
    small = stored(3, "orders/o-1")
    large = stored(4, "orders/o-1", payload={"blob": "x" * (300 * 1024)})
    await store.append_batch([small, large])
    pk = "t_acme|dev|lab|p_core|orders/o-1"
    async with CosmosClient(cosmos.endpoint, COSMOS_EMULATOR_KEY, connection_verify=False) as c:
        container = c.get_database_client(config.database).get_container_client(
            config.events_container
        )
        items = [
            item
            async for item in container.query_items(
                "SELECT * FROM c WHERE c.pk = @pk", parameters=[{"name": "@pk", "value": pk}]
            )
        ]
    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {small.event_id, large.event_id, "_cursor"}
    assert json.loads(by_id[small.event_id]["body"])["event_id"] == small.event_id
    assert "bodyz" in by_id[large.event_id]
    assert len(by_id[large.event_id]["bodyz"]) < 10_000  # compressed
    assert (by_id["_cursor"]["watermark"], by_id["_cursor"]["last_event_id"]) == (4, large.event_id)
    assert await store.get(SCOPE, large.event_id) == large


def test_a_1_mib_incompressible_event_fits_one_item() -> None:
    # Worst case for the 2 MB item limit: random non-ASCII text, escaped by the SDK.
    rng = random.Random(3)
    text = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(340_000))
    item = _event_item("pk", stored(0, payload={"t": text}))
    serialized = json.dumps(item, separators=(",", ":"))  # the SDK's encoding
    assert len(text.encode()) > 1_000_000
    assert len(serialized) < 2_000_000


@pytest.mark.chaos
async def test_stopped_server_maps_to_store_unavailable(opened: OpenedStores) -> None:
    server = CosmosEmulator()
    start_or_skip(server, "The Cosmos emulator")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(KEY_ENV, COSMOS_EMULATOR_KEY)
            config = _config(server.endpoint)
            store = await opened.add(CosmosEventStore(config))
            await store.append_batch(stream_of(2))
            server.stop()
            # At once: the SDK tries each call for ~2 s before it gives up.
            failures = await asyncio.gather(
                store.append_batch(stream_of(2, start=5)),
                store.list_after(SCOPE, "s1"),
                store.ping(),
                CosmosTabularStore(config).open(),
                return_exceptions=True,
            )
    finally:
        server.stop()
    for failure in failures:
        assert isinstance(failure, StoreUnavailable), failure
        assert failure.retriable
        assert "unreachable" in str(failure)
        assert config.database in str(failure)


async def test_closed_port_on_open_is_unavailable(cosmos: CosmosEmulator) -> None:
    config = _config(f"https://{HOST}:{free_port()}/")
    with pytest.raises(StoreUnavailable, match="unreachable") as info:
        await CosmosEventStore(config).open()
    assert info.value.retriable


@pytest.mark.skipif(
    importlib.util.find_spec("azure.identity") is not None,
    reason="azure-identity is installed: the default credential chain is used instead",
)
async def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPINE_TEST_NO_KEY", raising=False)
    store = CosmosEventStore(_config("https://127.0.0.1:1/", key_env="SPINE_TEST_NO_KEY"))
    with pytest.raises(ConfigurationError, match="SPINE_TEST_NO_KEY"):
        await store.open()


def test_config_never_holds_a_key() -> None:
    with pytest.raises(ValidationError):
        CosmosConfig(endpoint="https://x/", database="d", key="secret")  # type: ignore[call-arg]
    assert CosmosConfig(endpoint="https://x/", database="d").verify_tls is True

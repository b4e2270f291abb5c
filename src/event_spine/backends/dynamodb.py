"""DynamoDB backend (aioboto3): EventStore, RegistryStore and TabularStore.

One table per resource kind (names in ``DynamoConfig``), each keyed by a String
``pk`` and a sort key ``sk``; no secondary index, so every read is strongly
consistent (a GSI is not: a cursor could name an event a read cannot see yet).
Events table (``sk`` Number), four key spaces told apart by the ``pk`` prefix::

    ev#<tenant>|<env>|<mode>|<project>|<stream>  sk=position  e=event id,
        b=body part 0 (Binary), n=part count (only if > 1)
    part#<event_id>  sk=1..n-1  b=the rest of a body larger than one item
    id#<event_id>    sk=0       s=the event's ev# pk, p=its position
    wm#<tenant>|<env>|<mode>|<project>|<stream>  sk=0  p=watermark, e=its event id

Registry (``sk`` String): pk=<kind>|<tenant>|<env>|<project>, sk=<mode>, v=version,
b=route JSON. Tabular (``sk`` String): pk=<tenant>|<env>|<mode>|<project>|<table>,
sk=row key, v=value JSON. ``|`` and ``#`` appear in no id format.

A stream is one partition key: a page is one Query on a position range, never offset
paging. The id# item finds an event by id alone (scope checks, cursors) and dedupes
by id (a producer retry can carry one event at two offsets). One append_batch costs
two item writes and two reads per event:

1. BatchGetItem the id# items and the ev# items at the batch's positions: found ids
   are duplicates; a new id at a taken position means reused offsets (a recreated
   topic) and is refused (StorePermanentError), never shadowed.
2. BatchWriteItem the ev#/part# items (25 a call, in parallel; UnprocessedItems
   retried with bounded exponential backoff and jitter, then StoreUnavailable).
3. BatchWriteItem the id# items, only now: an id# item means the event is durable
   (after a crash before it, the redelivery finds no id# item and rewrites).
4. One UpdateItem per stream, ``attribute_not_exists(p) OR p < :p``: the watermark
   only moves forward, which also fences a zombie writer.

Keys derive from the event, so a redelivery overwrites identical content. Step 1 is
check-then-write: writers racing different events onto one position could both pass
it, but racing writers of one partition (a zombie, its successor) carry the same
events at the same offsets.
Items hold 400 KB at most: a body is cut into ``PART_BYTES`` parts, part 0 in the
ev# item (most events are one item), the rest in part# items (1 MiB = 3 items).
Production creates the tables with IaC (the key schema above); ``create_tables``
(on-demand billing) is for development and tests. Credentials come from the SDK's
default chain, never from the config.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, ClassVar, Final, TypeVar

import aioboto3
import botocore.exceptions as boto  # type: ignore[import-untyped, unused-ignore]
import orjson
from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field

from event_spine.backends.base import (
    AppendResult,
    EventStoreBase,
    StreamBatch,
    StreamCursor,
    StreamKey,
    record_from_json,
    record_to_json,
)
from event_spine.errors import (
    ConcurrentUpdate,
    ConfigurationError,
    StoreError,
    StorePermanentError,
    StoreUnavailable,
)
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

T = TypeVar("T")
Item = dict[str, Any]
Pending = tuple[str, StoredEvent]  # (ev# pk, event)

#: Body bytes per item: 400 KB item limit minus room for keys and attribute names.
PART_BYTES: Final = 380_000
_WRITE_CHUNK: Final = 25  # BatchWriteItem limit
_GET_CHUNK: Final = 100  # BatchGetItem limit
_TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"

# Retriable error codes (any 5xx too) and the pause they suggest. Setup problems (a
# missing table, refused credentials) are held, not dead-lettered: fixable, no loss.
_RETRY_AFTER_S: Final = {
    "ProvisionedThroughputExceededException": 1.0,
    "ThrottlingException": 1.0,
    "RequestLimitExceeded": 1.0,
    "LimitExceededException": 1.0,
    "ResourceNotFoundException": 30.0,
    "AccessDeniedException": 30.0,
    "UnrecognizedClientException": 30.0,
    "ExpiredTokenException": 30.0,
    "InvalidSignatureException": 30.0,
}


class DynamoConfig(BaseModel):
    """Route config of the DynamoDB backend (no credentials: the SDK chain provides them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events_table: str = Field(default="spine_events", pattern=_TABLE_NAME)
    registry_table: str = Field(default="spine_routes", pattern=_TABLE_NAME)
    tabular_table: str = Field(default="spine_rows", pattern=_TABLE_NAME)
    region: str | None = Field(default=None, description="None: the SDK's default region.")
    endpoint_url: str | None = Field(default=None, description="DynamoDB Local, for tests.")
    create_tables: bool = Field(default=False, description="Create missing tables (dev only).")
    max_attempts: int = Field(default=3, ge=1, le=20, description="SDK attempts per call.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=16, ge=1, le=256, description="Batch calls in flight.")
    unprocessed_retries: int = Field(default=8, ge=0, le=30)
    backoff_base_s: float = Field(default=0.05, gt=0)
    backoff_cap_s: float = Field(default=2.0, gt=0)


def _s(value: str) -> Item:
    return {"S": value}


def _n(value: int) -> Item:
    return {"N": str(value)}


def _key(pk: str, sk: int | str) -> Item:
    return {"pk": _s(pk), "sk": _n(sk) if isinstance(sk, int) else _s(sk)}


def _map_error(exc: Exception, what: str) -> Exception:
    """An SDK error as the spine's tree; anything unknown is returned unchanged."""
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        retry_after = _RETRY_AFTER_S.get(code, 1.0 if status >= 500 else None)
        if retry_after is not None:
            hint = "" if retry_after < 30 else "; check the table and the credentials"
            return StoreUnavailable(f"DynamoDB {what}: {code}: {message}{hint}", retry_after)
        return StorePermanentError(f"DynamoDB {what} refused the request ({code}): {message}")
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        return StoreUnavailable(f"DynamoDB {what} is unreachable: {exc}", 1.0)
    if isinstance(
        exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError
    ):
        return StoreUnavailable(f"DynamoDB {what}: no usable AWS credentials: {exc}", 30.0)
    if isinstance(exc, boto.NoRegionError):
        return ConfigurationError(f"DynamoDB {what}: no region (set `region` or AWS_REGION)")
    if isinstance(exc, boto.BotoCoreError):
        return StorePermanentError(f"DynamoDB {what} refused the request: {exc}")
    return exc


def _error_code(exc: BaseException | None) -> str:
    response = exc.response if isinstance(exc, boto.ClientError) else {}
    return str(response.get("Error", {}).get("Code", ""))


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro) for coro in coros]
    except ExceptionGroup as failed:
        errors = failed.exceptions
        # Prefer a retriable error: a permanent one will show again on the retry.
        raise next((e for e in errors if isinstance(e, StoreUnavailable)), errors[0]) from None
    return [task.result() for task in tasks]


class DynamoTable:
    """One table through one aioboto3 client: mapped errors and batch helpers."""

    def __init__(self, config: DynamoConfig, table: str, sort_type: str, session: Any) -> None:
        """``sort_type``: "S" or "N"; ``session``: aioboto3's, None for the default chain."""
        self.config = config
        self.name = table
        self._sort_type = sort_type
        self._session = session or aioboto3.Session()
        self._opened: Any = None  # the client's async context manager
        self._client: Any = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self.what = f"table {table!r}"

    async def open(self) -> None:
        """Create the client (and the table when ``create_tables`` is set). Idempotent."""
        if self._client is not None:
            return
        cfg = self.config
        aio_config = AioConfig(
            retries={"mode": "standard", "max_attempts": cfg.max_attempts},
            connect_timeout=cfg.connect_timeout_s,
            read_timeout=cfg.read_timeout_s,
            max_pool_connections=cfg.max_concurrency,
            parameter_validation=False,  # the service validates; saves ~20% client CPU
        )
        opened = self._session.client(
            "dynamodb", region_name=cfg.region, endpoint_url=cfg.endpoint_url, config=aio_config
        )
        try:
            self._client = await opened.__aenter__()
        except Exception as exc:
            raise _map_error(exc, self.what) from exc
        self._opened = opened
        if cfg.create_tables:
            await self._ensure_table()

    async def close(self) -> None:
        """Close the client's connections."""
        opened, self._opened, self._client = self._opened, None, None
        if opened is not None:
            await opened.__aexit__(None, None, None)

    async def _ensure_table(self) -> None:
        """Create the table on-demand if missing and wait until it is active."""
        try:
            await self._raw("create_table", **self.schema())
        except StoreError as exc:
            if _error_code(exc.__cause__) != "ResourceInUseException":
                raise
        waiter = self._client.get_waiter("table_exists")
        try:
            await waiter.wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        except Exception as exc:
            raise StoreUnavailable(f"DynamoDB {self.what} did not become active: {exc}") from exc

    def schema(self) -> dict[str, Any]:
        """CreateTable arguments: the key schema real deployments create."""
        keys = (("pk", "HASH", "S"), ("sk", "RANGE", self._sort_type))
        return {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": n, "KeyType": k} for n, k, _ in keys],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, _, t in keys],
            "BillingMode": "PAY_PER_REQUEST",
        }

    async def _raw(self, operation: str, **kwargs: Any) -> Item:
        if self._client is None:
            raise RuntimeError(f"DynamoDB {self.what}: the store is not open")
        try:
            response: Item = await getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise _map_error(exc, self.what) from exc
        return response

    async def call(self, operation: str, **kwargs: Any) -> Item:
        """One single-table operation (get_item, query, ...) on this table."""
        async with self._slots:  # bounds fan-out such as one watermark write per stream
            return await self._raw(operation, TableName=self.name, **kwargs)

    async def conditional(self, operation: str, **kwargs: Any) -> bool:
        """A conditional write; False when its condition did not hold."""
        try:
            await self.call(operation, **kwargs)
        except StoreError as exc:
            if _error_code(exc.__cause__) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def get(self, key: Item) -> Item | None:
        """One item, strongly consistent."""
        response = await self.call("get_item", Key=key, ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of concurrent writers apart.
        cap = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2**attempt)
        return random.uniform(0, cap)

    def _gave_up(self, left: int, verb: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"DynamoDB {self.what}: {left} items still un{verb} after "
            f"{self.config.unprocessed_retries + 1} attempts (throttled)",
            self.config.backoff_cap_s,
        )

    async def put_all(self, items: list[Item]) -> None:
        """BatchWriteItem every item: 25 a call, calls in parallel, bounded retries."""
        requests = [{"PutRequest": {"Item": item}} for item in items]
        chunks = [requests[i : i + _WRITE_CHUNK] for i in range(0, len(requests), _WRITE_CHUNK)]
        await _all(self._write_chunk(chunk) for chunk in chunks)

    async def _write_chunk(self, requests: list[Item]) -> None:
        pending: Item = {self.name: requests}
        async with self._slots:  # held while backing off: a throttled table gets less load
            for attempt in range(self.config.unprocessed_retries + 1):
                response = await self._raw("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending.get(self.name):
                    return
                await asyncio.sleep(self._backoff(attempt))
        raise self._gave_up(len(pending[self.name]), "processed")

    async def get_all(self, keys: list[Item], projection: str | None = None) -> list[Item]:
        """BatchGetItem (consistent) every key: 100 a call; missing keys are absent."""
        chunks = [keys[i : i + _GET_CHUNK] for i in range(0, len(keys), _GET_CHUNK)]
        pages = await _all(self._get_chunk(chunk, projection) for chunk in chunks)
        return [item for page in pages for item in page]

    async def _get_chunk(self, keys: list[Item], projection: str | None) -> list[Item]:
        request: Item = {"Keys": keys, "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        found: list[Item] = []
        async with self._slots:
            for attempt in range(self.config.unprocessed_retries + 1):
                response = await self._raw("batch_get_item", RequestItems={self.name: request})
                found.extend(response.get("Responses", {}).get(self.name, []))
                unprocessed = (response.get("UnprocessedKeys") or {}).get(self.name)
                if not unprocessed:
                    return found
                request = unprocessed  # keeps ConsistentRead and the projection
                await asyncio.sleep(self._backoff(attempt))
        raise self._gave_up(len(request["Keys"]), "read")

    async def pages(self, operation: str, **kwargs: Any) -> AsyncIterator[list[Item]]:
        """Every page of a scan or query (ExclusiveStartKey continuation)."""
        while True:
            response = await self.call(operation, ConsistentRead=True, **kwargs)
            yield response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


class _OneTable:
    """A store that lives in one table: its client, open and close."""

    _table_field: ClassVar[str]  # the DynamoConfig field naming the table
    _sort_type: ClassVar[str] = "S"

    def __init__(self, config: DynamoConfig, session: aioboto3.Session | None = None) -> None:
        """``session``: an aioboto3 session; None uses the SDK's default chain."""
        self.config = config
        table = getattr(config, self._table_field)
        self._table = DynamoTable(config, table, self._sort_type, session)

    async def open(self) -> None:
        """Create the client (and the table if ``create_tables``)."""
        await self._table.open()

    async def close(self) -> None:
        """Release the client."""
        await self._table.close()


def _stream_pk(key: StreamKey) -> str:
    return f"ev#{key.text()}"


def _event_items(pk: str, event: StoredEvent) -> list[Item]:
    """The ev# item, plus part# items when the body is larger than one part."""
    body = record_to_json(event.record)
    parts = [body[i : i + PART_BYTES] for i in range(0, len(body), PART_BYTES)]
    event_id = event.record.event_id
    head: Item = {**_key(pk, event.position), "e": _s(event_id), "b": {"B": parts[0]}}
    if len(parts) > 1:
        head["n"] = _n(len(parts))
    rest = [{**_key(f"part#{event_id}", i), "b": {"B": part}} for i, part in enumerate(parts)]
    return [head, *rest[1:]]


def _id_item(pk: str, event: StoredEvent) -> Item:
    return {**_key(f"id#{event.record.event_id}", 0), "s": _s(pk), "p": _n(event.position)}


class DynamoEventStore(_OneTable, EventStoreBase):
    """EventStore on one DynamoDB table (layout in the module docstring)."""

    _table_field = "events_table"
    _sort_type = "N"

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        events = [(_stream_pk(g.key), e) for g in groups for e in g.events]
        new = await self._new_events(events)
        # Order matters: bodies, then id# items, then watermarks (module docstring).
        await self._table.put_all([item for pk, e in new for item in _event_items(pk, e)])
        await self._table.put_all([_id_item(pk, e) for pk, e in new])
        await _all(self._advance(group) for group in groups)
        return AppendResult(len(new), len(events) - len(new))

    async def _new_events(self, events: list[Pending]) -> list[Pending]:
        """Drop ids already stored; refuse a new id at a taken position (reused offsets).

        One read phase for both: the id# items and the ev# items at the positions.
        Not atomic with the writes: two writers racing different events onto one
        position both pass (offsets reused later are caught).
        """
        taken: dict[tuple[str, int], str] = {}
        for pk, event in events:
            holder = taken.setdefault((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:
                raise self._collision(event, holder)
        keys = [_key(f"id#{e.record.event_id}", 0) for _, e in events]
        keys += [_key(pk, position) for pk, position in taken]
        found = await self._table.get_all(keys, "pk, sk, e")
        stored = {i["pk"]["S"][3:] for i in found if i["pk"]["S"].startswith("id#")}
        holders = {(i["pk"]["S"], int(i["sk"]["N"])): i["e"]["S"] for i in found if "e" in i}
        new = [(pk, e) for pk, e in events if e.record.event_id not in stored]
        for pk, event in new:
            holder = holders.get((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:  # same id: a crash before its id# item
                raise self._collision(event, holder)
        return new

    def _collision(self, event: StoredEvent, holder: str) -> StorePermanentError:
        return StorePermanentError(
            f"DynamoDB {self._table.what}: event {event.record.event_id!r} collides with "
            f"{holder!r} at stream position {event.position}: were the topic's offsets "
            f"reset? Replay into a fresh table."
        )

    async def _advance(self, group: StreamBatch) -> None:
        last = group.watermark
        # Condition failed = the stored watermark is already at or past ours: fine.
        await self._table.conditional(
            "update_item",
            Key=_key(f"wm#{group.key.text()}", 0),
            UpdateExpression="SET #p = :p, #e = :e",
            ConditionExpression="attribute_not_exists(#p) OR #p < :p",
            ExpressionAttributeNames={"#p": "p", "#e": "e"},
            ExpressionAttributeValues={":p": _n(last.position), ":e": _s(last.record.event_id)},
        )

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        item = await self._table.get(_key(f"wm#{key.text()}", 0))
        if item is None:
            return None
        return StreamCursor(key.stream_id, int(item["p"]["N"]), item["e"]["S"])

    async def _load_event(self, event_id: str) -> StoredEvent | None:
        index = await self._table.get(_key(f"id#{event_id}", 0))
        if index is None:
            return None
        head = await self._table.get(_key(index["s"]["S"], int(index["p"]["N"])))
        if head is None:  # never written by _write: id# items follow their events
            raise StorePermanentError(
                f"DynamoDB {self._table.what}: event {event_id!r} is indexed but missing"
            )
        return (await self._assemble([head]))[0]

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        heads: list[Item] = []
        low, pk = after_position + 1, _s(_stream_pk(key))
        # Each round trip is a fresh range (a Query page stops at 1 MB).
        while len(heads) < limit and low <= upto_position:
            values = {":pk": pk, ":low": _n(low), ":high": _n(upto_position)}
            response = await self._table.call(
                "query",
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=values,
                ConsistentRead=True,
                Limit=limit - len(heads),
            )
            heads.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            low = int(last["sk"]["N"]) + 1
        return await self._assemble(heads)

    async def _assemble(self, heads: list[Item]) -> list[StoredEvent]:
        """Decode ev# items, fetching the part# items of multi-part bodies."""
        wanted = [
            _key(f"part#{head['e']['S']}", i)
            for head in heads
            for i in range(1, int(head.get("n", {}).get("N", 1)))
        ]
        parts = {
            (item["pk"]["S"][5:], int(item["sk"]["N"])): item["b"]["B"]
            for item in (await self._table.get_all(wanted) if wanted else [])
        }
        events = []
        for head in heads:
            event_id, count = head["e"]["S"], int(head.get("n", {}).get("N", 1))
            try:
                rest = [parts[event_id, i] for i in range(1, count)]
            except KeyError:
                raise StorePermanentError(
                    f"DynamoDB {self._table.what}: a part of event {event_id!r} is missing"
                ) from None
            body = b"".join([head["b"]["B"], *rest])
            events.append(StoredEvent(record_from_json(body), int(head["sk"]["N"])))
        return events


def _route_pk(kind: ResourceKind, tenant_id: str, env: str, project_id: str, *_: str) -> str:
    return f"{kind.value}|{tenant_id}|{env}|{project_id}"


def _route_of(item: Item) -> ResourceRoute:
    return ResourceRoute.model_validate_json(item["b"]["S"])


class DynamoRegistryStore(_OneTable):
    """RegistryStore on DynamoDB: one item per route, compare-and-set on ``version``."""

    _table_field = "registry_table"

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        item = await self._table.get(_key(_route_pk(*key), key.mode))
        return None if item is None else _route_of(item)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode (one Query on the partition)."""
        pk = _route_pk(resource_kind, tenant_id, env, project_id)
        pages = self._table.pages(
            "query", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s(pk)}
        )
        return [_route_of(item) async for page in pages for item in page]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route (a Scan: the registry is small and read rarely)."""
        return [_route_of(item) async for page in self._table.pages("scan") for item in page]

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Conditional put: the stored version must be ``expected_version`` (0: absent)."""
        item = {
            **_key(_route_pk(*route.key()), route.mode),
            "v": _n(route.version),
            "b": _s(route.model_dump_json()),
        }
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "v"},
                "ExpressionAttributeValues": {":v": _n(expected_version)},
            }
        if not await self._table.conditional("put_item", Item=item, **condition):
            raise ConcurrentUpdate(
                f"{route.describe()} changed since it was read (expected version "
                f"{expected_version})"
            )


def _rows_pk(scope: Scope, table: str) -> str:
    return "|".join((*scope.key(), table))


class DynamoTabularStore(_OneTable):
    """TabularStore on DynamoDB: pk = scope|table, sk = row key, v = JSON."""

    _table_field = "tabular_table"

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (rows are limited to DynamoDB's 400 KB item size)."""
        item = {**_key(_rows_pk(scope, table), key), "v": _s(orjson.dumps(value).decode())}
        await self._table.call("put_item", Item=item)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        item = await self._table.get(_key(_rows_pk(scope, table), key))
        return None if item is None else _value(item)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; the old item tells whether it existed."""
        response = await self._table.call(
            "delete_item", Key=_key(_rows_pk(scope, table), key), ReturnValues="ALL_OLD"
        )
        return bool(response.get("Attributes"))

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, key > after_key, in key order: range queries, no offsets."""
        rows: list[tuple[str, dict[str, Any]]] = []
        after = after_key
        while len(rows) < limit:
            response = await self._table.call(
                "query",
                ConsistentRead=True,
                Limit=limit - len(rows),
                **_rows_range(_rows_pk(scope, table), prefix, after),
            )
            for item in response.get("Items", []):
                key = item["sk"]["S"]
                if not key.startswith(prefix):  # keys are sorted: past the prefix range
                    return rows
                rows.append((key, _value(item)))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            after = last["sk"]["S"]
        return rows


def _rows_range(pk: str, prefix: str, after: str | None) -> dict[str, Any]:
    """begins_with(prefix) while ``after`` sorts below the prefix (every key with it
    sorts above), else ``sk > after``, the caller stopping at the first key without it."""
    values: dict[str, Any] = {":pk": _s(pk)}
    condition = "pk = :pk"
    if after is not None and after >= prefix:
        condition += " AND sk > :after"
        values[":after"] = _s(after)
    elif prefix:
        condition += " AND begins_with(sk, :prefix)"
        values[":prefix"] = _s(prefix)
    return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}


def _value(item: Item) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(item["v"]["S"])
    return value

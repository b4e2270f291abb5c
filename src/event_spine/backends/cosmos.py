"""Azure Cosmos DB (NoSQL API) stores on the async SDK ``azure.cosmos.aio``.

Layout: one database, a container per resource kind, each partitioned on ``/pk``
(hash, partition key version 2: keys up to 2 KB hash whole).

- events: ``pk = "<tenant>|<env>|<mode>|<project>|<stream>"``; item ``id = event_id``,
  ``position`` (a number), the record JSON in ``body`` or, above 256 KiB, zlib +
  base64 in ``bodyz`` (so a 1 MiB event stays under the 2 MB item limit whatever its
  content; the SDK escapes non-ASCII up to 3x). The watermark is the item ``id =
  "_cursor"`` (``watermark``, ``last_event_id``) in the stream's own partition.
  Index all but ``/body/?`` and ``/bodyz/?``; ranges need ``/position`` (default).
- registry: ``pk = "<kind>|<tenant>|<env>|<project>"``, ``id = mode``, ``route``, ``version``.
- tabular: ``pk = "<tenant>|<env>|<mode>|<project>|<table>"``, ``id`` = base64url(key)
  (ids forbid ``/``, max 1023 bytes), ``key``, ``data`` (``/data/*`` not indexed).

Why: a stream is one logical partition, so its range read is a single-partition
query (``position > after ORDER BY position``, never OFFSET), its writes can be
transactional batches, and its watermark shares the partition where Cosmos keeps
writes in order: a reader that sees the watermark sees the events below it.
Writes: one query per stream finds which of its ids, or which events in its position
range, are stored; known ids are duplicates, another event at a wanted position
means reused offsets and is refused (StorePermanentError). The rest go as ``create``
operations, at most 100 / ~1.5 MB per batch: create never overwrites, so an event
never moves; a 409 (a racing writer) re-reads and retries the rest. If the server
cannot parse batches (405/501, or the answer names the partition-key header or says
"not supported") before any batch worked, the store falls back to concurrent single
creates (``max_concurrency``); any other batch failure is raised, never swallowed.
The watermark then moves forward only: read, compare, replace under the etag
(412, or 409 on first create: re-read). ``get`` by id alone is a cross-partition
query on ``id`` (always indexed): a fan-out, but an id index would double every
write into one hot partition. Point reads are queries on ``c.pk`` and ``c.id``
(a few RU over ``read_item``, answered alike everywhere). Positions are doubles in
Cosmos: checked below 2**53. Credentials never sit in the route config: the account
key comes from the variable named by ``key_env``, else azure-identity's
``DefaultAzureCredential`` when installed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import zlib
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar, cast

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
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

log = logging.getLogger(__name__)

Item = dict[str, Any]
T = TypeVar("T")

_CURSOR_ID: Final = "_cursor"
_BATCH_MAX_OPS: Final = 100
# Estimated request bytes per batch; the service limit is 2 MB.
_BATCH_MAX_BYTES: Final = 1_500_000
_INLINE_BODY_MAX: Final = 256 * 1024
_MAX_POSITION: Final = 2**53
_ATTEMPTS: Final = 20
_NAME: Final = r"^[^/\\?#]{1,255}$"  # Cosmos resource ids
_RETRIABLE_STATUS: Final = frozenset({408, 410, 429, 449, 500, 502, 503, 504})

_BY_ID_IN_PK: Final = "SELECT * FROM c WHERE c.pk = @pk AND c.id = @id"
# The batch's ids, any event in its position range, and the watermark: one round trip.
_STORED: Final = (
    "SELECT c.id, c.position, c.watermark, c._etag FROM c WHERE c.pk = @pk AND (c.id = @cursor"
    " OR ARRAY_CONTAINS(@ids, c.id) OR (c.position >= @lo AND c.position <= @hi))"
)
_EVENT_BY_ID: Final = "SELECT c.position, c.body, c.bodyz FROM c WHERE c.id = @id"
_RANGE: Final = (
    "SELECT c.position, c.body, c.bodyz FROM c WHERE c.pk = @pk"
    " AND c.position > @after AND c.position <= @upto ORDER BY c.position"
)


def _indexing(*excluded: str) -> dict[str, Any]:
    """Index every path but the big or never-filtered ones."""
    paths = [{"path": path} for path in (*excluded, '/"_etag"/?')]
    return {"indexingMode": "consistent", "includedPaths": [{"path": "/*"}], "excludedPaths": paths}


class CosmosConfig(BaseModel):
    """Route config of the cosmos backend. The account key is never part of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(pattern=r"^https?://", description="Account URL (or an emulator's).")
    database: str = Field(pattern=_NAME)
    events_container: str = Field(default="spine_events", pattern=_NAME)
    registry_container: str = Field(default="spine_routes", pattern=_NAME)
    tabular_container: str = Field(default="spine_rows", pattern=_NAME)
    # Creating needs the account key (Entra ID data-plane roles cannot): else provision first.
    create_if_missing: bool = Field(default=True, description="Create database/containers.")
    key_env: str = Field(default="COSMOS_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Only for an emulator's self-signed certificate; production always verifies.
    verify_tls: bool = True
    request_timeout_s: float = Field(default=30.0, gt=0)
    # The SDK retries 429s itself, honouring x-ms-retry-after-ms, up to these bounds.
    throttle_retries: int = Field(default=9, ge=1)
    throttle_max_wait_s: int = Field(default=30, ge=1)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    transactional_batch: bool = Field(default=True, description="False: single creates only.")


class _Container:
    """One client on one container of the account, opened by the store's open()."""

    def __init__(self, config: CosmosConfig, name: str, indexing: dict[str, Any] | None) -> None:
        self.config = config
        self.name = name
        self.what = f"Cosmos container {config.database}/{name}"
        self._indexing = indexing
        self._client: Any = None
        self._credential: Any = None
        self.proxy: Any = None  # the SDK's ContainerProxy, once open

    async def open(self) -> None:
        """Connect, create the database and container if allowed, check the key path."""
        if self.proxy is not None:
            return
        self._credential = _credential(self.config)
        cfg = self.config
        try:
            with _mapped(self.what):
                self._client = CosmosClient(
                    cfg.endpoint,
                    self._credential,
                    connection_verify=cfg.verify_tls,
                    connection_timeout=cfg.request_timeout_s,
                    read_timeout=cfg.request_timeout_s,
                    retry_throttle_total=cfg.throttle_retries,
                    retry_throttle_backoff_max=cfg.throttle_max_wait_s,
                    user_agent_suffix="event-spine",
                )
                await self._client.__aenter__()
                proxy = await self._container()
                properties = await proxy.read()
        except BaseException:
            await self.close()
            raise
        paths = properties.get("partitionKey", {}).get("paths")
        if paths != ["/pk"]:
            await self.close()
            raise StorePermanentError(f"{self.what} is partitioned on {paths}, not ['/pk']")
        self.proxy = proxy

    async def _container(self) -> Any:
        cfg = self.config
        if not cfg.create_if_missing:
            return self._client.get_database_client(cfg.database).get_container_client(self.name)
        database = await self._client.create_database_if_not_exists(cfg.database)
        return await database.create_container_if_not_exists(
            self.name,
            partition_key=PartitionKey(path="/pk", kind="Hash", version=2),
            indexing_policy=self._indexing,
        )

    async def close(self) -> None:
        """Close the client (and a token credential, if one was made)."""
        client, credential = self._client, self._credential
        self._client = self._credential = self.proxy = None
        if client is not None:
            await client.close()
        if credential is not None and not isinstance(credential, str):
            await credential.close()

    async def query(
        self, sql: str, params: dict[str, Any], pk: str | None, limit: int | None = None
    ) -> list[Any]:
        """Run a parameterized query; single-partition when ``pk`` is given."""
        kwargs: dict[str, Any] = {"partition_key": pk} if pk is not None else {}
        parameters = [{"name": name, "value": value} for name, value in params.items()]
        out: list[Any] = []
        with _mapped(self.what):
            pages = self.proxy.query_items(
                sql, parameters=parameters, max_item_count=limit, **kwargs
            )
            async for item in pages:
                out.append(item)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def find(self, pk: str, item_id: str) -> Item | None:
        """One item by partition and id (a query: answered alike by every server)."""
        found = await self.query(_BY_ID_IN_PK, {"@pk": pk, "@id": item_id}, pk, 1)
        return found[0] if found else None

    async def swap(self, body: Item, current: Item | None) -> bool:
        """Create ``body``, or replace ``current`` if unchanged (etag); False if raced."""
        with _mapped(self.what):
            try:
                if current is None:
                    await self.proxy.create_item(body)
                else:
                    await self.proxy.replace_item(
                        body["id"],
                        body,
                        etag=current["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (CosmosResourceExistsError, CosmosAccessConditionFailedError):
                return False
        return True


class _OneContainer:
    """A store on one container: open() connects (and creates), close() releases."""

    _store: _Container

    async def open(self) -> None:
        """Connect and create the database and container if allowed."""
        await self._store.open()

    async def close(self) -> None:
        """Close the client."""
        await self._store.close()


def _credential(config: CosmosConfig) -> Any:
    key = os.environ.get(config.key_env)
    if key:
        return key
    try:
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - optional
    except ImportError as exc:
        raise ConfigurationError(
            f"Cosmos store at {config.endpoint}: no account key in ${config.key_env} and "
            f"azure-identity is not installed; set `{config.key_env}` or install azure-identity."
        ) from exc
    return DefaultAzureCredential()


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except (AzureError, OSError, TimeoutError) as exc:
        raise _store_error(exc, what) from exc


def _store_error(exc: BaseException, what: str) -> StoreError:
    status = getattr(exc, "status_code", None)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not status:  # no answer at all: refused, reset, timed out
        return StoreUnavailable(f"{what} is unreachable: {reason}")
    if status == 429:
        return StoreUnavailable(
            f"{what} is throttling (429) after the SDK's retries; slow down or add RU/s",
            retry_after_s=_retry_after_s(exc),
        )
    if status in _RETRIABLE_STATUS:
        return StoreUnavailable(f"{what} is unavailable ({status}): {reason}")
    return StorePermanentError(f"{what} refused the request ({status}): {reason}")


def _retry_after_s(exc: BaseException) -> float | None:
    headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
    try:
        return float(headers["x-ms-retry-after-ms"]) / 1000.0
    except (KeyError, ValueError):
        return None


def _batch_unsupported(exc: CosmosHttpResponseError) -> bool:
    """Did the server fail to understand the batch request itself (not its content)?"""
    message = str(exc).lower()
    hint = "x-ms-documentdb-partitionkey" in message or "not supported" in message
    return exc.status_code in (405, 501) or (exc.status_code in (400, 500) and hint)


def _event_item(pk: str, event: StoredEvent) -> Item:
    if not 0 <= event.position < _MAX_POSITION:
        raise StorePermanentError(
            f"Cosmos store: position {event.position} of event {event.event_id!r} is outside"
            f" [0, 2**53): Cosmos numbers are doubles."
        )
    raw = record_to_json(event.record)
    item: Item = {"id": event.record.event_id, "pk": pk, "position": event.position}
    if len(raw) <= _INLINE_BODY_MAX:
        item["body"] = raw.decode()
    else:
        item["bodyz"] = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return item


def _event_from(item: Item) -> StoredEvent:
    body = item.get("bodyz")
    raw: bytes | str = zlib.decompress(base64.b64decode(body)) if body else item["body"]
    return StoredEvent(record_from_json(raw), int(item["position"]))


def _chunks(items: list[Item]) -> list[list[Item]]:
    """Split into transactional batches: at most 100 ops and ~1.5 MB each."""
    chunks: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        # Upper bound of the request bytes: the SDK escapes non-ASCII (up to 3x).
        body = item.get("bodyz") or item["body"]
        item_size = len(body) + 512 if "bodyz" in item else 3 * len(body.encode()) + 512
        if current and (len(current) >= _BATCH_MAX_OPS or size + item_size > _BATCH_MAX_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


async def _all(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Await all (none left running in the background), then raise the first error."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)


class _BatchUnsupported(Exception):
    """The server cannot run transactional batches; switch to single creates."""


class CosmosEventStore(_OneContainer, EventStoreBase):
    """EventStore on one Cosmos container (layout in the module docstring)."""

    def __init__(self, config: CosmosConfig) -> None:
        self.config = config
        self._events = self._store = _Container(
            config, config.events_container, _indexing("/body/?", "/bodyz/?")
        )
        self._limit = asyncio.Semaphore(config.max_concurrency)
        # None: not tried yet; the first batch runs alone so a refusal leaves no partial work.
        self._batch_ok: bool | None = None if config.transactional_batch else False

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        counts = await _all(self._write_group(group) for group in groups)
        return AppendResult(sum(c[0] for c in counts), sum(c[1] for c in counts))

    async def _write_group(self, group: StreamBatch) -> tuple[int, int]:
        pk = group.key.text()
        items = [_event_item(pk, event) for event in group.events]
        stored, cursor = await self._stored(pk, items)
        fresh = [item for item in items if item["id"] not in stored]
        written, duplicates = await self._create_events(pk, fresh) if fresh else (0, 0)
        # Only now, with every event of the group durable, may the watermark move.
        await self._advance(pk, group.watermark, cursor)
        return written, duplicates + len(stored)

    async def _stored(self, pk: str, items: list[Item]) -> tuple[set[str], Item | None]:
        """Ids of ``items`` already stored, and the watermark item (with its etag).

        Refuses when other events hold positions of ``items`` (reused offsets)."""
        positions = [item["position"] for item in items]
        ids = [item["id"] for item in items]
        params = {"@pk": pk, "@cursor": _CURSOR_ID, "@ids": ids}
        found = await self._events.query(
            _STORED, params | {"@lo": min(positions), "@hi": max(positions)}, pk
        )
        wanted = {item["position"]: item["id"] for item in items}
        stored = {hit["id"] for hit in found}
        for hit in found:
            mine = wanted.get(hit.get("position", -1))
            if mine is not None and mine != hit["id"] and mine not in stored:
                raise StorePermanentError(
                    f"{self._events.what}: event {mine!r} collides with {hit['id']!r} at "
                    f"position {hit['position']} of stream {pk!r}: were the topic's offsets "
                    f"reset? Replay into a fresh store."
                )
        cursor = next((hit for hit in found if hit["id"] == _CURSOR_ID), None)
        return stored & set(ids), cursor

    async def _create_events(self, pk: str, items: list[Item]) -> tuple[int, int]:
        chunks = _chunks(items)
        counts: list[tuple[int, int]] = []
        if self._batch_ok is None:
            # The first batch runs alone: a server that cannot parse it stored nothing.
            try:
                counts.append(await self._run_batch(pk, chunks[0]))
                self._batch_ok, chunks = True, chunks[1:]
            except _BatchUnsupported as exc:
                log.warning("%s: no transactional batch (%s); single creates", pk, exc)
                self._batch_ok = False
        if self._batch_ok:
            counts += await _all(self._run_batch(pk, chunk) for chunk in chunks)
        else:
            counts.append(await self._create_each(pk, [i for chunk in chunks for i in chunk]))
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    async def _run_batch(self, pk: str, chunk: list[Item]) -> tuple[int, int]:
        """One transactional batch of creates; on 409, drop the ids that exist and retry."""
        pending, written, duplicates = chunk, 0, 0
        for _ in range(_ATTEMPTS):
            if not pending:
                return written, duplicates
            conflict = await self._send_batch(pk, pending)
            if conflict is None:
                return written + len(pending), duplicates
            # Atomic on the service (the others answer 424); count what a lax server kept.
            done = {
                pending[i]["id"]
                for i, response in enumerate(conflict.operation_responses or [])
                if 200 <= int(response.get("statusCode", 0)) < 300
            }
            rest = [item for item in pending if item["id"] not in done]
            existing = (await self._stored(pk, rest))[0] if rest else set()
            pending = [item for item in rest if item["id"] not in existing]
            written, duplicates = written + len(done), duplicates + len(existing)
        raise StoreUnavailable(f"{self._events.what}: batch for {pk!r} kept conflicting")

    async def _send_batch(self, pk: str, items: list[Item]) -> CosmosBatchOperationError | None:
        """Run one batch; return its error if an id already exists (409)."""
        operations = [("create", (item,)) for item in items]
        async with self._limit:
            with _mapped(self._events.what):
                try:
                    await self._events.proxy.execute_item_batch(operations, partition_key=pk)
                except CosmosBatchOperationError as exc:
                    if exc.status_code == 409:
                        return exc
                    raise _store_error(exc, self._events.what) from exc
                except CosmosHttpResponseError as exc:
                    # Once batches worked, every failure is real: raised, never swallowed.
                    if self._batch_ok is not True and _batch_unsupported(exc):
                        raise _BatchUnsupported(str(exc).splitlines()[0]) from exc
                    raise
        return None

    async def _create_each(self, pk: str, items: list[Item]) -> tuple[int, int]:
        """Fallback without batches: concurrent creates; 409 means already stored."""

        async def create(item: Item) -> bool:
            async with self._limit:
                with _mapped(self._events.what):
                    try:
                        await self._events.proxy.create_item(item)
                    except CosmosResourceExistsError:
                        return False
            return True

        created = await _all(create(item) for item in items)
        written = sum(created)
        return written, len(items) - written

    async def _advance(self, pk: str, last: StoredEvent, current: Item | None) -> None:
        """Forward-only watermark: compare, then create or replace under the etag.

        ``current`` may be stale (read before the events were written): the etag
        catches that, and a lost race re-reads."""
        body = {"id": _CURSOR_ID, "pk": pk, "watermark": last.position}
        body["last_event_id"] = last.event_id
        for attempt in range(_ATTEMPTS):
            if attempt:
                current = await self._events.find(pk, _CURSOR_ID)
            if current is not None and current["watermark"] >= last.position:
                return  # a zombie's older batch, or a redelivery: nothing to move
            async with self._limit:
                if await self._events.swap(body, current):
                    return
            # Another writer moved it first: re-read and compare again.
        raise StoreUnavailable(f"{self._events.what}: watermark of {pk!r} kept racing")

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        item = await self._events.find(key.text(), _CURSOR_ID)
        if item is None:
            return None
        return StreamCursor(key.stream_id, int(item["watermark"]), item["last_event_id"])

    async def _load_event(self, event_id: str) -> StoredEvent | None:
        found = await self._events.query(_EVENT_BY_ID, {"@id": event_id}, None, 1)
        return _event_from(found[0]) if found else None

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        pk = key.text()
        params = {"@pk": pk, "@after": after_position, "@upto": upto_position}
        return [_event_from(item) for item in await self._events.query(_RANGE, params, pk, limit)]


class CosmosRegistryStore(_OneContainer):
    """RegistryStore on Cosmos: one item per route, compare-and-set through the etag."""

    def __init__(self, config: CosmosConfig) -> None:
        self._routes = self._store = _Container(config, config.registry_container, None)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        pk = "|".join(key[:4])  # kind, tenant, env, project
        item = await self._routes.find(pk, key.mode)
        return None if item is None else ResourceRoute.model_validate(item["route"])

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode: one partition."""
        pk = "|".join((resource_kind, tenant_id, env, project_id))
        items = await self._routes.query("SELECT c.route FROM c WHERE c.pk = @pk", {"@pk": pk}, pk)
        return [ResourceRoute.model_validate(item["route"]) for item in items]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route (a cross-partition query; the registry is small)."""
        items = await self._routes.query(
            "SELECT c.route FROM c WHERE c.kind = @kind", {"@kind": "route"}, None
        )
        return [ResourceRoute.model_validate(item["route"]) for item in items]

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write only if the stored version is ``expected_version``; the etag closes the race."""
        key = route.key()
        pk = "|".join(key[:4])  # kind, tenant, env, project
        current = await self._routes.find(pk, key.mode)
        stale = ConcurrentUpdate(
            f"{route.describe()} changed since it was read (expected version {expected_version})"
        )
        if (current["version"] if current else 0) != expected_version:
            raise stale
        body = {"id": key.mode, "pk": pk, "kind": "route", "version": route.version}
        if not await self._routes.swap(body | {"route": route.model_dump(mode="json")}, current):
            raise stale


def _row_pk(scope: Scope, table: str) -> str:
    return "|".join((*scope.key(), table))


def _row_id(key: str) -> str:
    # Keys may contain "/", which ids forbid; base64url is bounded (512 -> 683 chars).
    return base64.urlsafe_b64encode(key.encode()).decode("ascii").rstrip("=")


class CosmosTabularStore(_OneContainer):
    """TabularStore on Cosmos: a partition per scope and table, rows ordered by ``key``."""

    def __init__(self, config: CosmosConfig) -> None:
        self._rows = self._store = _Container(
            config, config.tabular_container, _indexing("/data/*")
        )

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (upsert)."""
        item = {"id": _row_id(key), "pk": _row_pk(scope, table), "key": key, "data": value}
        with _mapped(self._rows.what):
            await self._rows.proxy.upsert_item(item)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        item = await self._rows.find(_row_pk(scope, table), _row_id(key))
        return None if item is None else dict(item["data"])

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; a 404 means it was not there."""
        with _mapped(self._rows.what):
            try:
                await self._rows.proxy.delete_item(
                    _row_id(key), partition_key=_row_pk(scope, table)
                )
            except CosmosResourceNotFoundError:
                return False
        return True

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order: a range on ``key``, never an offset."""
        pk = _row_pk(scope, table)
        items = await self._rows.query(
            "SELECT c.key, c.data FROM c WHERE c.pk = @pk AND STARTSWITH(c.key, @prefix)"
            " AND c.key > @after ORDER BY c.key",
            {"@pk": pk, "@prefix": prefix, "@after": after_key or ""},
            pk,
            limit,
        )
        return [(item["key"], dict(item["data"])) for item in items]

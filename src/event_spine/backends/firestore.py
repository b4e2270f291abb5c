"""Cloud Firestore (native mode) backend: events, routing registry and tabular rows.

Layout (collection ids are ``<collection_prefix><name>``; default prefix ``spine_``)::

    spine_events/{h}-{event_id}       one document per event:
        stream_key "<tenant>|<env>|<mode>|<project>|<stream_id>", position (int64,
        the Kafka offset), and body (bytes, record_to_json) if at most
        max_inline_bytes, else parts (int: how many part documents)
    spine_events/{doc}/parts/{000..}  data: bytes, consecutive slices of the body
    spine_cursors/{quote(stream_key)} position, last_event_id: the stream's watermark
    spine_routes/{quote(route key)}   the route key fields, version, body (JSON)
    spine_route_versions/{quote(route key)}@{n}   a fence per route version n
    spine_rows/{blake2b-128(scope|table|key)}     scope_table, key, value (JSON bytes)

Why:
- Event document id = event id: dedupe is global and ``get`` is a point read.
  ``h`` (4 hex of a hash of the id) spreads writes: UUIDv7 ids begin with a
  timestamp, and close ids hotspot one tablet (~500 writes/s).
- Writes read the existing ids first (``get_all``, masked) and ``create()`` only
  the missing events. A writer that lost a race gets ALREADY_EXISTS, re-reads and
  retries what is still missing: a stored event never moves to another position.
  A new id at a position its stream already holds (reused offsets) is refused
  with StorePermanentError: one range query per stream per batch checks it.
  A commit holds at most 500 writes and about ``max_commit_bytes`` (requests are
  capped at 10 MiB); an event's parts go in the same commit as, and before, it.
- Documents are capped at 1 MiB: larger bodies (events of 1 MiB serialized, and
  up to one commit's size) are split into ``max_inline_bytes`` slices (``parts``).
- The watermark is its own document, written once per stream per batch (a
  document sustains ~1 write/s), after the events' commits, by a transaction that
  reads it and writes only a higher position (forward only, zombies fenced).
- Reads page with range filters (position > p AND position <= watermark), never
  with offsets or query cursors.
- Registry compare-and-set: one batch that ``create()``s the fence of version n+1,
  then sets the route. Batches are atomic, so of two writers expecting version n
  exactly one commits; no update-time precondition is needed.

Indexes a deployment must create (add ``--database=DB`` if not ``(default)``)::

    gcloud firestore indexes composite create --collection-group=spine_events \\
        --query-scope=COLLECTION --field-config=field-path=stream_key,order=ascending \\
        --field-config=field-path=position,order=ascending
    gcloud firestore indexes composite create --collection-group=spine_rows \\
        --query-scope=COLLECTION --field-config=field-path=scope_table,order=ascending \\
        --field-config=field-path=key,order=ascending

and single-field exemptions (``gcloud firestore indexes fields update FIELD
--collection-group=GROUP --disable-indexes``): spine_events body and position
(increasing indexed values hotspot), parts data, spine_routes body, spine_rows
value. Credentials and project: the SDK's default chain (ADC, GOOGLE_CLOUD_PROJECT);
``FIRESTORE_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import quote

import orjson
from google.api_core import exceptions as gexc
from google.api_core.retry import if_exception_type
from google.api_core.retry_async import AsyncRetry
from google.auth import exceptions as auth_exceptions
from google.cloud.firestore_v1.async_client import AsyncClient
from google.cloud.firestore_v1.async_transaction import async_transactional
from google.cloud.firestore_v1.base_query import FieldFilter
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
    StorePermanentError,
    StoreUnavailable,
)
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

T = TypeVar("T")
MIB: Final = 1024 * 1024
_READ_CHUNK: Final = 200  # document references per BatchGetDocuments call
_WRITE_OVERHEAD: Final = 512  # bytes per write besides the values: names, field keys
_CONFLICT_ATTEMPTS: Final = 5  # re-check rounds after ALREADY_EXISTS from a racing writer
_TX_ATTEMPTS: Final = 8  # the SDK retries ABORTED transactions this often
# Worth retrying inside one call: the same request may succeed a moment later.
_RETRIED: Final = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.ResourceExhausted)
_RETRIED_TOO: Final = (gexc.InternalServerError, gexc.Aborted)
# Mapped to StoreUnavailable once the call's own retries ran out.
_TRANSIENT: Final = (*_RETRIED, *_RETRIED_TOO, gexc.Unknown, gexc.Cancelled, gexc.RetryError)


class FirestoreConfig(BaseModel):
    """Route config of the Firestore backend (no credentials: the SDK's default chain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = Field(default=None, description="None: from the environment.")
    database: str = "(default)"
    collection_prefix: str = Field(default="spine_", pattern=r"^[A-Za-z0-9_-]{0,100}$")
    timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one RPC attempt.")
    retry_timeout_s: float = Field(default=30.0, ge=0, description="Retrying, per call.")
    # Below the 1 MiB document limit with room for the document name and other fields.
    max_inline_bytes: int = Field(default=1_000_000, ge=65_536, le=1_000_000)
    max_commit_writes: int = Field(default=500, ge=1, le=500)
    # The request limit is 10 MiB; keep a margin for names and encoding.
    max_commit_bytes: int = Field(default=9 * MIB, ge=MIB, le=10 * MIB - 512 * 1024)
    concurrency: int = Field(default=8, ge=1, le=64, description="Parallel RPCs per call.")


class _FirestoreStore:
    """One AsyncClient per store: creation, collections, call options, closing."""

    _collection: ClassVar[str]

    def __init__(self, config: FirestoreConfig) -> None:
        self.config = config
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._what = self._describe(self._collection)
        retry = AsyncRetry(
            predicate=if_exception_type(*_RETRIED, *_RETRIED_TOO),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=config.retry_timeout_s,
        )
        self._rpc: dict[str, Any] = {"retry": retry, "timeout": config.timeout_s}

    def _describe(self, suffix: str) -> str:
        project = self.config.project or "<default project>"
        name = self.config.collection_prefix + suffix
        return f"collection {name!r} ({project}/{self.config.database})"

    async def open(self) -> None:
        """Create the client (collections need no creation; indexes are deployed)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    # Default credentials may query the metadata server: off the loop.
                    self._client = await asyncio.to_thread(self._make_client)

    def _make_client(self) -> AsyncClient:
        try:
            return AsyncClient(project=self.config.project, database=self.config.database)
        except (auth_exceptions.DefaultCredentialsError, OSError) as exc:
            raise ConfigurationError(
                f"Firestore backend: no credentials or project ({exc}). Use application "
                f"default credentials and set `project` in the route or GOOGLE_CLOUD_PROJECT."
            ) from exc

    async def close(self) -> None:
        """Close the client and its gRPC channel (``AsyncClient.close()`` does not)."""
        client, self._client = self._client, None
        if client is None:
            return
        # Private attribute: the only handle on the channel (None if never used).
        api = client._firestore_api_internal
        if api is not None:
            await api.transport.close()
        client.close()  # type: ignore[no-untyped-call]

    async def _db(self) -> AsyncClient:
        await self.open()
        assert self._client is not None
        return self._client

    async def _col(self, suffix: str | None = None) -> Any:
        name = self.config.collection_prefix + (suffix or self._collection)
        return (await self._db()).collection(name)

    async def _get_all(
        self, refs: Sequence[Any], *, field_paths: list[str] | None = None, transaction: Any = None
    ) -> list[Any]:
        """Snapshots of ``refs`` (missing ones included), in chunks, in parallel."""
        client = await self._db()

        async def read(chunk: Sequence[Any]) -> list[Any]:
            options = {"field_paths": field_paths, "transaction": transaction, **self._rpc}
            return [snap async for snap in client.get_all(list(chunk), **options)]

        chunks = [refs[i : i + _READ_CHUNK] for i in range(0, len(refs), _READ_CHUNK)]
        pages = await _bounded(self.config.concurrency, [read(c) for c in chunks])
        return [snap for page in pages for snap in page]


async def _bounded(limit: int, jobs: Sequence[Awaitable[T]]) -> list[T]:
    """Await ``jobs`` with at most ``limit`` running at once, results in order."""
    if len(jobs) <= 1:
        return [await job for job in jobs]
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except _TRANSIENT as exc:
        cause = exc.cause if isinstance(exc, gexc.RetryError) else exc
        throttled = isinstance(cause, gexc.ResourceExhausted)
        raise StoreUnavailable(
            f"Firestore {what} is {'throttling' if throttled else 'unavailable'}: {cause or exc}",
            retry_after_s=5.0 if throttled else 1.0,
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise StorePermanentError(f"Firestore {what} refused the request: {exc}") from exc
    except OSError as exc:  # includes TimeoutError
        raise StoreUnavailable(f"Firestore {what} is unreachable: {exc}", 1.0) from exc


def _hashed(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def event_doc_id(event_id: str) -> str:
    """The document id of an event: a 4-hex spread prefix, then the id."""
    return f"{_hashed(event_id, 2)}-{event_id}"


def _part(event_ref: Any, index: int) -> Any:
    return event_ref.collection("parts").document(f"{index:03d}")


def _doc_id(text: str) -> str:
    # Document ids cannot contain "/" (stream ids can); quoting is injective.
    return quote(text, safe="")


@dataclass(slots=True)
class _EventDoc:
    """The writes of one event: its part documents, then the event document."""

    event_id: str
    ref: Any
    fields: dict[str, Any]
    parts: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    size: int = 0

    @property
    def writes(self) -> int:
        return len(self.parts) + 1

    def add_to(self, batch: Any) -> None:
        # Parts first: on a store whose commits are not atomic (the emulator), a
        # reader that finds the event document finds its parts too.
        for ref, data in self.parts:
            batch.set(ref, data)
        batch.create(self.ref, self.fields)


def _collision(new: str, stored: str, position: int) -> StorePermanentError:
    return StorePermanentError(
        f"Event document {new!r} collides with {stored!r} at stream position {position}: "
        f"were the topic's offsets reset? Replay into a fresh store."
    )


def _stream_range(events: Any, stream_key: str, low_op: str, low: int, high: int) -> Any:
    """Events of a stream with ``position <low_op> low AND position <= high``."""
    query = events.where(filter=FieldFilter("stream_key", "==", stream_key))
    query = query.where(filter=FieldFilter("position", low_op, low))
    return query.where(filter=FieldFilter("position", "<=", high))


def _pack(docs: Iterable[_EventDoc], max_writes: int, max_bytes: int) -> list[list[_EventDoc]]:
    """Group events into commits under the limits; one event never spans commits."""
    commits: list[list[_EventDoc]] = []
    current: list[_EventDoc] = []
    writes = size = 0
    for doc in docs:
        if current and (writes + doc.writes > max_writes or size + doc.size > max_bytes):
            commits.append(current)
            current, writes, size = [], 0, 0
        current.append(doc)
        writes += doc.writes
        size += doc.size
    if current:
        commits.append(current)
    return commits


class FirestoreEventStore(_FirestoreStore, EventStoreBase):
    """EventStore on Firestore; layout and invariants in the module docstring."""

    _collection = "events"

    async def _cursor_refs(self, keys: Iterable[StreamKey]) -> list[Any]:
        cursors = await self._col("cursors")
        return [cursors.document(_doc_id(key.text())) for key in keys]

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        pending = [(event, group.key) for group in groups for event in group.events]
        with _mapped(self._what):
            stored = await self._stored_ids([event.record.event_id for event, _ in pending])
            events = await self._col()
            docs = [
                self._event_doc(events, event, key)
                for event, key in pending
                if event.record.event_id not in stored
            ]
            await self._refuse_collisions(docs)
            commits = _pack(docs, self.config.max_commit_writes, self.config.max_commit_bytes)
            done = await _bounded(self.config.concurrency, [self._commit(c) for c in commits])
            written = sum(done)
            # Only now are the events durable: the watermarks may move.
            await self._advance(groups)
        return AppendResult(written, len(pending) - written)

    async def _stored_ids(self, event_ids: Sequence[str]) -> set[str]:
        events = await self._col()
        refs = [events.document(event_doc_id(event_id)) for event_id in event_ids]
        snaps = await self._get_all(refs, field_paths=["position"])
        return {snap.id.split("-", 1)[1] for snap in snaps if snap.exists}

    async def _refuse_collisions(self, docs: list[_EventDoc]) -> None:
        """A new id at a taken position means reused offsets (a recreated topic): refuse.

        One range query per stream. Not atomic with the commit: two writers racing
        different events onto one position both pass; offsets reused later do not.
        """
        wanted: dict[str, dict[int, str]] = {}
        for doc in docs:
            taken = wanted.setdefault(doc.fields["stream_key"], {})
            holder = taken.setdefault(doc.fields["position"], doc.ref.id)
            if holder != doc.ref.id:
                raise _collision(doc.ref.id, holder, doc.fields["position"])
        events = await self._col()

        async def check(stream_key: str, taken: dict[int, str]) -> None:
            query = _stream_range(events, stream_key, ">=", min(taken), max(taken))
            async for snap in query.select(["position"]).stream(**self._rpc):
                holder = taken.get(snap.get("position"), snap.id)
                if holder != snap.id:
                    raise _collision(holder, snap.id, snap.get("position"))

        await _bounded(self.config.concurrency, [check(k, t) for k, t in wanted.items()])

    def _event_doc(self, events: Any, event: StoredEvent, key: StreamKey) -> _EventDoc:
        body = record_to_json(event.record)
        ref = events.document(event_doc_id(event.record.event_id))
        fields: dict[str, Any] = {"stream_key": key.text(), "position": event.position}
        doc = _EventDoc(event.record.event_id, ref, fields, size=len(body) + _WRITE_OVERHEAD)
        step = self.config.max_inline_bytes
        if len(body) <= step:
            fields["body"] = body
            return doc
        for index, start in enumerate(range(0, len(body), step)):
            doc.parts.append((_part(ref, index), {"data": body[start : start + step]}))
        fields["parts"] = len(doc.parts)
        doc.size += len(doc.parts) * _WRITE_OVERHEAD
        return doc

    async def _commit(self, docs: list[_EventDoc]) -> int:
        """Create the events; after a lost race, re-check and write what is missing."""
        client = await self._db()
        for _ in range(_CONFLICT_ATTEMPTS):
            batch = client.batch()
            for doc in docs:
                doc.add_to(batch)
            try:
                await batch.commit(**self._rpc)
            except gexc.AlreadyExists:
                # Another writer stored some of them since we looked (a zombie or a
                # retried commit that had landed). Keep the stored copies untouched.
                stored = await self._stored_ids([doc.event_id for doc in docs])
                docs = [doc for doc in docs if doc.event_id not in stored]
                if not docs:
                    return 0
            else:
                return len(docs)
        raise StoreUnavailable(f"Firestore {self._what}: writers kept racing on the same events")

    async def _advance(self, groups: list[StreamBatch]) -> None:
        step = self.config.max_commit_writes
        chunks = [self._advance_chunk(groups[i : i + step]) for i in range(0, len(groups), step)]
        await _bounded(self.config.concurrency, chunks)

    async def _advance_chunk(self, groups: list[StreamBatch]) -> None:
        """One transaction reads these watermarks and raises those behind: two writers
        of a stream (a zombie and the new owner) serialize; watermarks only move forward."""
        client = await self._db()
        refs = await self._cursor_refs(group.key for group in groups)

        async def body(transaction: Any) -> None:
            # AsyncTransaction.get_all awaits an async generator (SDK 2.34 bug):
            # read through the client with the transaction instead.
            snaps = await self._get_all(refs, transaction=transaction)
            stored = {snap.id: snap.get("position") for snap in snaps if snap.exists}
            for group, ref in zip(groups, refs, strict=True):
                current, last = stored.get(ref.id), group.watermark
                if current is None or last.position > current:
                    fields = {"position": last.position, "last_event_id": last.record.event_id}
                    transaction.set(ref, {"stream_key": group.key.text(), **fields})

        try:
            await async_transactional(body)(client.transaction(max_attempts=_TX_ATTEMPTS))
        except ValueError as exc:  # how the SDK reports attempts exhausted by ABORTED
            if not isinstance(exc.__cause__, gexc.Aborted):
                raise
            what = self._describe("cursors")
            raise StoreUnavailable(f"Firestore {what}: contention: {exc}", 1.0) from exc

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        (ref,) = await self._cursor_refs([key])
        with _mapped(self._describe("cursors")):
            snap = await ref.get(**self._rpc)
        if not snap.exists:
            return None
        return StreamCursor(key.stream_id, int(snap.get("position")), snap.get("last_event_id"))

    async def _load_event(self, event_id: str) -> StoredEvent | None:
        if not EVENT_ID_RE.match(event_id):
            return None  # never stored, and may not even be a valid document id
        with _mapped(self._what):
            ref = (await self._col()).document(event_doc_id(event_id))
            snap = await ref.get(**self._rpc)
            if not snap.exists:
                return None
            return (await self._decode([snap]))[0]

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        events = await self._col()
        query = _stream_range(events, key.text(), ">", after_position, upto_position)
        query = query.order_by("position").limit(limit)
        with _mapped(self._what):
            snaps = [snap async for snap in query.stream(**self._rpc)]
            return await self._decode(snaps)

    async def _decode(self, snaps: list[Any]) -> list[StoredEvent]:
        """Events from their documents, joining chunked bodies from their parts."""
        docs = [(snap.reference, snap.to_dict()) for snap in snaps]
        refs = [_part(ref, i) for ref, doc in docs for i in range(doc.get("parts", 0))]
        found = await self._get_all(refs) if refs else []
        data = {part.reference.path: part.get("data") for part in found if part.exists}
        out = []
        for ref, doc in docs:
            body = doc.get("body")
            if body is None:
                paths = [_part(ref, i).path for i in range(doc["parts"])]
                if not all(path in data for path in paths):
                    raise StorePermanentError(f"Firestore {self._what}: {ref.id!r} lacks parts")
                body = b"".join(data[path] for path in paths)
            out.append(StoredEvent(record_from_json(body), int(doc["position"])))
        return out


_ROUTE_KEY: Final = ("resource_kind", "tenant_id", "env", "project_id", "mode")


def _route_text(key: RouteKey) -> str:
    return "|".join((key.resource_kind.value, *key[1:]))


class FirestoreRegistryStore(_FirestoreStore):
    """RegistryStore on Firestore: a document per route, CAS through version fences."""

    _collection = "routes"

    async def _query(self, query: Any) -> list[ResourceRoute]:
        with _mapped(self._what):
            return [
                ResourceRoute.model_validate_json(snap.get("body"))
                async for snap in query.stream(**self._rpc)
            ]

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        ref = (await self._col()).document(_doc_id(_route_text(key)))
        with _mapped(self._what):
            snap = await ref.get(**self._rpc)
        return ResourceRoute.model_validate_json(snap.get("body")) if snap.exists else None

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode (equality filters: no composite index)."""
        values = (resource_kind.value, tenant_id, env, project_id)
        query = await self._col()
        for name, value in zip(_ROUTE_KEY[:4], values, strict=True):
            query = query.where(filter=FieldFilter(name, "==", value))
        return await self._query(query)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""
        return await self._query(await self._col())

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set: the route and a new version fence, in one atomic batch."""
        client = await self._db()
        text = _route_text(route.key())
        head = (await self._col()).document(_doc_id(text))
        fields: dict[str, Any] = dict(zip(_ROUTE_KEY, text.split("|"), strict=True))
        fields |= {"version": route.version, "body": route.model_dump_json()}
        with _mapped(self._what):
            snap = await head.get(field_paths=["version"], **self._rpc)
            if (snap.get("version") if snap.exists else 0) != expected_version:
                raise ConcurrentUpdate(
                    f"{route.describe()} changed since it was read "
                    f"(expected version {expected_version})"
                )
            fences = await self._col("route_versions")
            fence = fences.document(f"{_doc_id(text)}@{expected_version + 1}")
            batch = client.batch()
            # The fence first: of two writers expecting the same version only one can
            # create it, and a store that applies a failed commit's earlier writes
            # (the emulator) applies nothing.
            batch.create(fence, {"route": text, "version": expected_version + 1})
            batch.set(head, fields)
            try:
                await batch.commit(**self._rpc)
            except gexc.AlreadyExists as exc:
                # A retried commit whose first attempt had landed is our own write.
                now = await head.get(field_paths=["body"], **self._rpc)
                if not (now.exists and now.get("body") == fields["body"]):
                    raise ConcurrentUpdate(
                        f"{route.describe()} was changed by another writer "
                        f"(expected version {expected_version})"
                    ) from exc


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class FirestoreTabularStore(_FirestoreStore):
    """TabularStore on Firestore: one document per row, values as JSON bytes."""

    _collection = "rows"

    async def _row(self, scope: Scope, table: str, key: str) -> tuple[Any, str]:
        scope_table = "|".join((*scope.key(), table))
        # Hashed: keys may hold "/" and, quoted, exceed the 1500-byte id limit.
        return (await self._col()).document(_hashed(f"{scope_table}|{key}", 16)), scope_table

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (JSON bytes: Firestore maps cannot hold nested arrays)."""
        ref, scope_table = await self._row(scope, table, key)
        data = {"scope_table": scope_table, "key": key, "value": orjson.dumps(value)}
        with _mapped(self._what):
            await ref.set(data, **self._rpc)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        ref, scope_table = await self._row(scope, table, key)
        with _mapped(self._what):
            snap = await ref.get(**self._rpc)
        if not snap.exists or (snap.get("scope_table"), snap.get("key")) != (scope_table, key):
            return None
        value: dict[str, Any] = orjson.loads(snap.get("value"))
        return value

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; an ``exists`` precondition tells whether it was there."""
        ref, _ = await self._row(scope, table, key)
        client = await self._db()
        with _mapped(self._what):
            try:
                await ref.delete(option=client.write_option(exists=True), **self._rpc)
            except gexc.NotFound:
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
        """Rows by key prefix, in key order, paged by a range filter on the key."""
        _, scope_table = await self._row(scope, table, "")
        query = (await self._col()).where(filter=FieldFilter("scope_table", "==", scope_table))
        if after_key is not None and after_key >= prefix:
            query = query.where(filter=FieldFilter("key", ">", after_key))
        elif prefix:
            query = query.where(filter=FieldFilter("key", ">=", prefix))
        if prefix:
            query = query.where(filter=FieldFilter("key", "<", _prefix_end(prefix)))
        query = query.order_by("key").limit(limit)
        with _mapped(self._what):
            return [
                (snap.get("key"), orjson.loads(snap.get("value")))
                async for snap in query.stream(**self._rpc)
            ]

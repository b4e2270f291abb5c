"""FirestoreEventStore: the layout and the invariants are in the package docstring."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.async_transaction import async_transactional
from google.cloud.firestore_v1.base_query import FieldFilter

from event_spine.backends.base import (
    AppendResult,
    EventIdConflict,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    conflicts_among,
    event_body,
    record_from_json,
    without_conflicts,
)
from event_spine.backends.firestore.client import _bounded, _FirestoreStore, _mapped
from event_spine.backends.firestore.layout import (
    _doc_id,
    _EventDoc,
    _pack,
    _part,
    event_doc_id,
)
from event_spine.backends.querying import prefix_range
from event_spine.errors import StoreLayoutOutdated, StorePermanentError, StoreUnavailable
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.wire import StoredEvent

_WRITE_OVERHEAD: Final = 512  # bytes per write besides the values: names, field keys
_CONFLICT_ATTEMPTS: Final = 5  # re-check rounds after ALREADY_EXISTS from a racing writer
_TX_ATTEMPTS: Final = 8  # the SDK retries ABORTED transactions this often
#: Version 2: event documents named by scope + event_id (1, unmarked: event_id alone).
LAYOUT_VERSION: Final = 2


def _doc_of(event: StoredEvent) -> str:
    return event_doc_id(event.record.routing.key(), event.record.event_id)


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


class FirestoreEventStore(_FirestoreStore, EventStoreBase):
    """EventStore on Firestore; layout and invariants in the package docstring."""

    _collection = "events"

    async def _cursor_refs(self, keys: Iterable[StreamKey]) -> list[Any]:
        cursors = await self._col("cursors")
        return [cursors.document(_doc_id(key.text())) for key in keys]

    _layout_checked = False

    async def _check_layout(self) -> None:
        """Refuse layout 1 (documents named by event_id alone); mark an empty store.

        Checked on first use, not in open(): opening never needs the server."""
        if self._layout_checked:
            return
        with _mapped(self._what):
            marker = (await self._col("layout")).document("events")
            if not await self._marked(marker):
                events = await self._col()
                async for old in events.limit(1).stream(**self._rpc):
                    if await self._marked(marker):
                        break  # a concurrent first use marked it, then wrote
                    raise StoreLayoutOutdated(
                        f"Firestore {self._what} holds events in layout 1 (document "
                        f"{old.id!r} is named by event_id alone); this release reads layout "
                        f"{LAYOUT_VERSION}. Migrate it first: `spine migrate "
                        f"'firestore:<this route's config as JSON>'`."
                    )
                await marker.set({"version": LAYOUT_VERSION}, **self._rpc)
        self._layout_checked = True

    async def _marked(self, marker: Any) -> bool:
        snap = await marker.get(**self._rpc)
        return bool(snap.exists) and int(snap.get("version")) >= LAYOUT_VERSION

    async def migrate(self) -> str:
        """Rename layout-1 event documents (and their parts) by scope + event_id.

        Each event is copied before its old documents are deleted, and the store is
        marked last, so a run cut short can simply be rerun."""
        with _mapped(self._what):
            marker = (await self._col("layout")).document("events")
            snap = await marker.get(**self._rpc)
            if snap.exists and int(snap.get("version")) >= LAYOUT_VERSION:
                return f"already at layout {LAYOUT_VERSION}: nothing to do"
            events = await self._col()
            moved = 0
            async for old in events.stream(**self._rpc):
                if "|" in old.id:
                    continue  # written by this release already
                fields = old.to_dict()
                scope = tuple(fields["stream_key"].split("|")[:4])
                new = events.document(event_doc_id(scope, old.id.split("-", 1)[1]))
                parts = [p async for p in old.reference.collection("parts").stream(**self._rpc)]
                for part in parts:
                    await new.collection("parts").document(part.id).set(part.to_dict())
                await new.set(fields)
                for part in parts:
                    await part.reference.delete()
                await old.reference.delete()
                moved += 1
            await marker.set({"version": LAYOUT_VERSION}, **self._rpc)
        return f"renamed {moved} event(s); now at layout {LAYOUT_VERSION}"

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        await self._check_layout()
        pending = [(event, group.key) for group in groups for event in group.events]
        with _mapped(self._what):
            stored = await self._stored_ids([_doc_of(event) for event, _ in pending])
            events = await self._col()
            docs = [
                self._event_doc(events, event, key)
                for event, key in pending
                if _doc_of(event) not in stored
            ]
            # A repeat at its own position is the same Kafka record
            # redelivered: only repeats elsewhere are compared (bodies read only then).
            moved = [e for e, _ in pending if stored.get(_doc_of(e), e.position) != e.position]
            conflicts = await self._conflicts(moved)
            await self._refuse_collisions(docs)
            commits = _pack(docs, self.config.max_commit_writes, self.config.max_commit_bytes)
            done = await _bounded(self.config.concurrency, [self._commit(c) for c in commits])
            written = sum(done)
            # Only now are the events durable: the watermarks may move.
            await self._advance(without_conflicts(groups, conflicts))
        duplicates = len(pending) - written - len(conflicts)
        return AppendResult(written, duplicates, tuple(conflicts))

    async def _stored_ids(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """The stored ones of ``doc_ids``, with their positions."""
        events = await self._col()
        refs = [events.document(doc_id) for doc_id in doc_ids]
        snaps = await self._get_all(refs, field_paths=["position"])
        return {snap.id: snap.get("position") for snap in snaps if snap.exists}

    async def _conflicts(self, repeats: list[StoredEvent]) -> list[EventIdConflict]:
        """Repeated identities whose stored content differs (bodies read only then)."""
        if not repeats:
            return []
        events = await self._col()
        snaps = await self._get_all([events.document(_doc_of(e)) for e in repeats])
        held = await self._decode([snap for snap in snaps if snap.exists])
        records = {_doc_of(e): e.record for e in held}
        return conflicts_among((e, records.get(_doc_of(e))) for e in repeats)

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
        body = event_body(event)
        ref = events.document(_doc_of(event))
        fields: dict[str, Any] = {"stream_key": key.text(), "position": event.position}
        doc = _EventDoc(ref.id, ref, fields, size=len(body) + _WRITE_OVERHEAD)
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
        await self._check_layout()
        (ref,) = await self._cursor_refs([key])
        with _mapped(self._describe("cursors")):
            snap = await ref.get(**self._rpc)
        if not snap.exists:
            return None
        return StreamCursor(key.stream_id, int(snap.get("position")), snap.get("last_event_id"))

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        if not EVENT_ID_RE.match(event_id):
            return None  # never stored, and may not even be a valid document id
        await self._check_layout()
        with _mapped(self._what):
            ref = (await self._col()).document(event_doc_id(scope, event_id))
            snap = await ref.get(**self._rpc)
            if not snap.exists:
                return None
            return (await self._decode([snap]))[0]

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        return await self._load_slice(key, after_position, upto_position, limit, descending=False)

    async def _load_slice(
        self, key: StreamKey, low: int, high: int, limit: int, descending: bool
    ) -> list[StoredEvent]:
        """Descending needs the (stream_key, position DESC) composite index."""
        events = await self._col()
        query = _stream_range(events, key.text(), ">", low, high)
        direction = "DESCENDING" if descending else "ASCENDING"
        query = query.order_by("position", direction=direction).limit(limit)
        with _mapped(self._what):
            snaps = [snap async for snap in query.stream(**self._rpc)]
            return await self._decode(snaps)

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        """A range on the watermarks' ``stream_key`` (its automatic single-field index)."""
        await self._check_layout()
        head = "|".join(scope) + "|"
        low, high = prefix_range(prefix)
        query = (await self._col("cursors")).where(
            filter=FieldFilter("stream_key", ">=", head + low)
        )
        # "}" follows "|" in byte order: the end of the scope's keys.
        end = head + high if high is not None else head[:-1] + "}"
        query = query.where(filter=FieldFilter("stream_key", "<", end))
        if after is not None:
            op = "<" if descending else ">"
            query = query.where(filter=FieldFilter("stream_key", op, head + after))
        direction = "DESCENDING" if descending else "ASCENDING"
        query = query.order_by("stream_key", direction=direction).limit(limit)
        with _mapped(self._describe("cursors")):
            snaps = [snap async for snap in query.stream(**self._rpc)]
        return [
            StreamCursor(
                snap.get("stream_key")[len(head) :],
                int(snap.get("position")),
                snap.get("last_event_id"),
            )
            for snap in snaps
        ]

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

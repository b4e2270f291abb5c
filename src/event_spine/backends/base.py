"""What every ``EventStore`` (``seams.py``) keeps, written once: ``EventStoreBase``.

Semantics every backend keeps (the contract suite in tests/backends checks them):

- A stream is identified by its full scope plus ``stream_id`` (``StreamKey``).
- An event is identified by its full scope (tenant, env, mode, project) plus its
  ``event_id``: equal ids in two scopes are two events. ``append_batch`` is
  idempotent by that identity: re-appending a whole batch or an overlapping one
  stores nothing twice. A repeat whose content differs (``content_digest``) is not
  stored and not dropped silently: it comes back in ``AppendResult.conflicts``.
- Each stream has a watermark (its cursor checkpoint): the highest position whose
  event, and every earlier one, is durable. It is written after the events, only
  ever moves forward (which also fences a zombie writer), and readers never return
  an event above it, so a reader paging with ``list_after`` never skips an event
  that becomes visible later, even on backends whose batch writes are not atomic.
- Reads are scoped: an event id that exists only under another scope is unknown to
  the reader (``get`` returns None, ``list_after`` raises ``UnknownCursor``);
  another scope's events are never returned.

``EventStoreBase`` holds that logic once; a backend implements four primitives:
``_write``, ``_load_cursor``, ``_load_event`` and ``_load_range`` (or instead of the
last one ``_load_page``, to read a page in one round trip).
Queries (``query``, ``list_streams``, ``count_event_types``) come from
``querying.QueryReads``: they also need ``_load_streams``, and a backend may
override their steps to filter, order or count natively.
``DelegatedLifecycle`` is open()/close() for a store that only hands them on to
one connection object (``_resource``).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

import msgspec

# Defined in keys (querying needs them too); every backend imports them from here,
# so they are re-exported the PEP 484 way ("X as X"), which ruff's PLC0414 flags.
from event_spine.backends.keys import Anchor as Anchor  # noqa: PLC0414
from event_spine.backends.keys import ScopeKey as ScopeKey  # noqa: PLC0414
from event_spine.backends.keys import StreamCursor as StreamCursor  # noqa: PLC0414
from event_spine.backends.keys import StreamKey as StreamKey  # noqa: PLC0414
from event_spine.backends.querying import QueryReads
from event_spine.errors import ScopeViolation, StorePermanentError, UnknownCursor
from event_spine.schemas.query import MAX_PAGE as QUERY_MAX_PAGE
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord, ReceivedEvent, StoredEvent

#: Largest page list_after and query return.
MAX_PAGE: Final = QUERY_MAX_PAGE


_digest_encoder: Final = msgspec.json.Encoder(order="sorted")


def content_digest(record: EventRecord) -> str:
    """What "the same event" means when an id repeats in one scope.

    sha256 over the canonical JSON (keys sorted at every depth) of
    ``[event_type, stream_id, payload]``. Left out: the identity itself (scope, id),
    and what a legitimate repeat may change: delivery facts (partition, offset,
    received time), ``ts``, ``schema_version`` and ``metadata`` (trace ids of a
    retried call, the audit chain links the sink adds).
    """
    body = _digest_encoder.encode((record.event_type, record.stream_id, record.payload))
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class EventIdConflict:
    """An event refused because its scope already holds its id with other content."""

    event: StoredEvent
    stored_digest: str
    incoming_digest: str


def repeat_conflict(incoming: StoredEvent, stored: EventRecord) -> EventIdConflict | None:
    """None when ``incoming`` repeats ``stored`` (same content), else the conflict."""
    if incoming.record is stored:
        return None
    mine, theirs = content_digest(incoming.record), content_digest(stored)
    return None if mine == theirs else EventIdConflict(incoming, theirs, mine)


def conflicts_among(
    repeats: Iterable[tuple[StoredEvent, EventRecord | None]],
) -> list[EventIdConflict]:
    """The conflicts among repeated identities, each with the record it holds (None:
    nothing to compare with, e.g. a racing writer's copy not readable yet)."""
    conflicts = []
    for event, held in repeats:
        conflict = None if held is None else repeat_conflict(event, held)
        if conflict is not None:
            conflicts.append(conflict)
    return conflicts


def skipped_conflicts(
    skipped: Iterable[tuple[StoredEvent, bytes | None]], where: str
) -> list[EventIdConflict]:
    """Sort the events an insert skipped, each with the body its identity holds.

    Same content: a redelivery. Other content: a conflict. No body at all: the
    identity is not stored, so another event holds the position (offsets reused,
    e.g. a recreated topic); that is refused (StorePermanentError), never dropped.
    """
    conflicts: list[EventIdConflict] = []
    lost: list[StoredEvent] = []
    for event, body in skipped:
        if body is None:
            lost.append(event)
        elif body != event_body(event):
            conflict = repeat_conflict(event, record_from_json(body))
            if conflict is not None:
                conflicts.append(conflict)
    if lost:
        shown = ", ".join(f"{e.event_id}@{e.position}" for e in lost[:5])
        raise StorePermanentError(
            f"{where}: {len(lost)} event(s) collide with a different event already stored "
            f"at the same stream position ({shown}): were the topic's offsets reset? "
            f"Positions are Kafka offsets and must not be reused within a stream; replay "
            f"into a fresh store."
        )
    return conflicts


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append_batch did."""

    written: int = 0
    duplicates: int = 0
    #: Events not stored: their id is taken in their scope by different content.
    conflicts: tuple[EventIdConflict, ...] = ()


@dataclass(slots=True)
class StreamBatch:
    """The events of one batch that belong to one stream, deduplicated and in order."""

    key: StreamKey
    events: list[StoredEvent] = field(default_factory=list)

    @property
    def watermark(self) -> StoredEvent:
        """The last event: its position becomes the stream's watermark."""
        return self.events[-1]


def group_by_stream(
    events: Iterable[StoredEvent],
) -> tuple[list[StreamBatch], int, list[EventIdConflict]]:
    """Split a batch per stream, drop repeated identities, sort each by position.

    Returns the groups, how many in-batch duplicates were dropped, and the in-batch
    repeats whose content differs (conflicts). Per event it only hashes plain tuples:
    the StreamKey is built once per stream, and a group is sorted only when it
    arrived out of order (the sink's never do: a stream lives in one partition, read
    in offset order).
    """
    groups: dict[tuple[str, ...], StreamBatch] = {}
    unordered: set[tuple[str, ...]] = set()
    seen: dict[tuple[str, ...], StoredEvent] = {}
    repeats: list[tuple[StoredEvent, EventRecord | None]] = []
    for event in events:
        record = event.record
        r = record.routing
        identity = (r.tenant_id, r.env, r.mode, r.project_id, record.event_id)
        first = seen.get(identity)
        if first is not None:
            repeats.append((event, first.record))
            continue
        seen[identity] = event
        key = (r.tenant_id, r.env, r.mode, r.project_id, record.stream_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = StreamBatch(StreamKey._make(key))
        elif event.position < group.events[-1].position:
            unordered.add(key)
        group.events.append(event)
    for late in unordered:
        groups[late].events.sort(key=_position)
    conflicts = conflicts_among(repeats)
    return list(groups.values()), len(repeats) - len(conflicts), conflicts


def without_conflicts(
    groups: list[StreamBatch], conflicts: Iterable[EventIdConflict]
) -> list[StreamBatch]:
    """The groups minus their conflicting events (emptied groups left out): what a
    backend's watermarks may cover, so a cursor never names a refused event."""
    refused = {id(c.event) for c in conflicts}
    if not refused:
        return groups
    kept = [StreamBatch(g.key, [e for e in g.events if id(e) not in refused]) for g in groups]
    return [g for g in kept if g.events]


def _position(event: StoredEvent) -> int:
    return event.position


_record_encoder: Final = msgspec.json.Encoder()
_record_decoder: Final = msgspec.json.Decoder(EventRecord)


def event_body(event: StoredEvent) -> bytes:
    """The JSON body to persist: the bytes it arrived as when known, else encoded."""
    if type(event) is ReceivedEvent and event.raw:
        return event.raw
    return _record_encoder.encode(event.record)


def record_from_json(data: bytes | str) -> EventRecord:
    """A persisted record body (``event_body``) back to a record (bodies were validated
    before they were stored)."""
    return _record_decoder.decode(data)


class Lifecycle(Protocol):
    """A connection object a store holds: a pool, an SDK client, a database thread."""

    async def open(self) -> None:
        """Connect (and create what is missing). Idempotent."""

    async def close(self) -> None:
        """Release the connection."""


class DelegatedLifecycle:
    """open()/close() of a store whose whole lifecycle is one connection object."""

    _resource: Lifecycle

    async def open(self) -> None:
        """Open the connection (and create what the store needs). Idempotent."""
        await self._resource.open()

    async def close(self) -> None:
        """Release the connection."""
        await self._resource.close()


#: An event's operator columns: ``{"event_type": str, "ts": str (ISO 8601), "ts_type":
#: "text" | "instant"}`` (``instant``: the store's ts column is a timestamp, not text).
Columns = dict[str, str]


@runtime_checkable
class OperatorColumns(Protocol):
    """A store that keeps some record fields in columns of their own beside the body
    (SQLite and PostgreSQL: ``event_type`` and ``ts``, for operators' queries). The
    audit verifier reads them to check they still say what the hashed body says."""

    async def operator_columns(self, scope: Scope, event_ids: Sequence[str]) -> dict[str, Columns]:
        """``event_id -> {"event_type": ..., "ts": ISO 8601}`` of the ids stored in ``scope``."""


class EventStoreBase(QueryReads, abc.ABC):
    """Implements EventStore's reads and checks over four backend primitives
    (queries: see ``querying``)."""

    async def open(self) -> None:
        """Default: nothing to create."""

    async def close(self) -> None:
        """Default: nothing to release."""

    async def ping(self) -> None:
        """Default: a cheap read."""
        await self._load_cursor(StreamKey("t_ping", "dev", "lab", "p_ping", "ping"))

    async def append_batch(self, events: Sequence[StoredEvent]) -> AppendResult:
        """Group per stream, then let the backend write events and watermarks."""
        if not events:
            return AppendResult()
        groups, in_batch_duplicates, in_batch_conflicts = group_by_stream(events)
        result = await self._write(groups)
        return AppendResult(
            result.written,
            result.duplicates + in_batch_duplicates,
            (*in_batch_conflicts, *result.conflicts),
        )

    async def list_after(
        self, scope: Scope, stream_id: str, after_event_id: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Range read bounded by the watermark, so readers never skip a late event."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"`limit` must be between 1 and {MAX_PAGE}, got {limit}")
        key = StreamKey.of(scope, stream_id)
        anchor, events = await self._load_page(key, after_event_id, limit)
        if after_event_id is not None:
            if anchor is None:
                raise UnknownCursor(stream_id, after_event_id)
            if anchor.key.scope_key() != scope.key():
                raise ScopeViolation(_foreign(after_event_id, scope))
            if anchor.key.stream_id != stream_id:
                raise UnknownCursor(stream_id, after_event_id)
        return events

    async def _load_page(
        self, key: StreamKey, after_event_id: str | None, limit: int
    ) -> tuple[Anchor | None, list[StoredEvent]]:
        """The anchor event's place and up to ``limit`` visible events of ``key`` after it.

        With an anchor in another stream the events are not read (list_after raises).
        A backend may override this to read everything in one round trip.
        """
        after_position = -1
        anchor = None
        if after_event_id is not None:
            event = await self._load_event(key.scope_key(), after_event_id)
            if event is None:
                return None, []
            anchor = Anchor(StreamKey.of_record(event.record), event.position)
            if anchor.key != key:
                return anchor, []
            after_position = anchor.position
        cursor = await self._load_cursor(key)
        if cursor is None or cursor.position <= after_position:
            return anchor, []
        return anchor, await self._load_range(key, after_position, cursor.position, limit)

    async def get(self, scope: Scope, event_id: str) -> StoredEvent | None:
        """Point read within ``scope``: another scope's event of that id is not seen."""
        return await self._load_event(scope.key(), event_id)

    async def cursor(self, scope: Scope, stream_id: str) -> StreamCursor | None:
        """The watermark of one stream."""
        return await self._load_cursor(StreamKey.of(scope, stream_id))

    @abc.abstractmethod
    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        """Insert events not stored yet (by scope and event_id), then raise watermarks.

        A stored identity with other content is a conflict (``repeat_conflict``),
        reported in the result, never written. The watermark of a group moves to the
        position of its last non-conflicting event (``without_conflicts``) only if that
        is higher than the stored one, and only after the group's events are durable.
        """

    @abc.abstractmethod
    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        """The stored watermark of a stream."""

    @abc.abstractmethod
    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        """An event by its identity: scope and id."""

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        """Events with after_position < position <= upto_position, ascending.

        Only the default ``_load_page`` calls it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _load_range or _load_page")


def _foreign(event_id: str, scope: Scope) -> str:
    return (
        f"Event {event_id!r} does not belong to scope {scope.describe()}; "
        f"a reader may only see its own tenant, env, mode and project."
    )

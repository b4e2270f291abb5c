"""The audit hash chain, assigned by the sink just before the store write.

Why the sink: the order of a stream is decided by the broker (a stream lives in one
partition; its position is the Kafka offset). An emitter cannot know its event's
predecessor; the sink can, because it writes a stream's events in position order.

The chain of one stream in one scope, in one store (chain format v1):

- Members: the stream's events whose ``event_type`` starts with ``audit.``, in
  position order. Other events of the stream are not members.
- Each member carries ``metadata.audit_prev_hash`` (the previous member's
  ``audit_hash``; ``GENESIS`` = 64 zeros for the first) and ``metadata.audit_hash``.
- ``audit_hash = sha256(prev_hash_ascii || canonical(record))`` as 64 lower-case hex.
- ``canonical(record)``: the stored EventRecord (schema_version, event_id, ts,
  event_type, stream_id, routing, metadata, payload) with the two hash keys removed
  from ``metadata`` (every other key stays, nulls included), encoded by
  ``msgspec.json.encode(..., order="sorted")``: UTF-8 JSON, no insignificant
  whitespace, object keys sorted by code point at every depth, strings as raw
  UTF-8 (only ``"``, ``\\`` and control characters escaped), ``ts`` in RFC 3339 as
  msgspec writes it (``Z`` for UTC, else the offset; microseconds when non-zero),
  non-finite floats as null. The sink hashes the record it decoded from Kafka,
  the verifier the record it decodes from the store; msgspec re-encodes both
  identically.

Keyed links (chain format v2, with a key from ``event_spine.audit.keys``): the sink
also sets ``metadata.audit_key_id`` (inside ``canonical``, so hashed) and
``metadata.audit_mac = HMAC-SHA256(key, audit_hash)``, and the hash covers the
position: ``sha256(prev_hash || "\n" || position || "\n" || canonical(record))``.
The exact rules live in ``event_spine.audit.offline`` (the stdlib verifier).

Determinism: the predecessor is read from the store (the stream's cursor, then
``get()``), and only events above the cursor are linked. A redelivered batch, or a
zombie worker racing the partition's new owner, computes the same values, so the
idempotent writes agree. Events at or below the cursor are left unchanged: they are
stored already and the store drops them as duplicates; so is an event id stored at
another position (a producer retry), which is therefore skipped too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from event_spine.audit.keys import LinkKey
from event_spine.audit.offline import link_hash, link_mac
from event_spine.backends.base import StreamCursor
from event_spine.backends.seams import EventStore
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord, StoredEvent

AUDIT_EVENT_PREFIX: Final = "audit."
#: The one stream per scope that emit_audit_event writes to (one partition: one order).
AUDIT_STREAM: Final = "audit"
AUDIT_HASH: Final = "audit_hash"
AUDIT_PREV_HASH: Final = "audit_prev_hash"
AUDIT_KEY_ID: Final = "audit_key_id"
AUDIT_MAC: Final = "audit_mac"
GENESIS: Final = "0" * 64
#: Left out of canonical(): what the link adds (the key id stays in, so it is hashed).
HASH_FIELDS: Final = frozenset({AUDIT_HASH, AUDIT_PREV_HASH, AUDIT_MAC})
#: Never taken from the emitter: the sink alone sets them.
LINK_FIELDS: Final = HASH_FIELDS | {AUDIT_KEY_ID}


@dataclass(frozen=True, slots=True)
class Member:
    """A newly linked chain member, as the anchorer needs it."""

    scope: Scope
    stream_id: str
    position: int
    event_id: str
    audit_hash: str
    time_s: float

    @classmethod
    def of(cls, event: StoredEvent) -> Member:
        """The member a linked (or stored) audit event is."""
        record = event.record
        return cls(
            record.routing.scope(),
            record.stream_id,
            event.position,
            record.event_id,
            str(record.metadata.get(AUDIT_HASH)),
            record.ts.timestamp(),
        )


_PAGE: Final = 500


def is_audit_event(record: EventRecord) -> bool:
    """True for the events the chain links (``audit.*`` event types)."""
    return record.event_type.startswith(AUDIT_EVENT_PREFIX)


def has_audit_events(events: Iterable[StoredEvent]) -> bool:
    """Cheap test the sink runs per group: only then is the chain computed."""
    return any(e.record.event_type.startswith(AUDIT_EVENT_PREFIX) for e in events)


def canonical(record: EventRecord) -> bytes:
    """The bytes an audit hash covers: the record without the two hash fields."""
    metadata = {k: v for k, v in record.metadata.items() if k not in HASH_FIELDS}
    return msgspec.json.encode(msgspec.structs.replace(record, metadata=metadata), order="sorted")


def audit_hash(prev_hash: str, record: EventRecord, position: int = 0) -> str:
    """The record's link hash: v2 (position covered) when it carries a key id."""
    keyed = AUDIT_KEY_ID in record.metadata
    return link_hash(prev_hash, canonical(record), position, keyed)


def linked(event: StoredEvent, prev_hash: str, key: LinkKey | None = None) -> StoredEvent:
    """``event`` linked after ``prev_hash``; sealed with ``key`` when there is one."""
    record = event.record
    metadata = {k: v for k, v in record.metadata.items() if k not in LINK_FIELDS}
    if key is not None:
        metadata[AUDIT_KEY_ID] = key.key_id
    record = msgspec.structs.replace(record, metadata=metadata)
    digest = audit_hash(prev_hash, record, event.position)
    metadata = {**metadata, AUDIT_PREV_HASH: prev_hash, AUDIT_HASH: digest}
    if key is not None:
        metadata[AUDIT_MAC] = link_mac(key.secret, digest)
    return StoredEvent(msgspec.structs.replace(record, metadata=metadata), event.position)


async def link_audit_chain(
    store: EventStore,
    events: list[StoredEvent],
    key: LinkKey | None = None,
    members: list[Member] | None = None,
    starts: Mapping[str, str] | None = None,
) -> list[StoredEvent]:
    """Return ``events`` (same length, same order) with every new audit event linked.

    Non-audit events are returned as they are. Reads the store (cursor and one point
    read per stream, one point read per new audit event); a store error propagates
    so the sink retries the batch. ``members``, when given, receives the newly
    linked events in chain order (for the anchors). ``starts`` maps a stream to the
    hash its chain goes on from in a store that holds none of it yet (the old
    store's head after a route switch, ``event_spine.audit.links``); else GENESIS.
    """
    out = list(events)
    groups: dict[tuple[tuple[str, str, str, str], str], list[int]] = {}
    for index, event in enumerate(events):
        if is_audit_event(event.record):
            group = (event.record.routing.key(), event.record.stream_id)
            groups.setdefault(group, []).append(index)
    for (_, stream_id), indexes in groups.items():
        scope = events[indexes[0]].record.routing.scope()
        start = (starts or {}).get(stream_id, GENESIS)
        new = await _link_stream(store, (scope, stream_id, start), out, indexes, key)
        if members is not None:
            members.extend(Member.of(out[i]) for i in new)
    return out


async def _link_stream(
    store: EventStore,
    where: tuple[Scope, str, str],
    out: list[StoredEvent],
    indexes: list[int],
    key: LinkKey | None,
) -> list[int]:
    scope, stream_id, start = where
    indexes.sort(key=lambda i: out[i].position)
    cursor = await store.cursor(scope, stream_id)
    floor = cursor.position if cursor is not None else -1
    prev = await _head_hash(store, scope, stream_id, cursor, start)
    seen: set[str] = set()
    new: list[int] = []
    for index in indexes:
        event = out[index]
        if event.position <= floor or event.event_id in seen:
            continue  # stored already, or an in-batch repeat: the store drops it
        seen.add(event.event_id)
        stored = await store.get(scope, event.event_id)
        if stored is not None and stored.position != event.position:
            continue  # a producer retry of an event stored earlier: dropped as well
        out[index] = linked(event, prev, key)
        prev = out[index].record.metadata[AUDIT_HASH]
        new.append(index)
    return new


async def _head_hash(
    store: EventStore, scope: Scope, stream_id: str, cursor: StreamCursor | None, start: str
) -> str:
    """The hash of the last stored audit event at or below the cursor (``start`` if none)."""
    if cursor is None:
        return start
    last = await store.get(scope, cursor.last_event_id)
    if last is not None and is_audit_event(last.record):
        return str(last.record.metadata.get(AUDIT_HASH) or GENESIS)
    # Rare: a non-audit event ends the stream (emit_audit_event never does that).
    head = start
    after: str | None = None
    while page := await store.list_after(scope, stream_id, after, _PAGE):
        for event in page:
            if is_audit_event(event.record):
                head = str(event.record.metadata.get(AUDIT_HASH) or GENESIS)
        after = page[-1].event_id
    return head

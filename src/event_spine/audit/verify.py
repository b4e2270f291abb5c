"""Read an audit chain back from its store and report the first thing that does not hold.

The checks themselves live in ``event_spine.audit.offline`` (standard library only,
shared with the export bundle's verifier); this module feeds it the store's records
and adds what only the store can tell: the stream's watermark (records deleted at
the end), the point read by id (an id or scope column changed under a record) and,
on stores that keep ``event_type`` and ``ts`` in columns of their own beside the body
(``OperatorColumns``: SQLite, PostgreSQL), those columns, which the checker compares
with the hashed body (one query per page of records).

What a valid chain proves: no member was modified, removed, inserted or moved since
the sink wrote it. Up to the last anchor that holds without any secret (the anchors'
Ed25519 signatures cover the head hash). After it, keyed records are sealed by their
HMAC: a tail rewritten without the key fails there; unkeyed (v1) records after the
last anchor are only as good as whoever could write the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from event_spine.audit.chain import (
    AUDIT_HASH,
    AUDIT_MAC,
    AUDIT_PREV_HASH,
    AUDIT_STREAM,
    GENESIS,
    canonical,
    is_audit_event,
)
from event_spine.audit.keys import AuditKeys, signature_valid
from event_spine.audit.offline import ChainChecker, Problem, Report, Settings
from event_spine.backends.base import Columns, OperatorColumns
from event_spine.backends.seams import EventStore
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

_PAGE: Final = 500
#: What a store's decoder raises on a body that is not a valid record.
DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first place the chain does not hold."""

    position: int | None
    event_id: str
    problem: str
    kind: str = "modified"
    #: Which store of the route's history holds it (index into audit.links.segments,
    #: oldest first); None: the only store, or a problem of the chain as a whole.
    segment: int | None = None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What verify_chain found in one stream of one scope."""

    scope: Scope
    stream_id: str
    #: Audit events whose links held, in order, before the first broken one.
    checked: int
    #: audit_hash of the last valid member (GENESIS for an empty chain).
    head_hash: str
    broken: BrokenLink | None = None
    detail: Report = field(default_factory=Report)

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken is None

    def describe(self) -> str:
        """One human-readable paragraph."""
        where = f"stream {self.stream_id!r} of {self.scope.describe()}"
        d = self.detail
        counts = (
            f"{d.keyed} keyed, {d.unkeyed} unkeyed, {d.macs_unchecked} MACs unchecked "
            f"(no key), {d.anchors_checked} anchors"
        )
        notes = "".join(f"\nnote: {n}" for n in d.notes)
        if self.broken is None:
            return (
                f"OK: {self.checked} audit events chained in {where} ({counts}); "
                f"head {self.head_hash}{notes}"
            )
        b = self.broken
        at = f"position {b.position}, " if b.position is not None else ""
        return (
            f"BROKEN ({b.kind}) after {self.checked} valid audit events in {where} "
            f"({counts}): at {at}event {b.event_id}: {b.problem}{notes}"
        )


async def verify_chain(
    store: EventStore,
    scope: Scope,
    stream_id: str = AUDIT_STREAM,
    *,
    keys: AuditKeys | None = None,
    anchors: list[dict[str, Any]] | None = None,
    expect_anchors: bool = False,
) -> ChainReport:
    """Walk the stream, check every audit event, its MAC and the anchors.

    ``keys`` gives the HMAC keys (without them MACs are counted as unchecked) and
    the anchors' public keys; ``expect_anchors`` makes a chain without any anchor
    where one is due a failure (anchoring is configured, so they were deleted).
    """
    checker = ChainChecker(anchors or [], checker_settings(keys, expect_anchors))
    last = await walk(store, scope, stream_id, checker)
    report = checker.finish()
    if report.problem is None:
        report.problem = await tail_problem(store, scope, stream_id, last)
    return as_chain_report(scope, stream_id, report)


def checker_settings(keys: AuditKeys | None, expect_anchors: bool) -> Settings:
    """What the checker needs from the keys (HMAC keys, anchor public keys, the rule)."""
    settings = Settings(
        keys.link_keys() if keys is not None and keys.link_keys() else None,
        keys.anchor_public_keys() if keys is not None else {},
        expect_anchors=expect_anchors,
        signature_valid=signature_valid,
    )
    if keys is not None and hasattr(keys, "settings"):
        settings.every_events = keys.settings.anchor_every_events
        settings.every_s = keys.settings.anchor_every_s
    return settings


async def walk(
    store: EventStore,
    scope: Scope,
    stream_id: str,
    checker: ChainChecker,
    span: tuple[int, int | None] = (-1, None),
    beyond: list[StoredEvent] | None = None,
) -> StoredEvent | None:
    """Feed the checker the audit events with ``lo < position <= hi``; the last event read.

    Audit events past ``hi`` are not fed: they go to ``beyond`` (a store switched
    away from may hold records written after the switch's link was read).
    """
    lo, hi = span
    last: StoredEvent | None = None
    try:
        async for event, columns in _events(store, scope, stream_id):
            last = event
            if not is_audit_event(event.record) or event.position <= lo:
                continue
            if hi is not None and event.position > hi:
                if beyond is not None:
                    beyond.append(event)
                continue
            if not checker.feed(as_link(event, columns)) or not await _findable(
                store, scope, event, checker
            ):
                return last
    except DECODE_ERRORS as exc:
        after = f"event {last.event_id} at position {last.position}" if last else "the start"
        checker.report.problem = Problem(
            "malformed", None, f"the record after {after}", f"its body is not a valid record: {exc}"
        )
    return last


def as_link(event: StoredEvent, columns: Columns | None = None) -> dict[str, Any]:
    """A stored audit event as the checker (and an export bundle) sees it; with the
    store's operator columns (``event_type``, ``ts``) when it keeps them."""
    metadata = event.record.metadata
    link: dict[str, Any] = {
        "position": event.position,
        "event_id": event.event_id,
        "canonical": canonical(event.record).decode(),
        AUDIT_PREV_HASH: metadata.get(AUDIT_PREV_HASH),
        AUDIT_HASH: metadata.get(AUDIT_HASH),
    }
    if AUDIT_MAC in metadata:
        link[AUDIT_MAC] = metadata[AUDIT_MAC]
    if columns is not None:
        link["columns"] = columns
    return link


async def _findable(
    store: EventStore, scope: Scope, event: StoredEvent, checker: ChainChecker
) -> bool:
    """The record must be where its id says: an id or scope column changed hides it."""
    found = await store.get(scope, event.event_id)
    if found is not None and found.position == event.position:
        return True
    checker.report.problem = Problem(
        "modified",
        event.position,
        f"event {event.event_id}",
        "the store does not find this record by its id at this position: its id, scope "
        "or position columns were changed",
    )
    return False


async def _events(
    store: EventStore, scope: Scope, stream_id: str
) -> AsyncIterator[tuple[StoredEvent, Columns | None]]:
    """The stream's events with their operator columns (None: the store keeps none)."""
    async for page, columns in pages_with_columns(store, scope, stream_id):
        for event in page:
            # A row whose columns vanished under it: the checker names it (no columns).
            yield event, (columns.get(event.event_id, {}) if columns is not None else None)


async def pages_with_columns(
    store: EventStore, scope: Scope, stream_id: str
) -> AsyncIterator[tuple[list[StoredEvent], dict[str, Columns] | None]]:
    """Pages of the stream, each with its events' operator columns (one query a page)."""
    after: str | None = None
    while page := await store.list_after(scope, stream_id, after, _PAGE):
        columns = None
        if isinstance(store, OperatorColumns):
            columns = await store.operator_columns(scope, [e.event_id for e in page])
        yield page, columns
        after = page[-1].event_id


async def tail_problem(
    store: EventStore, scope: Scope, stream_id: str, last: StoredEvent | None
) -> Problem | None:
    """The watermark names the stream's last event: it must be the last one read."""
    cursor = await store.cursor(scope, stream_id)
    if cursor is None:
        return None
    if last is not None and (last.event_id, last.position) == (
        cursor.last_event_id,
        cursor.position,
    ):
        return None
    found = f"event {last.event_id} at {last.position}" if last is not None else "no event"
    return Problem(
        "truncated",
        cursor.position,
        f"event {cursor.last_event_id}",
        f"the stream's watermark names this event as the last one, but the last stored "
        f"event is {found}: events at the end were deleted or moved",
    )


def as_chain_report(scope: Scope, stream_id: str, report: Report) -> ChainReport:
    broken = None
    if report.problem is not None:
        p = report.problem
        event_id = p.name.removeprefix("event ")
        broken = BrokenLink(p.position, event_id, p.message, p.kind)
    head = report.head_hash if report.checked else GENESIS
    return ChainReport(scope, stream_id, report.checked, head, broken, report)

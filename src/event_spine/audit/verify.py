"""Read an audit chain back and report the first broken link.

What a valid chain proves: no member was modified, removed, inserted or moved since
the sink wrote it, unless whoever changed it also recomputed every later hash. The
hashes are not keyed, so to detect a rewrite of the whole tail (or events forged at
the end together with a moved watermark), keep ``head_hash`` of each report
somewhere the store's writers cannot change, and compare later reports with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from event_spine.audit.chain import (
    AUDIT_HASH,
    AUDIT_PREV_HASH,
    AUDIT_STREAM,
    GENESIS,
    audit_hash,
    is_audit_event,
)
from event_spine.backends.base import EventStore
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first place the chain does not hold."""

    position: int
    event_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What verify_chain found in one stream of one scope."""

    scope: Scope
    stream_id: str
    #: Audit events whose links held, in order, before the first broken one.
    checked: int
    #: audit_hash of the last valid member (GENESIS for an empty chain): anchor it.
    head_hash: str
    broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken is None

    def describe(self) -> str:
        """One human-readable paragraph."""
        where = f"stream {self.stream_id!r} of {self.scope.describe()}"
        if self.broken is None:
            return f"OK: {self.checked} audit events chained in {where}; head {self.head_hash}"
        b = self.broken
        return (
            f"BROKEN after {self.checked} valid audit events in {where}: at position "
            f"{b.position}, event {b.event_id}: {b.problem}"
        )


async def verify_chain(
    store: EventStore, scope: Scope, stream_id: str = AUDIT_STREAM
) -> ChainReport:
    """Walk the stream with list_after and check every audit event's two hashes."""
    prev = GENESIS
    checked = 0
    last: StoredEvent | None = None
    async for event in _events(store, scope, stream_id):
        last = event
        if not is_audit_event(event.record):
            continue
        problem = link_problem(event, prev)
        if problem is not None:
            broken = BrokenLink(event.position, event.event_id, problem)
            return ChainReport(scope, stream_id, checked, prev, broken)
        prev = str(event.record.metadata[AUDIT_HASH])
        checked += 1
    return ChainReport(
        scope, stream_id, checked, prev, await _tail_problem(store, scope, stream_id, last)
    )


def link_problem(event: StoredEvent, expected_prev: str) -> str | None:
    """Why ``event`` does not follow a member whose hash is ``expected_prev`` (or None)."""
    metadata = event.record.metadata
    stored_hash, stored_prev = metadata.get(AUDIT_HASH), metadata.get(AUDIT_PREV_HASH)
    if not isinstance(stored_hash, str) or not isinstance(stored_prev, str):
        return (
            f"no `{AUDIT_HASH}`/`{AUDIT_PREV_HASH}` in metadata: written outside the sink's "
            f"chain, or the fields were removed"
        )
    if audit_hash(stored_prev, event.record) != stored_hash:
        return f"`{AUDIT_HASH}` does not match the event's content: the record was modified"
    if stored_prev != expected_prev:
        return (
            f"`{AUDIT_PREV_HASH}` is {stored_prev[:16]}… but the previous audit event's hash "
            f"is {expected_prev[:16]}…: an event before this one was deleted, inserted or "
            f"moved"
        )
    return None


async def _events(store: EventStore, scope: Scope, stream_id: str) -> AsyncIterator[StoredEvent]:
    after: str | None = None
    while page := await store.list_after(scope, stream_id, after, _PAGE):
        for event in page:
            yield event
        after = page[-1].event_id


async def _tail_problem(
    store: EventStore, scope: Scope, stream_id: str, last: StoredEvent | None
) -> BrokenLink | None:
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
    return BrokenLink(
        cursor.position,
        cursor.last_event_id,
        f"the stream's watermark names this event as the last one, but the last stored "
        f"event is {found}: events at the end were deleted or moved",
    )

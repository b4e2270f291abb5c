"""Follower: one connection following one stream live through a LiveHub.

A follower is fed by exactly one reader at a time (the partition's head, or its
history reader while it lags), always in offset order. ``after`` is the seam:
every offset at or below it was handled for this follower (delivered, filtered out
or not its stream), so a reader hands it only records above ``after`` and a handover
between readers neither repeats nor skips a record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from event_spine.kafka.keys import kafka_key
from event_spine.schemas.context import RequestContext
from event_spine.schemas.wire import EventRecord, StoredEvent
from event_spine.subscriptions.catchup import RecentIds
from event_spine.subscriptions.filters import SubscriptionFilter
from event_spine.subscriptions.mailbox import Mailbox


@dataclass(eq=False, slots=True)
class Follower:
    """The state of one live connection; the hub only ever writes to its mailbox."""

    ctx: RequestContext
    stream_id: str
    event_filter: SubscriptionFilter
    ids: RecentIds
    mailbox: Mailbox[StoredEvent]
    #: Every offset at or below was handled (-1: none); see the module docstring.
    after: int = -1
    #: Start at the partition's end (``after`` is set when the follower joins).
    from_end: bool = False
    #: Set once: overflowed, failed, or the hub stopped (the mailbox keeps its items).
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    failure: BaseException | None = None
    kafka_key: bytes = b""

    def __post_init__(self) -> None:
        self.kafka_key = kafka_key(self.ctx.tenant_id, self.stream_id)

    @property
    def gone(self) -> bool:
        """The connection went away, or the follower ended: feed it no more."""
        return self.mailbox.closed or self.ended.is_set()

    def candidate(self, record: EventRecord, offset: int) -> StoredEvent | None:
        """The event to deliver for the record at ``offset``; None when it is not for
        this follower (another scope or stream, filtered out, or its id seen)."""
        if record.stream_id != self.stream_id or record.routing.key() != self.ctx.key():
            return None  # a key shared by two scopes of one tenant: never the other's
        if not self.event_filter.matches(record) or record.event_id in self.ids:
            return None
        return StoredEvent(record, offset)

    def delivered(self, event: StoredEvent) -> None:
        """``event`` is in the mailbox: remember its id and move the seam."""
        self.ids.add(event.event_id)
        self.after = event.position

    def overflow(self) -> None:
        """The mailbox stayed full too long: the connection must tell and end."""
        if not self.ended.is_set():
            self.overflowed = True
            self.ended.set()

    def fail(self, exc: BaseException) -> None:
        """The reader feeding this follower failed."""
        if not self.ended.is_set():
            self.failure = exc
            self.ended.set()

    def stop(self) -> None:
        """The hub closes: no more events, no error."""
        self.ended.set()

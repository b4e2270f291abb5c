"""Signed anchors: the sink's statements of a chain's head, kept apart from the chain.

An anchor (fields in ``event_spine.audit.offline.ANCHOR_FIELDS``) is written per
scope and stream to the scope's ``object_store`` route, as a row of the tabular
table ``audit_anchors`` keyed ``<stream>/<position, 20 digits>`` (key order =
position order). The route must not point at the store that holds the chain: an
anchor next to the records it vouches for is rewritten with them.

Where anchors go is a function of the chain alone (``offline.anchor_due``: every
``every_events`` members, or once ``every_s`` of event time passed), and Ed25519
signatures are deterministic, so a redelivery, a rebalance or a zombie worker
writes the very same anchors. A failed anchor write never fails the batch (the
records are stored); the next batch of that stream reloads the anchors and catches up.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from event_spine.audit.chain import Member, is_audit_event
from event_spine.audit.keys import AnchorSigner
from event_spine.audit.offline import anchor_due, anchor_message
from event_spine.backends.seams import EventStore, TabularStore
from event_spine.schemas.routes import AuditLink, ResourceRoute
from event_spine.schemas.scope import Scope

log = logging.getLogger(__name__)

ANCHOR_TABLE: Final = "audit_anchors"
_PAGE: Final = 500

AnchorStoreFor = Callable[[Scope], Awaitable[TabularStore | None]]


def anchor_key(stream_id: str, position: int) -> str:
    """The row key: key order is position order within a stream."""
    return f"{stream_id}/{position:020d}"


async def load_anchors(store: TabularStore, scope: Scope, stream_id: str) -> list[dict[str, Any]]:
    """Every anchor of a stream, in position order."""
    anchors: list[dict[str, Any]] = []
    after: str | None = None
    while rows := await store.list_prefix(scope, ANCHOR_TABLE, f"{stream_id}/", after, _PAGE):
        anchors.extend(value for _, value in rows)
        after = rows[-1][0]
    return anchors


def refuse_same_store(anchors: ResourceRoute, events: ResourceRoute) -> None:
    """Anchors beside the chain protect nothing: refuse that configuration."""
    from event_spine.errors import ConfigurationError  # noqa: PLC0415

    if anchors.store_identity() == events.store_identity():
        raise ConfigurationError(
            f"The {anchors.describe()} points at the store of the event_spine route: "
            f"audit anchors must live in a different store."
        )


@dataclass(slots=True)
class _State:
    """Where a stream's anchoring stands."""

    position: int
    count: int
    base_s: float | None
    rule: tuple[int, float]
    last: dict[str, Any] | None
    #: The switch link the state was built from: another one (a worker now writing
    #: to the store switched to, whose link says where the chain goes on) rebuilds it.
    start: AuditLink | None = None


class Anchorer:
    """Writes the anchors a chain's new members make due."""

    def __init__(
        self, signer: AnchorSigner, every_events: int, every_s: float, store_for: AnchorStoreFor
    ) -> None:
        self.signer = signer
        self.rule = (every_events, every_s)
        self.store_for = store_for
        self._states: dict[tuple[tuple[str, str, str, str], str], _State] = {}
        self.written = 0
        self.failures = 0

    async def record(
        self,
        events: EventStore,
        members: list[Member],
        starts: Mapping[str, AuditLink] | None = None,
    ) -> None:
        """After the batch's write: anchor what became due. Never raises.

        ``starts``: where a stream's chain goes on from in a store it was switched
        to (``event_spine.audit.links.starts_of``): the count and the anchors' own
        chain continue across the switch.
        """
        groups: dict[tuple[tuple[str, str, str, str], str], list[Member]] = {}
        for m in members:
            groups.setdefault((m.scope.key(), m.stream_id), []).append(m)
        for key, group in groups.items():
            try:
                await self._advance(events, key, group, (starts or {}).get(key[1]))
            except Exception:  # the records are stored; the next batch catches up
                self.failures += 1
                self._states.pop(key, None)
                log.warning("audit anchor write failed; retried with the next batch", exc_info=True)

    async def _advance(
        self,
        events: EventStore,
        key: tuple[tuple[str, str, str, str], str],
        group: list[Member],
        start: AuditLink | None,
    ) -> None:
        scope, stream_id = group[0].scope, group[0].stream_id
        table = await self.store_for(scope)
        if table is None:
            return
        state = self._states.get(key)
        if state is None or group[0].position <= state.position or state.start != start:
            self._states[key] = await self._catch_up(table, events, (scope, stream_id), start)
            self._states[key].start = start
            return
        for member in group:
            await self._step(table, state, member)

    async def _catch_up(
        self,
        table: TabularStore,
        events: EventStore,
        where: tuple[Scope, str],
        start: AuditLink | None,
    ) -> _State:
        """From the last anchor (or the switch's link) on, walk the chain; write what is due."""
        scope, stream_id = where
        anchors = await load_anchors(table, scope, stream_id)
        last = anchors[-1] if anchors else None
        state = _State(-1, 0, None, self.rule, None)
        if start is not None:
            state = _State(start.position, start.count, start.first_time_s, self.rule, None)
        if last is not None:
            rule = (int(last["every_events"]), float(last["every_s"]))
            if int(last["position"]) >= state.position:
                state = _State(int(last["position"]), int(last["count"]), 0.0, rule, last)
            state.base_s, state.rule, state.last = float(last["time_s"]), rule, last
        after: str | None = None
        if last is not None and await events.get(scope, str(last["event_id"])) is not None:
            after = str(last["event_id"])  # else: anchored in the store switched away from
        while page := await events.list_after(scope, stream_id, after, _PAGE):
            for event in page:
                if is_audit_event(event.record) and event.position > state.position:
                    await self._step(table, state, Member.of(event))
            after = page[-1].event_id
        return state

    async def _step(self, table: TabularStore, state: _State, member: Member) -> None:
        state.count += 1
        state.position = member.position
        if state.base_s is None:
            state.base_s = member.time_s
        if not anchor_due(state.count, member.time_s, state.base_s, *state.rule):
            return
        anchor = self._sign(member, state)
        await table.put(
            member.scope, ANCHOR_TABLE, anchor_key(member.stream_id, member.position), anchor
        )
        self.written += 1
        state.last, state.base_s, state.rule = anchor, member.time_s, self.rule

    def _sign(self, member: Member, state: _State) -> dict[str, Any]:
        anchor: dict[str, Any] = {
            "scope": list(member.scope.key()),
            "stream": member.stream_id,
            "position": member.position,
            "event_id": member.event_id,
            "head_hash": member.audit_hash,
            "count": state.count,
            "time_s": member.time_s,
            "every_events": self.rule[0],
            "every_s": self.rule[1],
            "prev_signature": state.last["signature"] if state.last is not None else "",
            "key_id": self.signer.key_id,
        }
        anchor["signature"] = base64.b64encode(self.signer.sign(anchor_message(anchor))).decode()
        return anchor

"""One batch of Kafka records -> routed, idempotent store writes, or dead letters.

Failure classes (see docs/operations.md):
- poison (bad JSON, schema, size, key): dead-letter at once;
- configuration (route missing or invalid, scope violation): dead-letter, or hold
  when ``on_route_missing="hold"``: the partition is held from the first event of
  the unrouted scope (``BatchOutcome.held``), the rest of the batch is written; a
  route to a non-durable backend outside mode lab is dead-lettered as
  ``route_not_durable`` (never written, never held);
- an event whose id its scope already holds with other content: dead-lettered as
  ``event_id_conflict`` with both content digests in headers (the rest is written);
- a store in an older layout (StoreLayoutOutdated: an operator error a migration
  fixes): never dead-lettered; the partitions of its events are held from the first
  one on, like ``hold``, whatever ``on_route_missing`` says, until `spine migrate`;
- transient errors (any error whose class is ``retriable``: StoreUnavailable,
  ConcurrentUpdate...): raised as BatchRetry, so the worker rewinds, pauses and
  retries the whole batch (writes are idempotent);
- the store refusing data (any other SpineError: StorePermanentError,
  ScopeViolation...): the batch is retried up to ``max_attempts`` times, then the
  group is written event by event and only the refused events are dead-lettered
  (with the attempt count in their headers);
- anything unexpected (not a SpineError: a bug): retried up to ``max_attempts``, then
  the group is dead-lettered as ``store_error``.

The class of a failure is read from the error's type (``failure_class``: its
``retriable`` flag first), never from its message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from event_spine.audit.chain import Member, has_audit_events, link_audit_chain
from event_spine.audit.keys import LinkKey
from event_spine.audit.links import chain_starts
from event_spine.audit.sink import SinkAudit
from event_spine.backends.base import AppendResult
from event_spine.backends.factory import StoreFactory
from event_spine.backends.seams import EventStore
from event_spine.errors import (
    BackendNotDurable,
    ConfigurationError,
    EventRejected,
    EventTooLarge,
    EventValidationError,
    RouteNotFound,
    ScopeViolation,
    SpineError,
    StoreLayoutOutdated,
    StorePermanentError,
    is_retriable,
)
from event_spine.kafka.keys import kafka_key
from event_spine.kafka.records import RawRecord
from event_spine.observability.logs import log_fields
from event_spine.observability.tracing import sink_span, traceparents
from event_spine.pipeline.dead_letters import EVENT_DIGEST, STORED_DIGEST, DeadLetter
from event_spine.routing.cache import RouteSource
from event_spine.schemas.routes import ResourceRoute
from event_spine.schemas.scope import ScopeTuple
from event_spine.schemas.wire import ReceivedEvent, StoredEvent, decode_record

log = logging.getLogger(__name__)

#: How the processor treats a failure (module doc): retry the batch, dead-letter by
#: route, isolate the refused events, or treat as a bug.
Failure = Literal["transient", "configuration", "refused", "unexpected"]


def failure_class(exc: BaseException) -> Failure:
    """The failure class of an error, from its type: ``retriable`` first."""
    if is_retriable(exc):
        return "transient"
    if isinstance(exc, ConfigurationError):
        return "configuration"
    if isinstance(exc, SpineError):
        return "refused"
    return "unexpected"


def _retry(exc: BaseException) -> BatchRetry:
    return BatchRetry(exc, getattr(exc, "retry_after_s", None))


class BatchRetry(Exception):
    """The batch must be retried later (nothing of it may be committed)."""

    def __init__(self, cause: BaseException, retry_after_s: float | None = None) -> None:
        self.cause = cause
        self.retry_after_s = retry_after_s
        super().__init__(f"batch will be retried: {cause!r}")


@dataclass(slots=True)
class BatchOutcome:
    """What a processed batch produced; offsets may be committed after dead letters land."""

    written: int = 0
    duplicates: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: (backend type, seconds) per store write, for the latency histogram.
    write_timings: list[tuple[str, float]] = field(default_factory=list)
    #: (topic, partition) -> offset of its first event whose route is missing (hold):
    #: nothing of that partition from there on is written, dead-lettered or committed.
    held: dict[tuple[str, int], int] = field(default_factory=dict)
    held_cause: RouteNotFound | StoreLayoutOutdated | None = None

    def hold(
        self, records: Sequence[RawRecord], cause: RouteNotFound | StoreLayoutOutdated
    ) -> None:
        """Hold each partition of ``records`` from its first one (the lowest offset):
        nothing of it from there on is committed, and its dead letters are dropped
        (they come again with the partition)."""
        for rec in records:
            tp = (rec.topic, rec.partition)
            self.held[tp] = min(self.held.get(tp, rec.offset), rec.offset)
        self.held_cause = cause
        self.dead_letters = [
            d
            for d in self.dead_letters
            if d.record.offset < self.held.get((d.record.topic, d.record.partition), 1 << 63)
        ]


@dataclass(slots=True)
class _Group:
    route: ResourceRoute
    events: list[StoredEvent] = field(default_factory=list)
    records: list[RawRecord] = field(default_factory=list)


@dataclass(slots=True)
class PreparedBatch:
    """A decoded, routed batch waiting for its store writes."""

    groups: dict[tuple[str, str], _Group]
    outcome: BatchOutcome

    def drop(self, partitions: set[tuple[str, int]]) -> None:
        """Forget every record of ``partitions`` (they will be fetched again)."""

        def kept(rec: RawRecord) -> bool:
            return (rec.topic, rec.partition) not in partitions

        for group in self.groups.values():
            pairs = [(e, r) for e, r in zip(group.events, group.records, strict=True) if kept(r)]
            group.events = [e for e, _ in pairs]
            group.records = [r for _, r in pairs]
        out = self.outcome
        out.dead_letters = [d for d in out.dead_letters if kept(d.record)]
        out.held = {tp: o for tp, o in out.held.items() if tp not in partitions}


class BatchProcessor:
    """Decodes, routes and writes; holds no Kafka state."""

    def __init__(
        self,
        routes: RouteSource,
        stores: StoreFactory,
        *,
        max_event_bytes: int,
        hold_on_missing_route: bool = False,
        max_attempts: int = 3,
        audit: SinkAudit | None = None,
        link_key: LinkKey | None = None,
    ) -> None:
        self.routes = routes
        self.audit = audit
        #: Without ``audit`` (a replay): the key links are sealed with, so a replay
        #: rebuilds a keyed chain byte for byte (HMAC is deterministic).
        self.link_key = link_key
        self.stores = stores
        self.max_event_bytes = max_event_bytes
        self.hold_on_missing_route = hold_on_missing_route
        self.max_attempts = max_attempts
        self._failures = 0

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """Write what can be written; raise BatchRetry if the batch must come again."""
        return await self.write(await self.prepare(records))

    async def prepare(self, records: Sequence[RawRecord]) -> PreparedBatch:
        """Decode and route (CPU work, no store write): may overlap the previous write."""
        outcome = BatchOutcome()
        return PreparedBatch(await self._route(records, outcome), outcome)

    async def write(self, prepared: PreparedBatch) -> BatchOutcome:
        """The store writes of a prepared batch; BatchRetry if it must come again."""
        outcome = prepared.outcome
        for group in prepared.groups.values():
            if outcome.held:  # a store found outdated while writing: skip what it holds
                _drop_held(group, outcome.held)
            if group.events:
                await self._write_group(group, outcome)
        self._failures = 0
        return prepared.outcome

    async def _route(
        self, records: Sequence[RawRecord], outcome: BatchOutcome
    ) -> dict[tuple[str, str], _Group]:
        groups: dict[tuple[str, str], _Group] = {}
        # Resolved once per scope per batch (not per event): route, store and group.
        by_scope: dict[tuple[str, str, str, str], _Group | ConfigurationError] = {}
        for rec in records:
            if (rec.topic, rec.partition) in outcome.held:
                continue  # behind a held event of its partition: it comes again
            try:
                event = self._decode(rec)
            except EventRejected as exc:
                outcome.dead_letters.append(DeadLetter(rec, exc.reason, exc))
                continue
            scope = event.record.routing.key()
            target = by_scope.get(scope)
            if target is None:
                target = by_scope[scope] = await self._group_for(scope, groups)
            if isinstance(target, ConfigurationError):
                # An outdated layout is held whatever the setting: a migration fixes it,
                # and a dead letter would drop the events from their streams for good.
                if isinstance(target, StoreLayoutOutdated) or (
                    self.hold_on_missing_route and isinstance(target, RouteNotFound)
                ):
                    outcome.hold([rec], target)
                    continue
                outcome.dead_letters.append(DeadLetter(rec, _route_reason(target), target))
                continue
            target.events.append(event)
            target.records.append(rec)
        return groups

    async def _group_for(
        self, scope: tuple[str, str, str, str], groups: dict[tuple[str, str], _Group]
    ) -> _Group | ConfigurationError:
        route = await self._resolve(scope)
        if isinstance(route, ConfigurationError):
            return route
        identity = route.store_identity()
        group = groups.get(identity)
        if group is None:
            group = groups[identity] = _Group(route)
        return group

    def _decode(self, rec: RawRecord) -> StoredEvent:
        value = rec.value
        if value is None:
            raise EventValidationError("$", "empty record value (a tombstone)")
        if len(value) > self.max_event_bytes:
            raise EventTooLarge(len(value), self.max_event_bytes)
        record = decode_record(value)
        # A stream must live in one partition: positions are partition offsets.
        if rec.key != kafka_key(record.routing.tenant_id, record.stream_id):
            raise EventValidationError(
                "key", "Kafka key must be `<tenant_id>:<stream_id>` (emit sets it)"
            )
        return ReceivedEvent(record, rec.offset, raw=value)

    async def _resolve(self, scope: ScopeTuple) -> ResourceRoute | ConfigurationError:
        try:
            route = await self.routes.event_spine_route(scope)
            await self.stores.event_store(route)
        except SpineError as exc:
            if isinstance(exc, ConfigurationError) and failure_class(exc) == "configuration":
                return exc  # no route, or one the backend spec refuses
            raise _retry(exc) from exc  # the registry or the store itself is failing
        return route

    async def _write_group(self, group: _Group, outcome: BatchOutcome) -> None:
        parents = traceparents(group.records)
        with sink_span(parents), log_fields(traceparents=parents[:10] or None):
            await self._write_traced(group, outcome, parents)

    async def _write_traced(self, group: _Group, outcome: BatchOutcome, parents: list[str]) -> None:
        store = await self.stores.event_store(group.route)
        started = time.perf_counter()
        members: list[Member] = []
        try:
            if has_audit_events(group.events):
                group.events = await (
                    self.audit.link(store, group.events, members, group.route)
                    if self.audit is not None
                    else link_audit_chain(
                        store, group.events, self.link_key, starts=chain_starts(group.route)
                    )
                )
            result = await store.append_batch(group.events)
        except Exception as exc:
            await self._group_failed(exc, store, group, outcome)
            return
        if self.audit is not None:
            await self.audit.anchor(store, members, group.route)
        _count(result, group, outcome)
        name = group.route.backend_type.value
        outcome.write_timings.append((name, time.perf_counter() - started))
        log.debug(
            "wrote %d events (%d duplicates) to %s",
            result.written,
            result.duplicates,
            name,
            extra={"traceparents": parents[:10]},
        )

    async def _group_failed(
        self, exc: Exception, store: EventStore, group: _Group, outcome: BatchOutcome
    ) -> None:
        """Retry, dead-letter or isolate a group whose write failed, by failure class."""
        kind = failure_class(exc)
        if kind == "transient":
            raise _retry(exc) from exc
        if isinstance(exc, StoreLayoutOutdated):
            # Found at the first use (the cloud stores): held like at resolve time.
            outcome.hold(group.records, exc)
            return
        if kind == "configuration":
            # The store refuses to serve the route: like an invalid route found at
            # resolve time.
            outcome.dead_letters.extend(
                DeadLetter(rec, _route_reason(exc), exc) for rec in group.records
            )
            return
        # Retried a few times first: a "permanent" answer is sometimes a misclassified
        # transient one (raises BatchRetry until the attempts are used up).
        self._count_failure(exc)
        if kind == "refused":  # then only the events the store refuses are dead-lettered
            await self._write_one_by_one(store, group, outcome)
            return
        log.exception("unexpected store error, attempts exhausted; dead-lettering")
        outcome.dead_letters.extend(
            DeadLetter(rec, "store_error", exc, self._failures) for rec in group.records
        )

    def _count_failure(self, exc: Exception) -> None:
        """Raise BatchRetry until the same batch failed ``max_attempts`` times in a row."""
        self._failures += 1
        if self._failures < self.max_attempts:
            log.warning("store refused the batch (attempt %d): %r", self._failures, exc)
            raise BatchRetry(exc) from exc

    async def _write_one_by_one(
        self, store: EventStore, group: _Group, outcome: BatchOutcome
    ) -> None:
        """Isolate the events a store refuses; the others are written."""
        for event, rec in zip(group.events, group.records, strict=True):
            try:
                result = await store.append_batch([event])
            except SpineError as exc:
                kind = failure_class(exc)
                if kind == "transient":
                    raise _retry(exc) from exc
                if kind == "configuration":
                    reason = _route_reason(exc)
                elif isinstance(exc, ScopeViolation):
                    reason = "scope_violation"
                else:
                    reason = "store_rejected"
                outcome.dead_letters.append(DeadLetter(rec, reason, exc, self._failures))
                continue
            _count(result, _Group(group.route, [event], [rec]), outcome)


def _drop_held(group: _Group, held: dict[tuple[str, int], int]) -> None:
    """Leave out the events at or after the held offset of their partition."""
    pairs = [
        (e, r)
        for e, r in zip(group.events, group.records, strict=True)
        if r.offset < held.get((r.topic, r.partition), 1 << 63)
    ]
    group.events = [e for e, _ in pairs]
    group.records = [r for _, r in pairs]


def _route_reason(error: BaseException) -> str:
    if isinstance(error, RouteNotFound):
        return "route_missing"
    if isinstance(error, BackendNotDurable):
        return "route_not_durable"
    return "route_invalid"


def _count(result: AppendResult, group: _Group, outcome: BatchOutcome) -> None:
    """Add a write's counts; its conflicts become dead letters with both digests."""
    outcome.written += result.written
    outcome.duplicates += result.duplicates
    if not result.conflicts:
        return
    records = {id(event): rec for event, rec in zip(group.events, group.records, strict=True)}
    for conflict in result.conflicts:
        error = StorePermanentError(
            f"event_id {conflict.event.event_id!r} is stored in this scope with other "
            f"content ({conflict.stored_digest}); this event ({conflict.incoming_digest}) "
            f"was not stored. Emit it under a new event_id."
        )
        digests = (
            (STORED_DIGEST, conflict.stored_digest),
            (EVENT_DIGEST, conflict.incoming_digest),
        )
        outcome.dead_letters.append(
            DeadLetter(records[id(conflict.event)], "event_id_conflict", error, extra=digests)
        )

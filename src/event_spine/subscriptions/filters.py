"""SubscriptionFilter: which events a subscriber wants (within its own scope, always)."""

from __future__ import annotations

from dataclasses import dataclass

from event_spine.schemas.wire import EventRecord


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """Empty tuples match everything; within a field any entry may match.

    ``domains`` is shorthand for a type prefix: domain ``safety`` matches
    ``safety.decision``. The scope (tenant, env, mode, project) is never part of a
    filter: subscribe() only ever delivers the caller's own scope.
    """

    type_prefixes: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    stream_prefixes: tuple[str, ...] = ()

    def matches(self, record: EventRecord) -> bool:
        """True when ``record`` passes the type and the stream conditions."""
        if self.type_prefixes or self.domains:
            event_type = record.event_type
            domain = event_type.partition(".")[0]
            if domain not in self.domains and not event_type.startswith(self.type_prefixes):
                return False
        return not self.stream_prefixes or record.stream_id.startswith(self.stream_prefixes)

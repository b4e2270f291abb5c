"""Identities the stores key by: a scope, a stream, a stream's watermark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord

#: (tenant, env, mode, project): the scope part of an event's identity.
ScopeKey = tuple[str, str, str, str]


class StreamKey(NamedTuple):
    """Identity of one stream: its scope and its id."""

    tenant_id: str
    env: str
    mode: str
    project_id: str
    stream_id: str

    @classmethod
    def of(cls, scope: Scope, stream_id: str) -> StreamKey:
        """The key of ``stream_id`` in ``scope``."""
        return cls(scope.tenant_id, scope.env, scope.mode, scope.project_id, stream_id)

    @classmethod
    def of_record(cls, record: EventRecord) -> StreamKey:
        """The key of the stream a record belongs to."""
        r = record.routing
        return cls(r.tenant_id, r.env, r.mode, r.project_id, record.stream_id)

    def scope_key(self) -> tuple[str, str, str, str]:
        """(tenant, env, mode, project)."""
        return (self.tenant_id, self.env, self.mode, self.project_id)

    def text(self) -> str:
        """One string, for stores keyed by text. ``|`` appears in no id format."""
        return "|".join(self)


@dataclass(frozen=True, slots=True)
class StreamCursor:
    """A stream's checkpoint: everything up to ``position`` is durable and visible."""

    stream_id: str
    position: int
    last_event_id: str


class Anchor(NamedTuple):
    """Where a reader's ``after_event_id`` is: its stream and position."""

    key: StreamKey
    position: int

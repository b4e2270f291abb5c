"""The timeline seam: named, append-only sequences of human-meaningful entries.

A timeline (``deploys``, ``routing``, ``incidents``...) belongs to one scope. Its
entries live either in a fast in-memory store (``MemoryTimeline``) or durably in
the spine, as events of type ``timeline.<kind>`` in the stream ``timeline/<name>``
(``SpineTimeline``). ``Timelines`` picks one per scope from the routing registry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from event_spine.errors import EventValidationError
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

TIMELINE_STREAM_PREFIX: Final = "timeline/"
TIMELINE_EVENT_PREFIX: Final = "timeline."
TIMELINE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
_NAME_RE: Final = re.compile(TIMELINE_NAME_PATTERN)


def _now() -> datetime:
    return datetime.now(UTC)


class TimelineEntry(BaseModel):
    """One entry: what happened (``kind``, ``title``), when, who, and details."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_id: str = Field(default_factory=new_event_id, pattern=EVENT_ID_PATTERN)
    kind: str = Field(pattern=EVENT_TYPE_PATTERN, description="e.g. `route.switch`.")
    title: str = Field(min_length=1, max_length=512)
    at: AwareDatetime = Field(default_factory=_now)
    actor: str | None = Field(default=None, max_length=256)
    detail: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The event payload of this entry (its id travels as the event_id)."""
        return self.model_dump(mode="json", exclude={"entry_id"})

    @classmethod
    def from_event(cls, event: StoredEvent) -> TimelineEntry:
        """The entry a stored timeline event holds."""
        return cls.model_validate({**event.record.payload, "entry_id": event.event_id})


def timeline_stream(name: str) -> str:
    """``timeline/<name>``; raises EventValidationError naming ``name`` when invalid."""
    if type(name) is not str or _NAME_RE.match(name) is None:
        raise EventValidationError("name", f"timeline names must match {TIMELINE_NAME_PATTERN}")
    return f"{TIMELINE_STREAM_PREFIX}{name}"


@runtime_checkable
class TimelineStore(Protocol):
    """Append and read the timelines of one scope."""

    scope: Scope

    async def append(self, ctx: RequestContext, name: str, entry: TimelineEntry) -> str:
        """Append ``entry`` to timeline ``name``; returns its entry_id.

        Raises ScopeViolation when ``ctx`` is not this store's scope.
        """

    async def list_after(
        self, ctx: RequestContext, name: str, after_id: str | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """Up to ``limit`` entries after ``after_id`` (None: from the start), in order."""

"""The read-side query: what a reader asks a store for, and the pages it gets back.

``EventQuery`` selects the visible events (never above a stream's watermark) of one
stream (``stream_id``) or of every stream whose id starts with ``stream_prefix``,
optionally only some ``event_types`` and only ``since <= ts < until``.

Order (a total order, so a cursor never skips or repeats an event):

- one stream: by position (ascending, or descending with ``descending=True``);
- a prefix: by ``(stream_id, position)``, both ascending or both descending. A walk
  over a prefix visits stream after stream: an event appended to a stream the walk
  has already passed is not part of that walk (query the stream itself to tail it).

Cursors are opaque strings (``EventPage.next_cursor``); they carry the stream and
position they resume after, the direction, and a fingerprint of the scope that got
them, so another scope's cursor is refused (ScopeViolation) instead of read. For one
stream ``after`` may also be a plain event id of that stream, as with ``list_after``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec

from event_spine.errors import InvalidQuery, ScopeViolation
from event_spine.schemas.formats import EVENT_ID_RE, EVENT_TYPE_RE, STREAM_ID_RE
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

#: Largest page a store returns (same bound as list_after).
MAX_PAGE: Final = 1000
#: Most event types one query may name. Why 16: Firestore allows 30 values in an
#: ``in`` filter and Cosmos/DynamoDB filter expressions grow with each; 16 keeps every
#: backend on one native query.
MAX_EVENT_TYPES: Final = 16
#: Longest stream prefix (a stream id is at most 256 characters).
MAX_PREFIX: Final = 256

_CURSOR_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to read; validated on construction (InvalidQuery names the field).

    Exactly one of ``stream_id`` and ``stream_prefix`` (``""`` is every stream of the
    scope). ``since`` is inclusive and ``until`` exclusive, both on the event's ``ts``
    and both timezone-aware. ``after`` is a cursor a previous page returned (or, for
    one stream, an event id of it); ``limit`` is 1..MAX_PAGE.
    """

    stream_id: str | None = None
    stream_prefix: str | None = None
    event_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    after: str | None = None
    limit: int = 100
    descending: bool = False

    def __post_init__(self) -> None:
        self._check_streams()
        self._check_types()
        self._check_times()
        if self.after is not None and (not isinstance(self.after, str) or not self.after):
            raise InvalidQuery("after", "must be a non-empty cursor string")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise InvalidQuery("limit", f"must be an integer, got {self.limit!r}")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidQuery("limit", f"must be between 1 and {MAX_PAGE}, got {self.limit}")
        if not isinstance(self.descending, bool):
            raise InvalidQuery("descending", "must be true or false")

    def _check_streams(self) -> None:
        if (self.stream_id is None) == (self.stream_prefix is None):
            raise InvalidQuery("stream_id", "give exactly one of `stream_id` and `stream_prefix`")
        if self.stream_id is not None and not _is_stream_id(self.stream_id):
            raise InvalidQuery("stream_id", f"{self.stream_id!r} is not a valid stream id")
        if self.stream_prefix is not None:
            _check_prefix("stream_prefix", self.stream_prefix)

    def _check_types(self) -> None:
        types = self.event_types
        if isinstance(types, str) or not isinstance(types, tuple | list | frozenset | set):
            raise InvalidQuery("event_types", "must be a tuple of event type names")
        if len(types) > MAX_EVENT_TYPES:
            raise InvalidQuery("event_types", f"at most {MAX_EVENT_TYPES} types, got {len(types)}")
        for t in types:
            if not isinstance(t, str) or not EVENT_TYPE_RE.match(t):
                raise InvalidQuery("event_types", f"{t!r} is not a valid event type")
        object.__setattr__(self, "event_types", tuple(sorted(set(types))))

    def _check_times(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidQuery(name, "must be a timezone-aware datetime")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidQuery("until", "must be later than `since`")

    @property
    def prefix(self) -> str | None:
        """The stream prefix, or None for a one-stream query."""
        return self.stream_prefix

    def matches(self, event: StoredEvent) -> bool:
        """The type and time filters (not the stream, cursor or watermark)."""
        record = event.record
        if self.event_types and record.event_type not in self.event_types:
            return False
        if self.since is not None and record.ts < self.since:
            return False
        return self.until is None or record.ts < self.until

    @property
    def filtered(self) -> bool:
        """Whether any type or time filter applies."""
        return bool(self.event_types) or self.since is not None or self.until is not None


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a query.

    ``next_cursor``: pass it as ``after`` for the next page; None when nothing more
    is visible now. A page may hold fewer than ``limit`` events and still a cursor
    (a backend stopped scanning at its own read bound). ``resume_cursor`` is where a
    poller resumes later even when ``next_cursor`` is None: after the last event
    scanned (None when nothing was scanned: resume with the same ``after``).
    """

    events: list[StoredEvent]
    next_cursor: str | None
    resume_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """A stream of a scope and its watermark: the last visible position and event."""

    stream_id: str
    last_position: int
    last_event_id: str


@dataclass(frozen=True, slots=True)
class StreamPage:
    """One page of ``list_streams`` in stream id order; ``next_cursor`` as EventPage."""

    streams: list[StreamSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a query's total order: a stream and a position in it."""

    stream_id: str
    position: int


class _EventCursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    version: int
    scope: str
    kind: str
    stream_id: str
    position: int
    descending: bool


_cursor_encoder: Final = msgspec.json.Encoder()
_cursor_decoder: Final = msgspec.json.Decoder(_EventCursor)
_EVENT: Final = "e"
_STREAM: Final = "s"


def scope_fingerprint(scope: Scope) -> str:
    """A short digest of a scope, so a cursor tells which scope got it without naming it."""
    return hashlib.sha256("|".join(scope.key()).encode()).hexdigest()[:16]


def encode_event_cursor(scope: Scope, at: Position, descending: bool) -> str:
    """The opaque cursor that resumes a query after ``at``."""
    c = _EventCursor(
        _CURSOR_VERSION, scope_fingerprint(scope), _EVENT, at.stream_id, at.position, descending
    )
    return _b64(_cursor_encoder.encode(c))


def encode_stream_cursor(scope: Scope, stream_id: str) -> str:
    """The opaque cursor that resumes ``list_streams`` after ``stream_id``."""
    fp = scope_fingerprint(scope)
    c = _EventCursor(_CURSOR_VERSION, fp, _STREAM, stream_id, 0, descending=False)
    return _b64(_cursor_encoder.encode(c))


def decode_event_cursor(scope: Scope, q: EventQuery) -> Position | None:
    """Where ``q.after`` resumes, for a cursor (None when ``after`` is an event id).

    Raises ScopeViolation for another scope's cursor and InvalidQuery (field
    ``after``) for a garbled one or one from another stream, prefix or direction.
    """
    if q.after is None or (q.stream_id is not None and EVENT_ID_RE.match(q.after)):
        return None
    c = _decode(scope, q.after, _EVENT)
    if c.descending != q.descending:
        raise InvalidQuery("after", "the cursor was returned for the other sort direction")
    if q.stream_id is not None and c.stream_id != q.stream_id:
        raise InvalidQuery("after", f"the cursor belongs to another stream than {q.stream_id!r}")
    if q.stream_prefix is not None and not c.stream_id.startswith(q.stream_prefix):
        raise InvalidQuery("after", f"the cursor is outside prefix {q.stream_prefix!r}")
    return Position(c.stream_id, c.position)


def decode_stream_cursor(scope: Scope, after: str | None) -> str | None:
    """The stream id a ``list_streams`` cursor resumes after (None: from the start)."""
    if after is None:
        return None
    return _decode(scope, after, _STREAM).stream_id


def check_list_streams(prefix: str | None, limit: int) -> None:
    """Validate list_streams arguments; InvalidQuery names the argument."""
    if prefix is not None:
        _check_prefix("prefix", prefix)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery("limit", f"must be between 1 and {MAX_PAGE}, got {limit!r}")


def _decode(scope: Scope, text: str, kind: str) -> _EventCursor:
    try:
        c = _cursor_decoder.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidQuery("after", "is not a cursor this service returned") from None
    if c.version != _CURSOR_VERSION or c.kind != kind or not _is_stream_id(c.stream_id):
        raise InvalidQuery("after", "is not a cursor this service returned")
    if c.scope != scope_fingerprint(scope):
        raise ScopeViolation(
            f"Cursor `after` was returned to another scope than {scope.describe()}; "
            f"a reader may only page its own tenant, env, mode and project."
        )
    return c


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _is_stream_id(value: object) -> bool:
    return isinstance(value, str) and STREAM_ID_RE.match(value) is not None


def _check_prefix(name: str, prefix: object) -> None:
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX:
        raise InvalidQuery(name, f"must be a string of at most {MAX_PREFIX} characters")
    if prefix and not STREAM_ID_RE.match(prefix):
        raise InvalidQuery(name, f"{prefix!r} cannot start a stream id")


__all__ = [
    "MAX_EVENT_TYPES",
    "MAX_PAGE",
    "EventPage",
    "EventQuery",
    "Position",
    "StreamPage",
    "StreamSummary",
    "check_list_streams",
    "decode_event_cursor",
    "decode_stream_cursor",
    "encode_event_cursor",
    "encode_stream_cursor",
    "scope_fingerprint",
]

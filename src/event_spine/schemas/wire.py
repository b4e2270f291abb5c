"""The wire format, encoded and decoded with msgspec (compiled) instead of pydantic.

Why two models: pydantic's StreamEvent is the documented contract, but costs ~8 µs
per event to build and dump; msgspec structs cost ~1-2 µs. Both read the same
constants from ``formats`` and ``tests/schemas/test_wire_equivalence.py`` checks
they accept and reject exactly the same documents.

The structs are ``gc=False``: a sink batch keeps thousands of them alive, and the
cyclic garbage collector walked every one on each pass (decoding took 5.2 µs per
event with tracking, 3.4 µs without). They cannot be part of a reference cycle:
their fields are strings, datetimes, ints and JSON values, never the struct itself.

The five patterned names (event_id, event_type, stream_id, tenant_id, project_id) are
checked by ``decode_record``, not by msgspec: msgspec ran a regex per name per event,
and ``decode_record`` took 3.4 µs per event. Besides the event id, the names repeat
from event to event (a tenant, its projects, its streams and event types), so the
decoder keeps the names it has seen match (``_SeenNames``) and runs a name's regex only
the first time: 1.8 µs per event (the benchmarks' 530-byte events, timed alone,
2026-12-03), the same verdicts (``tests/schemas/test_wire_equivalence.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from event_spine.errors import EventTooLarge, EventValidationError, UnknownSchemaVersion
from event_spine.schemas.events import METADATA_VALUE_MAX, StreamEvent
from event_spine.schemas.formats import (
    EVENT_ID_PATTERN,
    EVENT_TYPE_PATTERN,
    KNOWN_SCHEMA_VERSIONS,
    METADATA_KEYS,
    PROJECT_ID_PATTERN,
    STREAM_ID_PATTERN,
    TENANT_ID_PATTERN,
    Env,
    Mode,
    full_match,
)
from event_spine.schemas.scope import Scope, ScopeTuple


class WireRouting(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The routing scope of an event on the wire (names checked by decode_record)."""

    tenant_id: str
    env: Env
    mode: Mode
    project_id: str

    def scope(self) -> Scope:
        """As a pydantic Scope."""
        return Scope(
            tenant_id=self.tenant_id, env=self.env, mode=self.mode, project_id=self.project_id
        )

    def key(self) -> ScopeTuple:
        """Same identity as Scope.key()."""
        return (self.tenant_id, self.env, self.mode, self.project_id)


class EventRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A StreamEvent as the pipeline carries it. Field order is the wire order.

    The struct checks the shape and types; the patterned names are checked by
    ``decode_record`` (module doc), so build one from untrusted bytes only with it."""

    schema_version: int
    event_id: str
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    event_type: str
    stream_id: str
    routing: WireRouting
    metadata: dict[str, Any]
    payload: dict[str, Any]


class StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as a store holds it: the record plus its per-stream position.

    ``position`` only grows within a stream (the sink uses the Kafka offset of the
    record, which is unique and increasing per partition, and a stream lives in one
    partition). Positions need not be contiguous.
    """

    record: EventRecord
    position: int

    @property
    def event_id(self) -> str:
        """Shortcut for record.event_id."""
        return self.record.event_id

    @property
    def stream_id(self) -> str:
        """Shortcut for record.stream_id."""
        return self.record.stream_id


class ReceivedEvent(StoredEvent, frozen=True, gc=False):
    """A StoredEvent that still holds the exact wire bytes it was decoded from, so a
    store can persist them instead of encoding the record again (the sink's hot path).
    Anything that changes the record must build a plain StoredEvent."""

    raw: bytes = b""


class _VersionProbe(msgspec.Struct):
    schema_version: Any = None


_encoder: Final = msgspec.json.Encoder()
#: The wire encoder's ``encode`` for any value (the emit hot path encodes the payload
#: alone; a bound C method, so no Python frame per call).
encode_json: Final[Callable[[Any], bytes]] = _encoder.encode
#: What the encoder raises for a value that is not JSON (named `payload` at emit).
ENCODE_ERRORS: Final = (TypeError, msgspec.EncodeError, OverflowError)
_decoder: Final = msgspec.json.Decoder(EventRecord)
_probe: Final = msgspec.json.Decoder(_VersionProbe)
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def encode_record(record: EventRecord) -> bytes:
    """Serialize a record to wire JSON."""
    return _encoder.encode(record)


def check_size(data: bytes, limit_bytes: int) -> None:
    """Raise EventTooLarge when ``data`` exceeds ``limit_bytes``."""
    if len(data) > limit_bytes:
        raise EventTooLarge(len(data), limit_bytes)


def encode_checked(record: EventRecord, limit_bytes: int) -> bytes:
    """Encode a record a producer is about to send: a payload that is not JSON names
    the `payload` field, a result over ``limit_bytes`` raises EventTooLarge."""
    try:
        value = _encoder.encode(record)
    except ENCODE_ERRORS as exc:
        raise EventValidationError("payload", f"is not JSON-serializable: {exc}") from exc
    check_size(value, limit_bytes)
    return value


def check_metadata(metadata: dict[str, Any]) -> None:
    """The known metadata keys hold a short string or null (what EventMetadata accepts)."""
    for key in METADATA_KEYS:
        value = metadata.get(key)
        if value is not None and (type(value) is not str or len(value) > METADATA_VALUE_MAX):
            raise EventValidationError(
                f"metadata.{key}", f"must be a string of at most {METADATA_VALUE_MAX} characters"
            )


class _SeenNames:
    """One patterned name field: its full-match check and the values seen to pass it.

    Bounded: emptied when it reaches ``limit`` values (stream ids can be many; a value
    dropped is checked again the next time, that is all).
    """

    __slots__ = ("field", "limit", "match", "pattern", "seen")

    def __init__(self, field: str, pattern: str, limit: int = 65_536) -> None:
        self.field = field
        self.pattern = pattern
        self.limit = limit
        self.match = full_match(pattern)
        self.seen: set[str] = set()

    def check(self, value: str) -> None:
        """Pass ``value`` (and remember it) or raise naming the field."""
        if value in self.seen:
            return
        if self.match(value) is None:
            raise EventValidationError(self.field, f"must match {self.pattern}")
        if len(self.seen) >= self.limit:
            self.seen.clear()
        self.seen.add(value)


_EVENT_TYPES: Final = _SeenNames("event_type", EVENT_TYPE_PATTERN)
_STREAMS: Final = _SeenNames("stream_id", STREAM_ID_PATTERN)
_TENANTS: Final = _SeenNames("routing.tenant_id", TENANT_ID_PATTERN)
_PROJECTS: Final = _SeenNames("routing.project_id", PROJECT_ID_PATTERN)
_EVENT_TYPES_SEEN: Final = _EVENT_TYPES.seen
_STREAMS_SEEN: Final = _STREAMS.seen
_TENANTS_SEEN: Final = _TENANTS.seen
_PROJECTS_SEEN: Final = _PROJECTS.seen
_EVENT_ID_FULL: Final = full_match(EVENT_ID_PATTERN)


def decode_record(data: bytes) -> EventRecord:
    """Parse and validate wire JSON; errors name the field (EventRejected subclasses)."""
    try:
        record = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        _raise_if_unknown_version(data)
        raise EventValidationError(_field_of(exc), str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise EventValidationError("$", f"not a JSON event document ({exc})") from exc
    if record.schema_version not in KNOWN_SCHEMA_VERSIONS:
        raise UnknownSchemaVersion(record.schema_version, KNOWN_SCHEMA_VERSIONS)
    if _EVENT_ID_FULL(record.event_id) is None:
        raise EventValidationError("event_id", f"must match {EVENT_ID_PATTERN}")
    routing = record.routing
    # Inline set lookups: the common case costs no call (module doc).
    if not (
        record.event_type in _EVENT_TYPES_SEEN
        and record.stream_id in _STREAMS_SEEN
        and routing.tenant_id in _TENANTS_SEEN
        and routing.project_id in _PROJECTS_SEEN
    ):
        _EVENT_TYPES.check(record.event_type)
        _STREAMS.check(record.stream_id)
        _TENANTS.check(routing.tenant_id)
        _PROJECTS.check(routing.project_id)
    check_metadata(record.metadata)
    return record


def _raise_if_unknown_version(data: bytes) -> None:
    try:
        version = _probe.decode(data).schema_version
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    if version is not None and version not in KNOWN_SCHEMA_VERSIONS:
        raise UnknownSchemaVersion(version, KNOWN_SCHEMA_VERSIONS)


def _field_of(exc: msgspec.ValidationError) -> str:
    match = _AT_PATH.search(str(exc))
    return match.group(1) if match and match.group(1) else "$"


def record_from_event(event: StreamEvent) -> EventRecord:
    """Convert the pydantic model to the wire struct (already validated by pydantic)."""
    routing = event.routing
    return EventRecord(
        schema_version=event.schema_version,
        event_id=event.event_id,
        ts=event.ts,
        event_type=event.event_type,
        stream_id=event.stream_id,
        routing=WireRouting(
            tenant_id=routing.tenant_id,
            env=routing.env,
            mode=routing.mode,
            project_id=routing.project_id,
        ),
        metadata=event.metadata.model_dump(),
        payload=event.payload,
    )


def event_from_record(record: EventRecord) -> StreamEvent:
    """Convert the wire struct to the pydantic model (validates again)."""
    return StreamEvent.from_wire(_encoder.encode(record))

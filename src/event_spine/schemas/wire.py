"""The wire format, encoded and decoded with msgspec (compiled) instead of pydantic.

Why two models: pydantic's StreamEvent is the documented contract, but costs ~8 µs
per event to build and dump; msgspec structs cost ~1-2 µs. Both read the same
constants from ``formats`` and ``tests/schemas/test_wire_equivalence.py`` checks
they accept and reject exactly the same documents.

The structs are ``gc=False``: a sink batch keeps thousands of them alive, and the
cyclic garbage collector walked every one on each pass (decoding took 5.2 µs per
event with tracking, 3.4 µs without). They cannot be part of a reference cycle:
their fields are strings, datetimes, ints and JSON values, never the struct itself.
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
    python_pattern,
)
from event_spine.schemas.scope import Scope, ScopeTuple

TenantId = Annotated[str, msgspec.Meta(pattern=python_pattern(TENANT_ID_PATTERN))]
ProjectId = Annotated[str, msgspec.Meta(pattern=python_pattern(PROJECT_ID_PATTERN))]


class WireRouting(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The routing scope of an event on the wire."""

    tenant_id: TenantId
    env: Env
    mode: Mode
    project_id: ProjectId

    def scope(self) -> Scope:
        """As a pydantic Scope."""
        return Scope(
            tenant_id=self.tenant_id, env=self.env, mode=self.mode, project_id=self.project_id
        )

    def key(self) -> ScopeTuple:
        """Same identity as Scope.key()."""
        return (self.tenant_id, self.env, self.mode, self.project_id)


class EventRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A StreamEvent as the pipeline carries it. Field order is the wire order."""

    schema_version: int
    event_id: Annotated[str, msgspec.Meta(pattern=python_pattern(EVENT_ID_PATTERN))]
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    event_type: Annotated[str, msgspec.Meta(pattern=python_pattern(EVENT_TYPE_PATTERN))]
    stream_id: Annotated[str, msgspec.Meta(pattern=python_pattern(STREAM_ID_PATTERN))]
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

"""StreamEvent: the public, documented event contract (pydantic v2).

The wire format is the JSON of this model (see ``event_spine.schemas.wire``, which
encodes and decodes it without pydantic on hot paths; a test keeps both in step).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from event_spine.schemas.formats import (
    EVENT_ID_PATTERN,
    EVENT_TYPE_PATTERN,
    KNOWN_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    STREAM_ID_PATTERN,
)
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.scope import Scope

METADATA_VALUE_MAX = 256
WIRE_FIELDS = (
    "schema_version",
    "event_id",
    "ts",
    "event_type",
    "stream_id",
    "routing",
    "metadata",
    "payload",
)


class EventMetadata(BaseModel):
    """The envelope: who and what caused the event. Extra keys are allowed."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    request_id: str | None = Field(default=None, max_length=METADATA_VALUE_MAX)
    trace_id: str | None = Field(default=None, max_length=METADATA_VALUE_MAX)
    user_id: str | None = Field(default=None, max_length=METADATA_VALUE_MAX)
    surface_id: str | None = Field(default=None, max_length=METADATA_VALUE_MAX)
    run_id: str | None = Field(default=None, max_length=METADATA_VALUE_MAX)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StreamEvent(BaseModel):
    """One event in one stream of one scope."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: int = Field(default=SCHEMA_VERSION, description="Wire schema version.")
    event_id: str = Field(
        default_factory=new_event_id,
        pattern=EVENT_ID_PATTERN,
        description="Lower-case UUID text; generated (v7) when absent. Globally unique.",
    )
    ts: AwareDatetime = Field(default_factory=_utc_now, description="When it happened (UTC).")
    event_type: str = Field(pattern=EVENT_TYPE_PATTERN, description="e.g. `order.created`.")
    stream_id: str = Field(pattern=STREAM_ID_PATTERN, description="e.g. `orders/o_123`.")
    routing: Scope
    metadata: EventMetadata = Field(default_factory=EventMetadata)
    payload: dict[str, Any]

    @classmethod
    def from_wire(cls, data: bytes | str) -> StreamEvent:
        """Validate wire JSON: like model_validate_json, but every field is required.

        Defaults are for building events in Python. On the wire every field must be
        present: an id invented at decode time would turn redelivery into duplicates.
        """
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            missing = [name for name in WIRE_FIELDS if name not in document]
            if missing:
                raise ValueError(f"wire event lacks field(s) {missing}")
        return cls.model_validate_json(data)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in KNOWN_SCHEMA_VERSIONS:
            raise ValueError(
                f"unknown schema_version {value}; known: {list(KNOWN_SCHEMA_VERSIONS)}"
            )
        return value

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

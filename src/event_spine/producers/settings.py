"""Producer settings (env prefix ``SPINE_PRODUCER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from event_spine.kafka.settings import KafkaComponentSettings
from event_spine.profiles import PRODUCER_PROFILES, Profile, apply_profile, checked, profile_field
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES

OverflowPolicy = Literal["drop_newest", "block", "raise"]


class ProducerSettings(KafkaComponentSettings):
    """How emit() buffers and how the sender talks to Kafka."""

    model_config = SettingsConfigDict(
        env_prefix="SPINE_PRODUCER_",
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_by_name=True,  # `profile=` in code; the env names are its aliases
    )

    profile: Profile = profile_field("SPINE_PRODUCER_", PRODUCER_PROFILES)

    topic: str = "spine.events"
    client_id: str = Field(
        default="event-spine-producer", description="Default: SPINE_KAFKA_CLIENT_ID if set."
    )
    # Buffer between emit() and the sender thread.
    buffer_max_events: int = Field(default=100_000, ge=1)
    overflow_policy: OverflowPolicy = Field(
        default="drop_newest",
        description="Full buffer: drop the new event and count it (never blocks), "
        "block up to block_timeout_ms then raise BufferFull, or raise BufferFull at once.",
    )
    block_timeout_ms: int = Field(default=1_000, ge=0)
    spill_dir: str | None = Field(
        default=None,
        description="When set, a full buffer spills to segment files here instead of "
        "applying overflow_policy; the policy applies once spill_max_bytes is reached.",
    )
    spill_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024)
    # Sender and aiokafka.
    transport: Literal["aiokafka", "confluent"] = Field(
        default="aiokafka",
        description="Client that sends: aiokafka, or confluent-kafka (librdkafka; "
        "pip install 'event-spine[confluent]').",
    )
    linger_ms: int = Field(default=5, ge=0, description="Set by `profile` unless given.")
    max_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    compression_type: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "lz4"
    acks: Literal["all", "1", "0"] = "all"
    # Off for Tansu (InitProducerId fails there); on against real Kafka.
    enable_idempotence: bool = False
    request_timeout_ms: int = Field(default=30_000, ge=100)
    max_in_flight_events: int = Field(default=50_000, ge=1)
    retry_backoff_max_ms: int = Field(default=5_000, ge=10)
    close_timeout_ms: int = Field(default=10_000, ge=0)

    @field_validator("profile", mode="before")
    @classmethod
    def _profile_name(cls, value: object) -> object:
        return checked(value, "SPINE_PRODUCER_")

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: object) -> object:
        return apply_profile(data, "SPINE_PRODUCER_", PRODUCER_PROFILES)

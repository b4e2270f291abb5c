"""Sink worker settings (env prefix ``SPINE_SINK_``)."""

from __future__ import annotations

import os
import socket
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from event_spine.kafka.settings import KafkaComponentSettings
from event_spine.profiles import SINK_PROFILES, Profile, apply_profile, checked, profile_field
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES
from event_spine.schemas.routes import BackendType


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class SinkSettings(KafkaComponentSettings):
    """One sink worker: where to consume, where routes live, how to back off."""

    model_config = SettingsConfigDict(
        env_prefix="SPINE_SINK_",
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_by_name=True,  # `profile=` in code; the env names are its aliases
    )

    profile: Profile = profile_field("SPINE_SINK_", SINK_PROFILES)

    topic: str = "spine.events"
    group_id: str = "spine-sink"
    dlq_topic: str | None = Field(default=None, description="Default: `<topic>.dlq`.")
    dlq_partitions: int = Field(default=1, ge=1)
    worker_id: str = Field(default_factory=_default_worker_id)
    # Where the routing registry lives. Required: there is no default registry.
    registry_backend: BackendType
    registry_config: dict[str, Any]
    route_cache_ttl_s: float = Field(default=5.0, ge=0)
    audit_route_lookups: bool = Field(
        default=True,
        description="Emit an audit event (into `topic`) for each registry lookup the route "
        "cache makes.",
    )
    # Batching.
    max_records: int = Field(default=2_000, ge=1)
    batch_timeout_ms: int = Field(default=200, ge=1, description="Set by `profile` unless given.")
    fetch_max_wait_ms: int = Field(default=100, ge=1, description="Set by `profile` unless given.")
    max_partition_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # 6 s: the lowest session real Kafka accepts by default (group.min.session.timeout.ms);
    # a killed member's partitions wait this long when no replacement rejoins in time.
    # Measured on Tansu 0.6.0 (docs/operations.md, crash recovery): a static-member rejoin
    # took 6.0 s at 2-6 s sessions and 24-25 s at 10 s.
    session_timeout_ms: int = Field(
        default=6_000,
        ge=1_000,
        description="How long the group waits for a silent member (a killed worker) before "
        "handing its partitions on. See docs/operations.md, crash recovery.",
    )
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (KIP-345): a stable id per replica (e.g. a "
        "StatefulSet pod name). A restarted worker with the same id takes its partitions "
        "back without a rebalance on brokers that support it. Never share one id between "
        "two live workers.",
    )
    instance_id: str | None = Field(
        default=None,
        min_length=1,
        description="A stable name per replica (a StatefulSet pod name, a slot). When set, "
        "the worker's consumer uses it as its Kafka client id, and a starting worker first "
        "looks for the group member a dead predecessor of the same name left (a kill -9 "
        "sends no LeaveGroup) and continues it (instance_recovery): its partitions are "
        "read again at once, not after session_timeout_ms. Never shared by two live "
        "workers.",
    )
    instance_recovery: Literal["continue", "remove"] = Field(
        default="continue",
        description="With instance_id, what a starting worker does with the member its dead "
        "predecessor left. continue: becomes that member (its partitions, no rebalance; "
        "on Tansu a SyncGroup only). remove: removes it with a LeaveGroup and joins as a "
        "new member (the whole group rebalances). See docs/operations.md, crash recovery.",
    )
    rebalance_timeout_ms: int = Field(default=30_000, ge=1_000)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024)
    # Failures.
    on_route_missing: Literal["dead_letter", "hold"] = Field(
        default="dead_letter",
        description="dead_letter: park and go on; hold: pause the partition from the "
        "unrouted event on (other partitions go on) and retry until an operator adds the "
        "route.",
    )
    retry_backoff_initial_ms: int = Field(default=200, ge=1)
    retry_backoff_max_ms: int = Field(default=10_000, ge=1)
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Tries of a batch the store refuses (or fails unexpectedly) before "
        "its refused events are dead-lettered.",
    )
    shutdown_timeout_s: float = Field(default=15.0, ge=0)
    # Observability.
    http_port: int | None = Field(
        default=9400,
        ge=0,
        le=65535,
        description="Port of /metrics, /healthz and /readyz (0: any free port; None: off).",
    )
    http_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    log_format: Literal["json", "pretty"] = "pretty"

    @field_validator("profile", mode="before")
    @classmethod
    def _profile_name(cls, value: object) -> object:
        return checked(value, "SPINE_SINK_")

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: object) -> object:
        return apply_profile(data, "SPINE_SINK_", SINK_PROFILES)

    @property
    def dead_letter_topic(self) -> str:
        """The DLQ topic name."""
        return self.dlq_topic or f"{self.topic}.dlq"

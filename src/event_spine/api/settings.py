"""ApiSettings: what `spine serve` runs with (frozen; units in the names)."""

from __future__ import annotations

from dataclasses import dataclass

from event_spine.kafka.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the HTTP API needs besides the open registry and key stores."""

    kafka: KafkaSettings
    topic: str = "spine.events"
    #: Dead letters listed by the admin route (default ``<topic>.dlq``).
    dlq_topic: str | None = None
    #: The sink's consumer group, whose lag the admin route reports.
    sink_group_id: str = "spine-sink"
    #: Token bucket per key: sustained requests per second, and the burst above it.
    rate_per_s: float = 50.0
    rate_burst: int = 100
    #: SSE: events held per connection at most (with the Kafka consumer's own fetch
    #: buffer, the memory bound of a connection).
    sse_buffer_events: int = 1_000
    #: SSE: how long the buffer may stay full (the client taking nothing) before the
    #: client is sent an ``overflow`` event and disconnected.
    sse_stall_s: float = 10.0
    #: SSE: a comment line after this long without an event, so proxies keep the
    #: connection and the client sees it is alive.
    sse_heartbeat_s: float = 15.0
    #: SSE: how long an overflowing client gets to take the ``overflow`` event
    #: before the connection is cut.
    sse_overflow_grace_s: float = 2.0
    #: POST /v1/events body size at most.
    max_body_bytes: int = 1_048_576

    @property
    def dead_letter_topic(self) -> str:
        """The DLQ topic."""
        return self.dlq_topic or f"{self.topic}.dlq"

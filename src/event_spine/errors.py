"""Every error event-spine raises, under one root.

Retry policy reads ``retriable`` on the class, never the message text::

    SpineError
    ├── ConfigurationError            (not retriable: fix settings or the registry)
    │   ├── RouteNotFound              no route for a resource kind in a scope
    │   ├── BackendNotAllowed          e.g. the filesystem store outside lab mode
    │   │   └── BackendNotDurable      a durable resource routed to a non-durable backend
    │   ├── StoreLayoutOutdated        a store written by an older release: `spine migrate`
    │   ├── UnknownBackend             a route names a backend type nobody implements
    │   ├── MissingDependency          an optional extra is not installed
    │   ├── KafkaSecurityError         the Kafka connection's security settings are wrong
    │   │   ├── KafkaTlsFailed         TLS refused: CA, host name, protocol or client cert
    │   │   └── KafkaAuthFailed        SASL refused: mechanism or user (never the password)
    │   ├── RegistryNotFound           a routing registry location holds no registry
    │   ├── KeyStoreUnsupported        the registry backend keeps no API keys
    │   ├── ReplayLedgerUnsupported    the registry backend keeps no DLQ replay ledger
    │   ├── ConcurrentUpdate           (retriable) a registry write lost a race
    │   └── TopicNotFound              the Kafka cluster does not know a topic
    ├── EventRejected                  (poison: the event will never be accepted)
    │   ├── EventValidationError       a field is missing or malformed
    │   ├── EventTooLarge              serialized size above the configured limit
    │   └── UnknownSchemaVersion       a wire schema_version this build cannot read
    ├── BrokerUnavailable              (retriable) no answer from the Kafka cluster in time
    ├── ScopeViolation                 tenant / env / mode / project mismatch
    ├── UnknownCursor                  list_after with an event id the stream lacks
    ├── InvalidQuery                   a read query's field is malformed (names it)
    ├── ProducerError
    │   ├── BufferFull                 (retriable) the emit buffer is full ("raise"/"block")
    │   ├── ProducerClosed             emit after close()
    │   ├── ProducerNotConfigured      module-level emit without a default producer
    │   ├── DeliveryFailed             (retriable) emit_acked: the broker did not ack
    │   └── AuditPersistFailed         (retriable) strict audit: not confirmed stored
    │                                  and chained in the routed store in time
    ├── StoreError                     raised by backends, SDK errors mapped to these
    │   ├── StoreUnavailable           (retriable) connection refused, timeout, throttled
    │   └── StorePermanentError        (not retriable) the store refused the data
    ├── ReplayFailed                   a replay's target kept failing; rerun to resume
    └── CutoverFailed                  a cutover step failed; the report says which

How the sink classifies a failure (``pipeline/processor.py``) reads the same
flag: a ``retriable`` error rewinds and retries the batch (never dead-lettered); a
ConfigurationError dead-letters (or holds) by route; any other SpineError is the
store refusing data (retried ``max_attempts`` times, then isolated event by event);
anything else is a bug (retried, then dead-lettered as ``store_error``).
"""

from __future__ import annotations

from typing import ClassVar


class SpineError(Exception):
    """Root of every event-spine error."""

    retriable: ClassVar[bool] = False


class ConfigurationError(SpineError):
    """Settings or registry content are wrong; retrying without a fix cannot help."""


class RouteNotFound(ConfigurationError):
    """No route exists for a resource kind in a scope. There is never a fallback."""

    def __init__(
        self, resource_kind: str, tenant_id: str, env: str, project_id: str, mode: str | None
    ) -> None:
        self.resource_kind = resource_kind
        self.tenant_id = tenant_id
        self.env = env
        self.project_id = project_id
        self.mode = mode
        super().__init__(
            f"No `{resource_kind}` route for tenant_id={tenant_id!r}, env={env!r}, "
            f"project_id={project_id!r}, mode={mode!r}. Register one with "
            f"`spine routes set` or RoutingRegistry.set_route(); event-spine never falls "
            f"back to a default backend."
        )


class BackendNotAllowed(ConfigurationError):
    """A backend was requested in a mode that forbids it."""


class BackendNotDurable(BackendNotAllowed):
    """A resource that must survive a restart is routed to a non-durable backend."""


class StoreLayoutOutdated(ConfigurationError):
    """A store holds an older layout: it is refused, never misread, until migrated."""


class UnknownBackend(ConfigurationError):
    """A route names a backend type that no store implements."""


class MissingDependency(ConfigurationError):
    """A backend's optional dependency is not installed."""

    def __init__(self, backend: str, extra: str, module: str) -> None:
        super().__init__(
            f"The `{backend}` backend needs the `{module}` package: "
            f"install it with `pip install 'event-spine[{extra}]'`."
        )


class KafkaSecurityError(ConfigurationError):
    """A Kafka connection failed because of its security settings; ``setting`` names the
    SPINE_KAFKA_* variable to fix. Not retriable: the same settings fail the same way."""

    def __init__(self, message: str, setting: str) -> None:
        self.setting = setting
        super().__init__(message)


class KafkaTlsFailed(KafkaSecurityError):
    """The TLS handshake with the broker failed (untrusted CA, wrong host name, a
    plaintext client on a TLS port or the reverse, a missing client certificate)."""


class KafkaAuthFailed(KafkaSecurityError):
    """The broker refused the SASL login; names the mechanism and the user only."""

    def __init__(self, message: str, mechanism: str, username: str | None) -> None:
        self.mechanism = mechanism
        self.username = username
        super().__init__(message, "SPINE_KAFKA_SASL_USERNAME / SPINE_KAFKA_SASL_PASSWORD")


class RegistryNotFound(ConfigurationError):
    """The routing registry a command was pointed at does not exist (and was not created)."""


class KeyStoreUnsupported(ConfigurationError):
    """The registry backend has no API key table (only SQLite and PostgreSQL do)."""


class ReplayLedgerUnsupported(ConfigurationError):
    """The routing registry's backend cannot hold the DLQ replay ledger."""


class ConcurrentUpdate(ConfigurationError):
    """A compare-and-set write found a newer version; re-read and try again."""

    retriable = True


class TopicNotFound(ConfigurationError):
    """The Kafka cluster does not know a topic (after waiting for its metadata)."""

    def __init__(self, topic: str, bootstrap_servers: str, waited_s: float) -> None:
        self.topic = topic
        super().__init__(
            f"Topic {topic!r} does not exist on {bootstrap_servers} (waited {waited_s}s): "
            f"create it (`spine broker`, ensure_topic) or check the `topic` setting."
        )


class BrokerUnavailable(SpineError):
    """The Kafka cluster did not answer within a deadline (unreachable, or refusing)."""

    retriable = True


class EventRejected(SpineError):
    """The event can never be accepted as it is (a poison message in the sink)."""

    reason: ClassVar[str] = "invalid_event"


class EventValidationError(EventRejected, ValueError):
    """A field of an event is missing or malformed; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"Invalid event field `{field}`: {problem}")


class EventTooLarge(EventRejected, ValueError):
    """The serialized event exceeds the configured maximum size."""

    reason: ClassVar[str] = "oversize"

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"Event is {size_bytes} bytes serialized, above the limit of {limit_bytes} "
            f"bytes (`max_event_bytes`). Store large blobs in an object store and emit a "
            f"reference instead."
        )


class UnknownSchemaVersion(EventRejected):
    """The wire schema_version is not one this build can read."""

    reason: ClassVar[str] = "unknown_schema_version"

    def __init__(self, version: object, known: tuple[int, ...]) -> None:
        super().__init__(
            f"Unknown `schema_version` {version!r}; this build reads {list(known)}. "
            f"Upgrade the sink workers before the producers."
        )


class ScopeViolation(SpineError):
    """A read or write crossed tenant, env, mode or project boundaries."""


class UnknownCursor(SpineError, LookupError):
    """``list_after`` was given an event id that is not in the stream."""

    def __init__(self, stream_id: str, event_id: str) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        super().__init__(
            f"Cursor event_id {event_id!r} is not in stream {stream_id!r} (it was never "
            f"stored there, or is not durable yet). Page from the start with "
            f"after_event_id=None or pass an id this stream returned."
        )


class InvalidQuery(SpineError, ValueError):
    """A read query (EventQuery, list_streams) is malformed; ``field`` names the part."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"Invalid query field `{field}`: {problem}")


class ProducerError(SpineError):
    """The producer could not accept an event."""


class BufferFull(ProducerError):
    """The emit buffer is full and the overflow policy does not drop."""

    retriable = True


class ProducerClosed(ProducerError):
    """emit() was called after close()."""


class ProducerNotConfigured(ProducerError):
    """The module-level emit was called before a default producer was set."""


class AuditPersistFailed(ProducerError):
    """A strict audit event was not confirmed durable and linked into the audit chain.

    ``route`` names the route (or the scope whose route is missing), ``cause`` why.
    Not confirmed is not "not stored": after a timeout the sink may still store it
    (linked, the chain stays whole). Nothing is ever stored half-linked.
    """

    retriable = True

    def __init__(self, event_id: str, route: str, cause: BaseException | str) -> None:
        self.event_id = event_id
        self.route = route
        self.cause = cause
        super().__init__(
            f"Strict audit event {event_id} was not confirmed stored via {route}: {cause}"
        )


class DeliveryFailed(ProducerError):
    """The broker did not acknowledge the event before the deadline (or refused it)."""

    retriable = True

    def __init__(self, event_id: str, cause: BaseException | str) -> None:
        self.event_id = event_id
        self.cause = cause
        super().__init__(
            f"Event {event_id} was not acknowledged by the broker: {cause!r}. It may or may "
            f"not be stored; retry with the same `event_id` to keep one copy."
        )


class StoreError(SpineError):
    """A backend failed; SDK errors are mapped to the subclasses at the boundary."""


class StoreUnavailable(StoreError):
    """The backend is down, unreachable or throttling; retry later."""

    retriable = True

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StorePermanentError(StoreError):
    """The backend refused the data; retrying the same write cannot succeed."""


class ReplayFailed(SpineError):
    """The target stayed unavailable; nothing past the last commit was acknowledged."""


class CutoverFailed(SpineError):
    """A step could not complete; the report says which and whether the route moved."""


def is_retriable(exc: BaseException) -> bool:
    """True for an event-spine error whose class says a retry may succeed."""
    return isinstance(exc, SpineError) and exc.retriable

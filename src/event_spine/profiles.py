"""Latency profiles: one setting that picks a coherent group of batching values.

The defaults (profile ``throughput``) trade latency for batch size: the producer
lingers 5 ms, a fetch waits up to 100 ms for data, an empty poll of the batch
subscriber waits 200 ms and then sleeps as long again. Kafka answers a fetch at the
first record, so there its wait costs no latency; the local broker (Tansu) looks for
data when a fetch arrives and then after sleeping half the time left, so an event
that arrives during an idle fetch waits up to half of ``fetch_max_wait_ms``.
``low_latency`` shortens the three waits, for live subscriptions that want tens of
milliseconds; it costs idle CPU (a fetch every 25 ms per worker) and smaller
batches under light load. Its fetch wait stays at 25 ms, not less: Tansu's fetch
time grows with the number of batches in a partition and a fetch that runs out of
its wait comes back empty, so 5 ms (the first value) stalled a worker after ~20 s
at 1k events/s (docs/operations.md, "The local broker (Tansu) versus real Kafka").
docs/operations.md, "Latency profiles", has the table and the measured cost.

Select it with ``SPINE_PROFILE=low_latency`` (producer and sink worker),
``SPINE_PRODUCER_PROFILE`` / ``SPINE_SINK_PROFILE`` for one component,
``spine worker --profile low-latency`` or ``profile=`` in code. A field set
explicitly (argument, flag, env) wins over its profile value.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import AliasChoices, Field

Profile = Literal["throughput", "low_latency"]
PROFILES: Final[tuple[Profile, ...]] = ("throughput", "low_latency")
#: The one variable that selects the profile of every component.
PROFILE_ENV: Final = "SPINE_PROFILE"

#: Producer values per profile. linger_ms: how long the sender waits for more events
#: before it sends (its own loop and aiokafka's batch linger); 0 sends what is there.
PRODUCER_PROFILES: Final[dict[Profile, dict[str, Any]]] = {
    "throughput": {"linger_ms": 5},
    "low_latency": {"linger_ms": 0},
}
#: Sink worker values per profile. fetch_max_wait_ms: how long a fetch waits for data
#: when there is none (Kafka returns at the first record, Tansu within half the wait);
#: batch_timeout_ms: how long a poll waits for records, and how long faststream then
#: sleeps after an empty one.
SINK_PROFILES: Final[dict[Profile, dict[str, Any]]] = {
    "throughput": {"fetch_max_wait_ms": 100, "batch_timeout_ms": 200},
    "low_latency": {"fetch_max_wait_ms": 25, "batch_timeout_ms": 5},
}

_PROFILE_HELP = (
    "throughput (default: bigger batches) or low_latency (shorter waits; measured "
    "effect in docs/operations.md, Latency profiles). Sets {fields} unless those are "
    "set themselves. Also "
    f"{PROFILE_ENV} for every component."
)


def profile_field(env_prefix: str, table: dict[Profile, dict[str, Any]]) -> Any:
    """The ``profile`` field of a settings class: ``<PREFIX>PROFILE``, else SPINE_PROFILE."""
    fields = ", ".join(sorted(table["throughput"]))
    return Field(
        default="throughput",
        validation_alias=AliasChoices(f"{env_prefix}PROFILE", PROFILE_ENV),
        description=_PROFILE_HELP.format(fields=fields),
    )


def normalize(value: Any) -> Any:
    """``low-latency`` (a CLI spelling) -> ``low_latency``; anything else unchanged."""
    return value.strip().lower().replace("-", "_") if isinstance(value, str) else value


def checked(value: Any, env_prefix: str) -> Any:
    """The normalized profile name; an unknown one is refused naming where it is set."""
    name = normalize(value)
    if isinstance(name, str) and name not in PROFILES:
        raise ValueError(
            f"unknown profile {value!r}: use {' or '.join(PROFILES)} "
            f"(set by `profile`, {env_prefix}PROFILE or {PROFILE_ENV})"
        )
    return name


def apply_profile(data: Any, env_prefix: str, table: dict[Profile, dict[str, Any]]) -> Any:
    """A settings input with the profile's values filled in where none was given.

    A before-validator: ``data`` already holds what the caller, the env file and the
    environment gave, so anything present there wins. An unknown profile is left for
    the field's own validation to report.
    """
    if not isinstance(data, dict):
        return data
    raw = next(
        (data[key] for key in ("profile", f"{env_prefix}PROFILE", PROFILE_ENV) if key in data),
        "throughput",
    )
    values = table.get(normalize(raw))
    if values is None:
        return data
    return {**values, **data}

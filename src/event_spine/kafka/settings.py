"""Kafka connection settings (env prefix ``SPINE_KAFKA_``): one object for every client.

Every Kafka client event-spine builds (producers on both transports, the sink
worker's faststream broker and DLQ producer, replay, cutover, subscribe, the lag
probe, topic admin, ``spine dlq``) takes its address and security from one
``KafkaSettings``; ``event_spine.kafka.clients`` turns it into each library's
arguments. Per-component settings (``SPINE_PRODUCER_BOOTSTRAP_SERVERS``,
``--bootstrap``) override ``bootstrap_servers`` only.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

ENV_PREFIX = "SPINE_KAFKA_"


def env_name(field: str) -> str:
    """The environment variable of one field, for error messages."""
    return f"{ENV_PREFIX}{field.upper()}"


def _load_provider(value: Any) -> Any:
    """``module:attribute`` -> the object; a class or factory is called once."""
    if isinstance(value, str):
        module_name, sep, attribute = value.partition(":")
        if not sep or not module_name or not attribute:
            raise ValueError(f"must look like 'package.module:attribute', got {value!r}")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import {value!r}: {exc}") from exc
    if inspect.isclass(value) or (callable(value) and not hasattr(value, "token")):
        value = value()
    if not inspect.iscoroutinefunction(getattr(value, "token", None)):
        raise ValueError(
            "must be a token provider: an object with `async def token() -> str` "
            "(aiokafka.abc.AbstractTokenProvider), or a class or factory returning one"
        )
    return value


class KafkaSettings(BaseSettings):
    """Where the Kafka cluster is and how to authenticate to it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,
        # A validation error would otherwise print the input, passwords included.
        hide_input_in_errors=True,
    )

    bootstrap_servers: str = Field(description="host:port[,host:port]")
    client_id: str = Field(
        default="event-spine", description="Client id the broker sees (quotas, logs)."
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="Required with SASL_PLAINTEXT and SASL_SSL."
    )
    sasl_username: str | None = Field(
        default=None, description="PLAIN and SCRAM-* (Event Hubs: `$ConnectionString`)."
    )
    sasl_password: SecretStr | None = None
    sasl_oauth_token_provider: Any = Field(
        default=None,
        exclude=True,
        repr=False,
        description="OAUTHBEARER only: an object with `async def token() -> str` "
        "(aiokafka.abc.AbstractTokenProvider) passed in code, or 'package.module:attribute' "
        "naming one (a class or factory is called once).",
    )
    ssl_cafile: Path | None = Field(
        default=None, description="PEM CA bundle; default: the system's trusted CAs."
    )
    ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="PEM client key (mTLS).")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names its host."
    )
    startup_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a worker, replay, tail or dlq command retries an unreachable "
        "cluster at start (one log line per attempt) before it exits with a clear error.",
    )

    @field_validator("sasl_oauth_token_provider", mode="before")
    @classmethod
    def _provider(cls, value: Any) -> Any:
        return None if value in (None, "") else _load_provider(value)

    @model_validator(mode="after")
    def _combinations(self) -> KafkaSettings:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def uses_sasl(self) -> bool:
        """SASL_PLAINTEXT or SASL_SSL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        """SSL or SASL_SSL."""
        return self.security_protocol.endswith("SSL")

    def problems(self) -> list[str]:
        """Settings that contradict each other, each naming the setting to fix."""
        found: list[str] = []
        protocol = f"{env_name('security_protocol')}={self.security_protocol}"
        if self.uses_sasl and self.sasl_mechanism is None:
            found.append(f"{protocol} needs {env_name('sasl_mechanism')}")
        if not self.uses_sasl and self.sasl_mechanism is not None:
            found.append(
                f"{env_name('sasl_mechanism')} is set but {protocol} does not use SASL "
                "(use SASL_SSL or SASL_PLAINTEXT)"
            )
        if self.uses_sasl and self.sasl_mechanism not in (None, "OAUTHBEARER"):
            found.extend(
                f"SASL {self.sasl_mechanism} needs {env_name(field)}"
                for field in ("sasl_username", "sasl_password")
                if getattr(self, field) is None
            )
        if self.sasl_mechanism == "OAUTHBEARER" and self.sasl_oauth_token_provider is None:
            found.append(
                f"SASL OAUTHBEARER needs a token provider: pass "
                f"KafkaSettings(sasl_oauth_token_provider=...) in code or set "
                f"{env_name('sasl_oauth_token_provider')}=package.module:attribute"
            )
        if not self.uses_ssl:
            found.extend(
                f"{env_name(field)} is set but {protocol} does not use TLS (use SSL or SASL_SSL)"
                for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
                if getattr(self, field) is not None
            )
        if (self.ssl_keyfile is not None or self.ssl_key_password) and not self.ssl_certfile:
            found.append(f"{env_name('ssl_keyfile')} needs {env_name('ssl_certfile')}")
        for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, field)
            if path is not None and not Path(path).is_file():
                found.append(f"{env_name(field)}: no such file {str(path)!r}")
        return found

    def with_overrides(self, **values: Any) -> KafkaSettings:
        """A copy with the given fields replaced (None values are ignored), validated."""
        given = {k: v for k, v in values.items() if v is not None}
        if all(getattr(self, k) == v for k, v in given.items()):
            return self
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**kept, **given})

    def client_id_for(self, default: str) -> str:
        """``client_id`` when set (SPINE_KAFKA_CLIENT_ID), else the component's own."""
        return self.client_id if "client_id" in self.model_fields_set else default


def load_kafka_settings(env_file: Path | None = None, **overrides: Any) -> KafkaSettings:
    """``SPINE_KAFKA_*`` from the environment (and ``env_file``), overrides on top.

    Overrides that are None are ignored, so a CLI flag left unset falls back to the env.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if env_file is not None:
        return KafkaSettings(_env_file=env_file, **given)
    return KafkaSettings(**given)


#: Where a Kafka client connects: the full settings, or just bootstrap servers (then
#: the rest comes from ``SPINE_KAFKA_*``, as a ``--bootstrap`` flag overrides the env).
KafkaTarget = KafkaSettings | str


def as_kafka(target: KafkaTarget) -> KafkaSettings:
    """KafkaSettings from either form of ``KafkaTarget``."""
    if isinstance(target, KafkaSettings):
        return target
    return load_kafka_settings(bootstrap_servers=target)


def describe_errors(exc: ValidationError, prefix: str = ENV_PREFIX) -> str:
    """A ValidationError as one line naming each setting by its env name (no values)."""
    parts = []
    for error in exc.errors(include_input=False):
        field = ".".join(map(str, error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{prefix}{field.upper()}: {message}" if field else message)
    return "; ".join(parts)


def component_kafka(data: Any, bootstrap_env: str) -> Any:
    """A component's settings input with ``kafka`` resolved (a before-validator).

    ``kafka`` given: its ``bootstrap_servers`` is overridden by the component's own
    ``bootstrap_servers`` when that is set; not given: loaded from ``SPINE_KAFKA_*``
    with the same override. A component ``client_id`` left unset takes
    SPINE_KAFKA_CLIENT_ID when that is set. ``bootstrap_servers`` ends up mirroring
    the effective value.
    """
    if not isinstance(data, dict):
        return data
    bootstrap = data.get("bootstrap_servers")
    given = data.get("kafka")
    try:
        if isinstance(given, KafkaSettings):
            kafka = given.with_overrides(bootstrap_servers=bootstrap)
        elif isinstance(given, dict):
            own = bootstrap or given.get("bootstrap_servers")
            kafka = load_kafka_settings(**{**given, "bootstrap_servers": own})
        else:
            kafka = load_kafka_settings(bootstrap_servers=bootstrap)
    except ValidationError as exc:
        if any(e["loc"] == ("bootstrap_servers",) for e in exc.errors()):
            raise ValueError(
                f"set {bootstrap_env} or {env_name('bootstrap_servers')} (host:port)"
            ) from None
        raise ValueError(describe_errors(exc)) from None
    resolved = {**data, "kafka": kafka, "bootstrap_servers": kafka.bootstrap_servers}
    if "client_id" not in data and "client_id" in kafka.model_fields_set:
        resolved["client_id"] = kafka.client_id
    return resolved


class KafkaComponentSettings(BaseSettings):
    """Base of a component's settings that talk to Kafka (producer, sink worker).

    ``kafka`` holds the connection; the component's own ``<PREFIX>BOOTSTRAP_SERVERS``
    overrides its address (see ``component_kafka``).
    """

    # Both filled by ``_kafka`` before validation: not required here.
    bootstrap_servers: str = Field(
        default="",
        description="host:port[,host:port]; overrides SPINE_KAFKA_BOOTSTRAP_SERVERS (one of "
        "the two is required).",
    )
    kafka: KafkaSettings = Field(  # type: ignore[assignment]  # None never survives _kafka
        default=None, description="Connection and security (default: loaded from SPINE_KAFKA_*)."
    )

    @model_validator(mode="before")
    @classmethod
    def _kafka(cls, data: Any) -> Any:
        prefix = str(cls.model_config.get("env_prefix", ""))
        return component_kafka(data, f"{prefix}BOOTSTRAP_SERVERS")

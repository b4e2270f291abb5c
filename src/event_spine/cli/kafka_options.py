"""The one set of Kafka connection flags every `spine` command that talks to Kafka takes.

``@kafka_options`` adds the flags to a command and hands it a ``kafka:
KafkaSettings`` built from them on top of ``SPINE_KAFKA_*`` (and ``--kafka-env-file``):
a flag wins over the environment. Passwords have no flag (a command line is visible
to every user of the machine): they come from ``SPINE_KAFKA_SASL_PASSWORD`` /
``SPINE_KAFKA_SSL_KEY_PASSWORD`` or the env file.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer
from dotenv import dotenv_values
from pydantic import ValidationError

from event_spine.kafka.settings import (
    ENV_PREFIX,
    KafkaSettings,
    describe_errors,
    load_kafka_settings,
)

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Kafka connection"


def _option(*names: str, help_text: str) -> Any:
    return typer.Option(None, *names, help=help_text, rich_help_panel=_PANEL)


#: (parameter, annotation, typer option, KafkaSettings field or None)
_FLAGS: list[tuple[str, Any, Any, str | None]] = [
    (
        "bootstrap",
        str | None,
        typer.Option(
            None,
            "--bootstrap",
            envvar="SPINE_BOOTSTRAP",
            help="Kafka bootstrap servers host:port[,host:port] (or "
            "SPINE_KAFKA_BOOTSTRAP_SERVERS).",
            rich_help_panel=_PANEL,
        ),
        "bootstrap_servers",
    ),
    (
        "kafka_env_file",
        Path | None,
        _option("--kafka-env-file", help_text="A file of SPINE_KAFKA_* lines (secrets too)."),
        None,
    ),
    (
        "security_protocol",
        str | None,
        _option(
            "--security-protocol",
            help_text="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL "
            "(SPINE_KAFKA_SECURITY_PROTOCOL; default PLAINTEXT).",
        ),
        "security_protocol",
    ),
    (
        "sasl_mechanism",
        str | None,
        _option(
            "--sasl-mechanism",
            help_text="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER "
            "(SPINE_KAFKA_SASL_MECHANISM). The password: SPINE_KAFKA_SASL_PASSWORD.",
        ),
        "sasl_mechanism",
    ),
    (
        "sasl_username",
        str | None,
        _option("--sasl-username", help_text="SPINE_KAFKA_SASL_USERNAME."),
        "sasl_username",
    ),
    (
        "ssl_cafile",
        Path | None,
        _option("--ssl-cafile", help_text="PEM CA bundle (SPINE_KAFKA_SSL_CAFILE)."),
        "ssl_cafile",
    ),
    (
        "ssl_certfile",
        Path | None,
        _option("--ssl-certfile", help_text="PEM client certificate (SPINE_KAFKA_SSL_CERTFILE)."),
        "ssl_certfile",
    ),
    (
        "ssl_keyfile",
        Path | None,
        _option(
            "--ssl-keyfile",
            help_text="PEM client key (SPINE_KAFKA_SSL_KEYFILE; its password: "
            "SPINE_KAFKA_SSL_KEY_PASSWORD).",
        ),
        "ssl_keyfile",
    ),
    (
        "ssl_check_hostname",
        bool | None,
        typer.Option(
            None,
            "--ssl-check-hostname/--no-ssl-check-hostname",
            help="Check the broker certificate's host name (SPINE_KAFKA_SSL_CHECK_HOSTNAME; "
            "default on).",
            rich_help_panel=_PANEL,
        ),
        "ssl_check_hostname",
    ),
    (
        "startup_timeout_s",
        float | None,
        typer.Option(
            None,
            "--startup-timeout-s",
            min=0,
            help="Seconds to retry an unreachable cluster at start, one log line per "
            "attempt, before exiting with an error (SPINE_KAFKA_STARTUP_TIMEOUT_S; "
            "default 30).",
            rich_help_panel=_PANEL,
        ),
        "startup_timeout_s",
    ),
]


_FIELD = {name: field for name, _, _, field in _FLAGS if field is not None}


@dataclass(frozen=True)
class KafkaFlags:
    """What the Kafka flags of one command invocation said."""

    bootstrap: str | None = None
    env_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """KafkaSettings fields from the env file (below the environment) and the flags
        (above it); bootstrap servers not included."""
        from_file: dict[str, Any] = {}
        if self.env_file is not None:
            if not self.env_file.is_file():
                raise typer.BadParameter(
                    f"no such file {str(self.env_file)!r}", param_hint="--kafka-env-file"
                )
            for key, value in dotenv_values(self.env_file).items():
                name = key.upper()
                if name.startswith(ENV_PREFIX) and name not in os.environ and value is not None:
                    from_file[name.removeprefix(ENV_PREFIX).lower()] = value
        return {**from_file, **self.overrides}

    def settings(self) -> KafkaSettings:
        """The command's KafkaSettings; a clear usage error naming what is wrong."""
        found = self.settings_if_any()
        if found is None:
            raise typer.BadParameter(
                "give --bootstrap or set SPINE_KAFKA_BOOTSTRAP_SERVERS", param_hint="--bootstrap"
            )
        return found

    def settings_if_any(self) -> KafkaSettings | None:
        """The command's KafkaSettings, or None when no bootstrap servers were given."""
        values = self.values()
        if self.bootstrap:
            values["bootstrap_servers"] = self.bootstrap
        try:
            return load_kafka_settings(**values)
        except ValidationError as exc:
            if any(
                e["loc"] == ("bootstrap_servers",) and e["type"] == "missing" for e in exc.errors()
            ):
                return None
            raise typer.BadParameter(describe_errors(exc), param_hint="Kafka settings") from None


def kafka_options(command: F) -> F:
    """Give a command the Kafka flags; it receives them as ``kafka: KafkaFlags``.

    Typer reads a command's parameters from its signature: the wrapper's signature is
    the command's, without ``kafka``, plus the flags.
    """
    signature = inspect.signature(command)  # annotations stay strings: not evaluated
    kept = [p for p in signature.parameters.values() if p.name != "kafka"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
        for name, ann, opt, _ in _FLAGS
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name, _, _, _ in _FLAGS}
        flags = KafkaFlags(
            bootstrap=given.pop("bootstrap"),
            env_file=given.pop("kafka_env_file"),
            overrides={_FIELD[k]: v for k, v in given.items() if v is not None},
        )
        # A KafkaSecurityError propagates to the CLI's one error surface (cli/failures.py).
        return command(*args, kafka=flags, **kwargs)

    positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*positional, *keyword, *added]
    )
    # ``kafka``'s annotation may only exist for type checkers: never evaluated.
    hints = {k: v for k, v in command.__annotations__.items() if k != "kafka"}
    hints = {
        k: eval(v, command.__globals__) if isinstance(v, str) else v  # noqa: S307 - annotations
        for k, v in hints.items()
    }
    wrapper.__annotations__ = {**hints, **{name: ann for name, ann, _, _ in _FLAGS}}
    return wrapper  # type: ignore[return-value]


__all__ = ["KafkaFlags", "kafka_options"]

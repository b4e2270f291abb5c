"""The one error surface of `spine`: every failure becomes a short message and an exit code.

Commands raise; nothing below a command prints an error or picks an exit code. ``run``
wraps the whole typer app, classifies what escaped (the spine's error tree, pydantic
validation, bad JSON, click usage errors, Kafka and store connection errors) and
prints one line (or a short block) saying what to fix. ``--debug`` (or SPINE_DEBUG=1)
adds the traceback. The codes are documented in docs/operations.md and in the epilog
of ``spine --help`` (both generated from ``EXIT_CODES``; a test checks the page).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import typer
import typer.main
from pydantic import ValidationError

from event_spine.errors import (
    BrokerUnavailable,
    EventRejected,
    KafkaAuthFailed,
    ScopeViolation,
    SpineError,
    StorePermanentError,
    StoreUnavailable,
    UnknownCursor,
)


class ExitCode(IntEnum):
    """What a `spine` exit status means (one per class of error)."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    CONFIGURATION = 3
    UNREACHABLE = 4
    AUTH = 5
    REFUSED = 6
    INTERNAL = 70
    INTERRUPTED = 130


#: The documented meaning of each code (the table in `spine --help` and operations.md).
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.CHECK_FAILED: "a check failed: verify found differences, an audit chain is "
    "broken, a cutover did not finish",
    ExitCode.USAGE: "bad argument: unknown option, invalid id or value, bad JSON",
    ExitCode.CONFIGURATION: "configuration: missing route or registry, backend refused "
    "in this mode, unknown backend, missing extra",
    ExitCode.UNREACHABLE: "a broker or store could not be reached (or timed out)",
    ExitCode.AUTH: "authentication or authorization refused by the broker or store",
    ExitCode.REFUSED: "the store refused an operation or data (permanent)",
    ExitCode.INTERNAL: "unexpected internal error (a bug: rerun with --debug and report it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C / SIGINT)",
}

#: Loggers silenced in short commands unless --debug (see ``run``).
QUIET_LIBRARIES = ("aiokafka", "kafka")

#: CLI names of the model fields users type, so a validation message names the flag.
FIELD_FLAGS: dict[str, str] = {
    "tenant_id": "TENANT / --tenant",
    "env": "ENV / --env",
    "project_id": "PROJECT / --project",
    "mode": "MODE / --mode",
    "backend_type": "--backend",
    "config": "--config",
    "resource_kind": "KIND",
    "tier": "--tier",
    "health_status": "--health",
}


@dataclass(frozen=True)
class Failure:
    """A classified error: its exit code and the message to print."""

    code: int
    message: str


def exit_code_table(markdown: bool = False) -> str:
    """The documented codes, as a markdown table or plain lines."""
    if markdown:
        rows = [f"| {int(c)} | {text} |" for c, text in EXIT_CODES.items()]
        return "\n".join(["| exit code | meaning |", "|---|---|", *rows])
    return "\n".join(f"{int(c):>3}  {text}" for c, text in EXIT_CODES.items())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_auth(exc: BaseException) -> bool:
    name = type(exc).__name__
    if "Authorization" in name or "Authentication" in name or name.startswith("Sasl"):
        return True
    # PostgreSQL SQLSTATE class 28: invalid authorization (bad password, unknown role).
    return str(getattr(exc, "sqlstate", "") or "").startswith("28")


def _is_kafka_unreachable(exc: BaseException) -> bool:
    module = type(exc).__module__
    name = type(exc).__name__
    if module.startswith("aiokafka"):
        return name in {
            "KafkaConnectionError",
            "NodeNotReadyError",
            "RequestTimedOutError",
            "KafkaTimeoutError",
            "NoBrokersAvailable",
        }
    return module.startswith("confluent_kafka") and "TRANSPORT" in str(exc).upper()


def _validation_lines(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(map(str, error["loc"])) or exc.title
        head = str(error["loc"][0]) if error["loc"] else ""
        flag = FIELD_FLAGS.get(head)
        where = f"`{loc}` ({flag})" if flag else f"`{loc}`"
        lines.append(f"invalid {where}: {error['msg']}")
    return "\n".join(lines)


def _spine_failure(exc: SpineError) -> Failure:
    if isinstance(exc, KafkaAuthFailed):
        return Failure(ExitCode.AUTH, str(exc))
    if isinstance(exc, BrokerUnavailable):  # e.g. the startup retry gave up
        return Failure(ExitCode.UNREACHABLE, str(exc))
    if isinstance(exc, StoreUnavailable):
        return Failure(ExitCode.UNREACHABLE, f"{exc} (is the store running and reachable?)")
    if isinstance(exc, StorePermanentError):
        return Failure(ExitCode.REFUSED, str(exc))
    if isinstance(exc, EventRejected | UnknownCursor | ScopeViolation):
        return Failure(ExitCode.USAGE, str(exc))
    # ConfigurationError (missing route or registry, refused or unknown backend, missing
    # extra) and the rest of the tree: fix the setup, not the command line.
    return Failure(ExitCode.CONFIGURATION, str(exc))


def _flag_value(argv: Sequence[str], flag: str, *envs: str) -> str:
    for n, arg in enumerate(argv):
        if arg == flag and n + 1 < len(argv):
            return argv[n + 1]
        if arg.startswith(f"{flag}="):
            return arg.partition("=")[2]
    return next((os.environ[e] for e in envs if os.environ.get(e)), "?")


def _usage_failure(exc: BaseException) -> Failure | None:
    """Exit requests, interrupts and click's usage errors (vendored by typer)."""
    if isinstance(exc, typer.Exit):
        return Failure(exc.exit_code, "")
    if isinstance(exc, typer.Abort | KeyboardInterrupt):
        return Failure(ExitCode.INTERRUPTED, "interrupted")
    if isinstance(exc, typer.TyperException):
        return Failure(ExitCode.USAGE, _usage_message(exc))
    if isinstance(exc, ValidationError):
        return Failure(ExitCode.USAGE, _validation_lines(exc))
    if isinstance(exc, json.JSONDecodeError):
        return Failure(ExitCode.USAGE, f"a JSON option is not valid JSON: {exc}")
    return None


def _connection_failure(exc: BaseException, argv: Sequence[str]) -> Failure | None:
    """Refused credentials or an unreachable broker, anywhere in the cause chain."""
    chain = list(_chain(exc))
    if any(_is_auth(e) for e in chain):
        return Failure(
            ExitCode.AUTH,
            f"access refused: {exc} (check the credentials and permissions of the route "
            f"config or the Kafka security settings)",
        )
    if any(_is_kafka_unreachable(e) for e in chain):
        where = _flag_value(argv, "--bootstrap", "SPINE_BOOTSTRAP", "SPINE_SINK_BOOTSTRAP_SERVERS")
        return Failure(
            ExitCode.UNREACHABLE,
            f"cannot reach the Kafka broker at {where} (`--bootstrap` / SPINE_BOOTSTRAP): "
            f"{exc}. Is the broker up and the address right?",
        )
    return None


def classify(exc: BaseException, argv: Sequence[str] = ()) -> Failure:
    """The exit code and message for an exception that ended a command."""
    found = _usage_failure(exc) or _connection_failure(exc, argv)
    if found is not None:
        return found
    if isinstance(exc, SpineError):
        return _spine_failure(exc)
    if isinstance(exc, ValueError):
        # Outside the spine's tree, a ValueError reaching here came from parsing an input.
        return Failure(ExitCode.USAGE, f"invalid value: {exc}")
    if isinstance(exc, ConnectionError | TimeoutError):
        return Failure(ExitCode.UNREACHABLE, f"connection failed: {exc!r}")
    return Failure(
        ExitCode.INTERNAL,
        f"unexpected {type(exc).__name__}: {exc}\n"
        f"This is a bug in event-spine: rerun with `--debug` for the traceback and report it.",
    )


def _usage_message(exc: typer.TyperException) -> str:
    message = str(exc.format_message()) if hasattr(exc, "format_message") else str(exc)
    if not message.strip():
        return ""  # no_args_is_help: the help was printed, nothing more to say
    ctx: typer.Context | None = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{message}\n(see `{ctx.command_path} --help`)"
    return message


def debug_requested(args: Sequence[str]) -> bool:
    """``--debug`` anywhere on the command line, or SPINE_DEBUG set to a true value."""
    return "--debug" in args or os.environ.get("SPINE_DEBUG", "").lower() in {"1", "true", "yes"}


def run(app: typer.Typer, args: Sequence[str] | None = None) -> int:
    """Run ``app`` once; print any failure as a short message; return the exit code."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = debug_requested(argv)
    muted = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    if not debug:
        # Client libraries log each failed connect before raising; the error line below
        # says it once. Long-running commands (worker) re-enable them in configure_logging.
        for name in muted:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return _run_once(app, argv, debug=debug)
    finally:
        for name, level in muted.items():
            logging.getLogger(name).setLevel(level)


def _run_once(app: typer.Typer, argv: list[str], *, debug: bool) -> int:
    try:
        command = typer.main.get_command(app)
        result: Any = command.main(argv, prog_name="spine", standalone_mode=False)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.USAGE
        failure = classify(exc, argv)
        if failure.message:
            typer.echo(f"error: {failure.message}", err=True)
        if debug and not isinstance(exc, typer.Exit):
            traceback.print_exception(exc, file=sys.stderr)
        return int(failure.code)
    # Without standalone mode, click returns the exit code of a typer.Exit.
    return result if isinstance(result, int) else 0

"""`spine worker`: one sink worker until SIGTERM/SIGINT.

Its own module so that `spine worker` starts without the rest of the CLI (``cli.main``
runs this command alone): a restarted worker's imports are part of its crash
recovery (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import typer
from pydantic import ValidationError

from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import check_registry_exists, parse_location
from event_spine.cli.root import EPILOG, HELP, spine
from event_spine.observability.logs import configure_logging
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker


def _setting(name: str, help_text: str = "", *flags: str, **kw: Any) -> Any:
    """A worker option that defaults to the environment, then to SinkSettings' default.

    The flag's own default is None (so SPINE_SINK_* still applies when it is not
    given); --help shows the effective default and the variable.
    """
    field = SinkSettings.model_fields[name]
    if field.is_required():
        shown = "required"
    elif field.default_factory is not None:
        shown = "computed"
    else:
        shown = str(field.default)
    env = f"SPINE_SINK_{name.upper()}"
    text = help_text or field.description or ""
    return typer.Option(None, *flags, help=text, show_default=f"{shown}; env {env}", **kw)


@kafka_options
def worker(
    kafka: KafkaFlags,
    registry: str | None = typer.Option(
        None,
        help="Routing registry: sqlite:/path or BACKEND:{json}. It must exist.",
        show_default="required; env SPINE_SINK_REGISTRY_BACKEND + SPINE_SINK_REGISTRY_CONFIG",
    ),
    topic: str | None = _setting("topic", "The events topic."),
    group: str | None = _setting("group_id", "Consumer group id.", "--group"),
    max_records: int | None = _setting("max_records", "Records per batch at most.", min=1),
    session_timeout_ms: int | None = _setting("session_timeout_ms", "Group session timeout (ms)."),
    heartbeat_interval_ms: int | None = _setting(
        "heartbeat_interval_ms", "Group heartbeat interval (ms)."
    ),
    group_instance_id: str | None = _setting(
        "group_instance_id",
        "Static group membership: a stable id per replica (e.g. a StatefulSet pod name); "
        "a restarted worker with it takes the dead member's partitions back (at once on "
        "Kafka; ~6 s on Tansu). Never shared.",
    ),
    instance_id: str | None = _setting(
        "instance_id",
        "A stable name per replica (e.g. a StatefulSet pod name): on start the worker "
        "continues the group member a killed predecessor of that name left, so its "
        "partitions are read again at once. Never shared by two live workers.",
    ),
    fetch_max_wait_ms: int | None = _setting(
        "fetch_max_wait_ms", "Longest wait of a fetch for data (ms)."
    ),
    profile: str | None = _setting(
        "profile",
        "Latency profile: throughput (the default) or low-latency (shorter waits, more "
        "fetches; sets fetch_max_wait_ms and batch_timeout_ms unless given; measured cost "
        "and effect: docs/operations.md, Latency profiles). Also SPINE_PROFILE.",
    ),
    worker_id: str | None = _setting("worker_id", "Worker id (HOSTNAME-PID)."),
    http_port: int | None = _setting(
        "http_port", "/metrics, /healthz, /readyz port (0: any free port)."
    ),
    log_format: str | None = _setting("log_format", "pretty or json."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log at INFO, not WARNING.", show_default="off"
    ),
) -> None:
    """Run one sink worker until SIGTERM/SIGINT.

    Every option may instead come from the environment (SPINE_SINK_*, e.g.
    SPINE_SINK_BOOTSTRAP_SERVERS, SPINE_SINK_REGISTRY_BACKEND, SPINE_SINK_REGISTRY_CONFIG)
    and SPINE_KAFKA_* (connection and security); a flag given here wins over the
    environment.
    """
    given: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "kafka": kafka.values(),
        "topic": topic,
        "group_id": group,
        "max_records": max_records,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms,
        "group_instance_id": group_instance_id,
        "instance_id": instance_id,
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "profile": profile,
        "worker_id": worker_id,
        "http_port": http_port,
        "log_format": log_format,
    }
    if registry is not None:
        given["registry_backend"], given["registry_config"] = parse_location(registry)
    try:
        settings = SinkSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(_settings_problems(exc)) from None
    check_registry_exists(settings.registry_backend, settings.registry_config, create=False)
    configure_logging(settings.log_format, logging.INFO if verbose else logging.WARNING)
    asyncio.run(SinkWorker(settings).run())


def _settings_problems(exc: ValidationError) -> str:
    """Each problem naming its flag/env; whole-object ones (the Kafka connection) name
    their SPINE_KAFKA_* settings in the message itself."""
    parts = []
    for e in exc.errors(include_input=False):
        message = str(e["msg"]).removeprefix("Value error, ")
        if not e["loc"]:
            parts.append(message)
            continue
        field = ".".join(map(str, e["loc"]))
        parts.append(f"`{field}` (flag or SPINE_SINK_{str(e['loc'][0]).upper()}): {message}")
    return "; ".join(parts)


def worker_app() -> typer.Typer:
    """`spine` with only the worker command: the same usage, options and errors."""
    app = typer.Typer(no_args_is_help=True, help=HELP, epilog=EPILOG)
    app.callback()(spine)
    app.command()(worker)
    return app

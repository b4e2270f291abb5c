"""`spine`: run the local broker, sink workers, the demo job, and manage routes."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import typer
from pydantic import ValidationError

from event_spine.broker.tansu import DEFAULT_STORAGE, TansuBroker
from event_spine.cli import (
    audit,
    bench,
    config,
    demo,
    dlq,
    migrate,
    replay,
    routes,
    serve,
    tail,
)
from event_spine.cli.failures import exit_code_table, run
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import check_registry_exists, parse_location
from event_spine.observability.logs import configure_logging
from event_spine.producers.topics import ensure_topic
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker

EPILOG = (
    "Exit codes (every command; a traceback only with --debug or SPINE_DEBUG=1):\n\n"
    + "\n\n".join(exit_code_table().splitlines())
)

app = typer.Typer(no_args_is_help=True, help=__doc__, epilog=EPILOG)
app.add_typer(routes.app, name="routes")
app.add_typer(dlq.app, name="dlq")
app.add_typer(config.app, name="config")
app.add_typer(audit.app, name="audit")
app.add_typer(serve.keys_app, name="keys")
app.command("serve")(serve.serve)
app.command("tail")(tail.tail)
app.command("demo")(demo.run_demo)
app.command("replay")(replay.replay_command)
app.command("verify")(replay.verify_command)
app.command("cutover")(replay.cutover_command)
app.command("bench")(bench.run_bench)
app.command("migrate")(migrate.migrate_command)


@app.callback()
def spine(
    debug: bool = typer.Option(
        False, "--debug", help="Print the traceback of an error (also SPINE_DEBUG=1)."
    ),
) -> None:
    """Run the local broker, sink workers, the demo job, and manage routes."""
    # `run` reads --debug from the command line itself: it must know before parsing.
    del debug


def main() -> None:
    """The `spine` entry point: the app inside the one error surface."""
    sys.exit(run(app))


@app.command()
def broker(
    port: int = typer.Option(9092, help="Port on 127.0.0.1."),
    storage: str = typer.Option(DEFAULT_STORAGE, help="memory://tansu/ or s3://tansu/"),
    topic: str = typer.Option("spine.events", help="Create this topic at start."),
    partitions: int = typer.Option(6, min=1, help="Partition count of the topic."),
) -> None:
    """Run the local Kafka-protocol broker (Tansu) until Ctrl-C."""
    with TansuBroker(port=port, storage_url=storage) as running:
        asyncio.run(ensure_topic(running.kafka, topic, partitions))
        typer.echo(f"broker on {running.bootstrap_servers} (pid {running.pid}), topic {topic}")
        try:
            while running.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


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


@app.command()
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
        "removes the group members a killed predecessor of that name left, so its "
        "partitions move at once. Never shared by two live workers.",
    ),
    fetch_max_wait_ms: int | None = _setting(
        "fetch_max_wait_ms", "Longest wait of a fetch for data (ms)."
    ),
    profile: str | None = _setting(
        "profile",
        "Latency profile: throughput (the default) or low-latency (end-to-end tens of ms; "
        "sets fetch_max_wait_ms and batch_timeout_ms unless given). Also SPINE_PROFILE.",
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


if __name__ == "__main__":
    main()

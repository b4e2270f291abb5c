"""`spine`: run the local broker, sink workers, the demo job, and manage routes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import typer
from pydantic import ValidationError

from event_spine.broker.tansu import DEFAULT_STORAGE, TansuBroker
from event_spine.cli import audit, bench, config, demo, dlq, migrate, replay, routes, tail
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import parse_location
from event_spine.observability.logs import configure_logging
from event_spine.producers.topics import ensure_topic
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker

app = typer.Typer(no_args_is_help=True, help=__doc__)
app.add_typer(routes.app, name="routes")
app.add_typer(dlq.app, name="dlq")
app.add_typer(config.app, name="config")
app.add_typer(audit.app, name="audit")
app.command("tail")(tail.tail)
app.command("demo")(demo.run_demo)
app.command("replay")(replay.replay_command)
app.command("verify")(replay.verify_command)
app.command("cutover")(replay.cutover_command)
app.command("bench")(bench.run_bench)
app.command("migrate")(migrate.migrate_command)


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


@app.command()
@kafka_options
def worker(
    kafka: KafkaFlags,
    registry: str | None = typer.Option(
        None, help="Routing registry: sqlite:/path or BACKEND:{json}."
    ),
    topic: str | None = typer.Option(None),
    group: str | None = typer.Option(None, help="Consumer group id."),
    max_records: int | None = typer.Option(None, min=1),
    session_timeout_ms: int | None = typer.Option(None),
    heartbeat_interval_ms: int | None = typer.Option(None),
    group_instance_id: str | None = typer.Option(
        None,
        help="Static group membership (SPINE_SINK_GROUP_INSTANCE_ID): a stable id per "
        "replica (e.g. the pod name); a restarted worker with it takes the dead member's "
        "partitions back (at once on Kafka; ~6 s on Tansu). Never shared.",
    ),
    fetch_max_wait_ms: int | None = typer.Option(None),
    worker_id: str | None = typer.Option(None),
    http_port: int | None = typer.Option(
        None, help="/metrics, /healthz, /readyz port (0: any free port)."
    ),
    log_format: str | None = typer.Option(None, help="pretty or json"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
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
        "fetch_max_wait_ms": fetch_max_wait_ms,
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
    app()

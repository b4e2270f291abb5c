"""`spine`: run the local broker, sink workers, the demo job, and manage routes."""

from __future__ import annotations

import asyncio
import logging
import time

import typer

from event_spine.broker.tansu import DEFAULT_STORAGE, TansuBroker
from event_spine.cli import demo, dlq, routes
from event_spine.cli.options import parse_location
from event_spine.producers.topics import ensure_topic
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker

app = typer.Typer(no_args_is_help=True, help=__doc__)
app.add_typer(routes.app, name="routes")
app.add_typer(dlq.app, name="dlq")
app.command("demo")(demo.run_demo)


@app.command()
def broker(
    port: int = typer.Option(9092, help="Port on 127.0.0.1."),
    storage: str = typer.Option(DEFAULT_STORAGE, help="memory://tansu/ or s3://tansu/"),
    topic: str = typer.Option("spine.events", help="Create this topic at start."),
    partitions: int = typer.Option(6, min=1, help="Partition count of the topic."),
) -> None:
    """Run the local Kafka-protocol broker (Tansu) until Ctrl-C."""
    with TansuBroker(port=port, storage_url=storage) as running:
        asyncio.run(ensure_topic(running.bootstrap_servers, topic, partitions))
        typer.echo(f"broker on {running.bootstrap_servers} (pid {running.pid}), topic {topic}")
        try:
            while running.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def worker(
    bootstrap: str = typer.Option(..., help="Kafka bootstrap servers."),
    registry: str = typer.Option(..., help="Routing registry: sqlite:/path or BACKEND:{json}."),
    topic: str = typer.Option("spine.events"),
    group: str = typer.Option("spine-sink", help="Consumer group id."),
    max_records: int = typer.Option(2000, min=1),
    session_timeout_ms: int = typer.Option(10_000),
    heartbeat_interval_ms: int = typer.Option(1_000),
    fetch_max_wait_ms: int = typer.Option(100),
    worker_id: str | None = typer.Option(None),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run one sink worker until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    backend, config = parse_location(registry)
    settings = SinkSettings(
        bootstrap_servers=bootstrap,
        topic=topic,
        group_id=group,
        registry_backend=backend,
        registry_config=config,
        max_records=max_records,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    if worker_id:
        settings = settings.model_copy(update={"worker_id": worker_id})
    asyncio.run(SinkWorker(settings).run())


if __name__ == "__main__":
    app()

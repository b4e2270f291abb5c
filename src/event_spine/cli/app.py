"""The whole `spine` app: every command (the entry point is ``cli.main``).

`spine worker` starts without it: ``cli.main`` runs the worker command alone
(``cli.worker``), so a restarted worker does not import the other commands.
"""

from __future__ import annotations

import asyncio
import time

import typer

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
from event_spine.cli.root import EPILOG, HELP, spine
from event_spine.cli.worker import worker
from event_spine.producers.topics import ensure_topic

app = typer.Typer(no_args_is_help=True, help=HELP, epilog=EPILOG)
app.callback()(spine)
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


_BROKER_HELP = (
    "Run the local Kafka-protocol broker (Tansu) until Ctrl-C. For development and tests: "
    "each fetch costs time in proportion to the record batches in the partition, so a topic "
    "fed one event per batch becomes unreadable after roughly 70,000-130,000 batches per "
    "partition; restart it or use a new topic for long sessions (docs/operations.md, "
    '"The local broker (Tansu) versus real Kafka").'
)


@app.command(help=_BROKER_HELP)
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


app.command()(worker)  # after broker: the order of `spine --help`

"""`spine dlq`: list, show and replay dead letters."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.routes import print_json
from event_spine.dlq.tools import DeadLetterRecord, read_dead_letters, replay_dead_letters

app = typer.Typer(no_args_is_help=True, help="Inspect and replay the dead-letter topic.")
console = Console()
Topic = typer.Option("spine.events.dlq", "--topic", help="The dead-letter topic.")


@app.command("list")
@kafka_options
def list_letters(
    kafka: KafkaFlags,
    topic: str = Topic,
    reason: str | None = typer.Option(None, help="Only this reason."),
    limit: int = typer.Option(100, min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """One line per dead letter: where it came from and why it was parked."""
    letters = asyncio.run(read_dead_letters(kafka.settings(), topic, reason=reason, limit=limit))
    if as_json:
        print_json([letter_summary(letter) for letter in letters])
        return
    table = Table("dlq offset", "reason", "error", "source", "worker", "message")
    for letter in letters:
        src_topic, src_partition, src_offset = letter.source
        table.add_row(
            f"{letter.partition}:{letter.offset}",
            letter.reason,
            letter.headers.get("spine-dlq-error-class", ""),
            f"{src_topic}[{src_partition}]@{src_offset}",
            letter.headers.get("spine-dlq-worker", ""),
            letter.headers.get("spine-dlq-message", "")[:80],
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


def letter_summary(letter: DeadLetterRecord) -> dict[str, object]:
    """One dead letter for ``--json``: where it is, where it came from, why."""
    return {
        **letter.summary(),
        "error_class": letter.headers.get("spine-dlq-error-class", ""),
        "message": letter.headers.get("spine-dlq-message", ""),
        "worker": letter.headers.get("spine-dlq-worker", ""),
        "key": (letter.key or b"").decode(errors="replace"),
    }


@app.command()
@kafka_options
def show(
    kafka: KafkaFlags,
    position: str = typer.Argument(..., help="PARTITION:OFFSET in the dead-letter topic."),
    topic: str = Topic,
) -> None:
    """Every header and the value of one dead letter."""
    partition, _, offset = position.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise typer.BadParameter(
            f"`POSITION` must look like PARTITION:OFFSET, e.g. 0:42; got {position!r}"
        )
    letters = asyncio.run(read_dead_letters(kafka.settings(), topic))
    match = [x for x in letters if (x.partition, x.offset) == (int(partition), int(offset))]
    if not match:
        raise typer.BadParameter(f"`POSITION`: no dead letter at {position} in {topic!r}")
    letter = match[0]
    for name, value in letter.headers.items():
        console.print(f"[bold]{name}[/bold]: {value}")
    console.print(f"[bold]key[/bold]: {letter.key!r}")
    console.print(
        f"[bold]value[/bold] ({len(letter.value or b'')} bytes): "
        f"{(letter.value or b'')[:2000].decode(errors='replace')}"
    )


@app.command()
@kafka_options
def replay(
    kafka: KafkaFlags,
    topic: str = Topic,
    reason: str | None = typer.Option(None, help="Only dead letters of this reason."),
    group: str = typer.Option("spine-dlq-replay", help="Consumer group that remembers progress."),
) -> None:
    """Send dead letters back to their source topic (after fixing what parked them)."""
    replayed, skipped = asyncio.run(
        replay_dead_letters(
            kafka.settings(),
            topic,
            group_id=group,
            select=(lambda x: x.reason == reason) if reason else (lambda _: True),
        )
    )
    console.print(f"replayed {replayed}, skipped {skipped}")

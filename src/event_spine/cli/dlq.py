"""`spine dlq`: list, show and replay dead letters."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import check_registry_exists, parse_location
from event_spine.cli.routes import RegistryOption, print_json
from event_spine.dlq import (
    DeadLetterRecord,
    Position,
    ReplayReport,
    parse_position,
    read_dead_letters,
    read_letters,
    replay_dead_letters,
)
from event_spine.dlq.ledgers import replay_ledger_for

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
    wanted = _position(position, "POSITION")
    match = asyncio.run(read_letters(kafka.settings(), topic, [wanted]))
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
    registry: str = RegistryOption,
    topic: str = Topic,
    reason: str | None = typer.Option(None, help="Only dead letters of this reason."),
    letters: list[str] = typer.Option(
        [],
        "--letter",
        help="PARTITION:OFFSET of one dead letter (repeatable): replay exactly these.",
    ),
    actor: str = typer.Option("cli", help="Who replays (kept in the replay ledger)."),
) -> None:
    """Send dead letters back to their source topic (after fixing what parked them).

    Every letter replayed is recorded in the replay ledger (table spine_dlq_replays in
    the --registry database); letters it holds are skipped, so an interrupted replay
    resumes and a repeated one sends nothing twice. Exit 1 when a --letter is not in
    the topic (the others are replayed).
    """
    positions = [_position(text, "--letter") for text in letters] or None
    backend, config = parse_location(registry)
    check_registry_exists(backend, config, create=False)
    ledger = replay_ledger_for(backend, config)

    async def run() -> ReplayReport:
        await ledger.open()
        try:
            return await replay_dead_letters(
                kafka.settings(), topic, ledger, by=actor, positions=positions, reason=reason
            )
        finally:
            await ledger.close()

    report = asyncio.run(run())
    console.print(report.describe(), soft_wrap=True, markup=False)
    if report.missing:
        raise typer.Exit(1)


def _position(text: str, name: str) -> Position:
    found = parse_position(text)
    if found is None:
        raise typer.BadParameter(
            f"`{name}` must look like PARTITION:OFFSET, e.g. 0:42; got {text!r}"
        )
    return found

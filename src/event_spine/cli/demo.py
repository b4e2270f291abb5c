"""`spine demo`: the main job on the embedded default (local broker + SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from event_spine.demo.job import DemoConfig, run


def run_demo(
    events: int = typer.Option(20_000, min=1, help="How many events the engine emits."),
    tenants: int = typer.Option(3, min=1, max=5),
    streams: int = typer.Option(8, min=1, help="Streams per tenant."),
    workers: int = typer.Option(2, min=1, help="Sink worker processes."),
    rate: int = typer.Option(5_000, min=1, help="Events per second the engine aims at."),
    partitions: int = typer.Option(6, min=1),
    workdir: Path = typer.Option(Path(".spine/demo"), help="Where SQLite files and logs go."),
) -> None:
    """Emit from a sample engine through the local broker into SQLite, and read it back."""
    config = DemoConfig(
        events=events,
        tenants=tenants,
        streams=streams,
        workers=workers,
        rate=rate,
        partitions=partitions,
        workdir=workdir,
    )
    if not asyncio.run(run(config, Console())):
        raise typer.Exit(1)

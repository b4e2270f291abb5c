"""`spine migrate`: bring an event store written by an older release to this layout."""

from __future__ import annotations

import asyncio

import typer

from event_spine.backends.factory import build_store
from event_spine.backends.seams import Migratable
from event_spine.cli.options import parse_location
from event_spine.errors import SpineError


def migrate_command(
    store: str = typer.Argument(
        ...,
        help=(
            "The event store: sqlite:/path/events.db, filesystem:/dir, or "
            'BACKEND:{json route config}, e.g. \'postgres:{"dsn": "postgresql://..."}\'.'
        ),
    ),
) -> None:
    """Migrate an event store to the current layout (events keyed by scope + event_id).

    Stores written before scoped identities keyed events by event_id alone; this
    release refuses to open them (StoreLayoutOutdated) instead of misreading them.
    The migration keeps every stored event and watermark, runs in one transaction
    where the backend has them (SQLite, PostgreSQL), and is idempotent: a store
    already at the current layout is left as it is. Stop the sink workers of the
    store first. Exit codes: 0 migrated or nothing to do, 2 refused.
    """
    backend, config = parse_location(store, "STORE")

    async def go() -> str:
        events = build_store(backend, config, "events", f"`spine migrate {backend.value}:...`")
        try:
            if not isinstance(events, Migratable):
                return f"the {backend.value} backend keeps no layout to migrate: nothing to do"
            return await events.migrate()
        finally:
            await events.close()

    try:
        typer.echo(f"{backend.value}: {asyncio.run(go())}")
    except SpineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

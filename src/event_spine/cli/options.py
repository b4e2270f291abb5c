"""Option parsing shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer

from event_spine.backends.catalog import spec_of
from event_spine.backends.factory import build_registry_store
from event_spine.backends.seams import RegistryStore
from event_spine.errors import RegistryNotFound, UnknownBackend
from event_spine.schemas.routes import BackendType


def parse_location(value: str, what: str = "--registry") -> tuple[BackendType, dict[str, Any]]:
    """``sqlite:/path/db``, ``filesystem:/dir`` or ``BACKEND:{json config}``.

    A path fills the config key the backend's spec names (``BackendSpec.path_key``).
    """
    backend_text, sep, rest = value.partition(":")
    if not sep:
        raise typer.BadParameter(f"`{what}` must look like BACKEND:CONFIG, got {value!r}")
    try:
        spec = spec_of(backend_text, f"`{what}`")
    except UnknownBackend as exc:
        raise typer.BadParameter(str(exc)) from exc
    backend = spec.backend
    if rest.startswith("{"):
        try:
            config = orjson.loads(rest)
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"`{what}`: config is not JSON: {exc}") from exc
        return backend, config
    key = spec.path_key
    if key is None:
        raise typer.BadParameter(f"`{what}`: backend {backend.value!r} needs a JSON config")
    return backend, {key: rest}


def check_registry_exists(backend: BackendType, config: dict[str, Any], *, create: bool) -> None:
    """Refuse a file-based registry location that holds nothing, unless asked to create it.

    Opening a SQLite or filesystem registry creates it (and its folders): without this
    check a typo in ``--registry`` looked like an empty registry ("no routes").
    Registries on server backends (PostgreSQL, DynamoDB, ...) are created on open.
    """
    key = spec_of(backend).path_key
    if create or key is None:
        return
    location = str(config.get(key, ""))
    if location in ("", ":memory:") or Path(location).exists():
        return
    raise RegistryNotFound(
        f"No routing registry at {location!r} ({backend.value}): check the path in "
        f"`--registry` / SPINE_REGISTRY, or pass `--create` to start an empty one "
        f"(`spine routes set` creates it too)."
    )


async def open_registry_at(location: str, *, create: bool = False) -> RegistryStore:
    """Parse a ``--registry`` value, check it exists (unless ``create``), open it."""
    backend, config = parse_location(location)
    store = build_registry_store(backend, config)  # validates the config keys first
    check_registry_exists(backend, config, create=create)
    await store.open()
    return store

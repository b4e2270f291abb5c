"""Option parsing shared by the CLI commands."""

from __future__ import annotations

from typing import Any

import orjson
import typer

from event_spine.schemas.routes import BackendType

_PATH_KEY = {BackendType.SQLITE: "path", BackendType.FILESYSTEM: "root"}


def parse_location(value: str, what: str = "--registry") -> tuple[BackendType, dict[str, Any]]:
    """``sqlite:/path/db``, ``filesystem:/dir`` or ``BACKEND:{json config}``."""
    backend_text, sep, rest = value.partition(":")
    if not sep:
        raise typer.BadParameter(f"`{what}` must look like BACKEND:CONFIG, got {value!r}")
    try:
        backend = BackendType(backend_text)
    except ValueError as exc:
        known = ", ".join(b.value for b in BackendType)
        raise typer.BadParameter(f"`{what}`: unknown backend {backend_text!r} ({known})") from exc
    if rest.startswith("{"):
        try:
            config = orjson.loads(rest)
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"`{what}`: config is not JSON: {exc}") from exc
        return backend, config
    key = _PATH_KEY.get(backend)
    if key is None:
        raise typer.BadParameter(f"`{what}`: backend {backend.value!r} needs a JSON config")
    return backend, {key: rest}

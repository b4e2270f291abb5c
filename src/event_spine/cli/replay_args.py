"""Option parsing of `spine replay`, `spine verify` and `spine cutover`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import typer

from event_spine.replay.reader import StartFrom
from event_spine.schemas.routes import ResourceKind, RouteKey

ROUTE_HELP = "KIND:TENANT:ENV:PROJECT:MODE, e.g. event_spine:t_acme:prod:p_shop:saas"


def parse_route(value: str, what: str = "--into-route") -> RouteKey:
    """``KIND:TENANT:ENV:PROJECT:MODE`` -> RouteKey."""
    parts = value.split(":")
    if len(parts) != 5 or not all(parts):
        raise typer.BadParameter(f"`{what}` must look like {ROUTE_HELP}; got {value!r}")
    try:
        kind = ResourceKind(parts[0])
    except ValueError as exc:
        raise typer.BadParameter(f"`{what}`: unknown resource kind {parts[0]!r}") from exc
    return RouteKey(kind, parts[1], parts[2], parts[3], parts[4])


def parse_offsets(value: str) -> dict[int, int]:
    """``0=123,1=456`` -> {0: 123, 1: 456}."""
    offsets: dict[int, int] = {}
    for item in value.split(","):
        partition, sep, offset = item.strip().partition("=")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise typer.BadParameter(f"`--from-offsets` must look like 0=123,1=456; got {value!r}")
        offsets[int(partition)] = int(offset)
    return offsets


def parse_start(from_beginning: bool, from_offsets: str | None, from_time: str | None) -> StartFrom:
    """At most one start option; none means resume (the beginning on a first run)."""
    if sum([from_beginning, from_offsets is not None, from_time is not None]) > 1:
        raise typer.BadParameter(
            "give at most one of --from-beginning, --from-offsets, --from-time"
        )
    if from_beginning:
        return StartFrom.beginning()
    if from_offsets is not None:
        return StartFrom.at_offsets(parse_offsets(from_offsets))
    if from_time is not None:
        try:
            when = datetime.fromisoformat(from_time)
        except ValueError as exc:
            raise typer.BadParameter(f"`--from-time` is not ISO 8601: {from_time!r}") from exc
        if when.tzinfo is None:
            raise typer.BadParameter("`--from-time` needs a timezone, e.g. 2025-01-31T12:00:00Z")
        return StartFrom.at_time(when)
    return StartFrom.resume()


def parse_json(value: str, what: str) -> dict[str, Any]:
    """A JSON object option."""
    try:
        config = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"`{what}` is not JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise typer.BadParameter(f"`{what}` must be a JSON object")
    return config

"""Query parameters: parsed, bounded, and named in every 400."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import QueryParams

from event_spine.api.problems import invalid
from event_spine.schemas.formats import STREAM_ID_RE


def int_param(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    """An integer in [low, high]."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid(name, f"must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise invalid(name, f"must be between {low} and {high}, got {value}")
    return value


def time_param(params: QueryParams, name: str) -> datetime | None:
    """An RFC 3339 timestamp with a UTC offset."""
    text = params.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(name, f"must be an RFC 3339 date-time, got {text!r}") from None
    if value.tzinfo is None:
        raise invalid(name, "must carry a UTC offset (e.g. `Z` or `+00:00`)")
    return value


def order_param(params: QueryParams) -> bool:
    """``order=asc|desc``; True for descending."""
    text = params.get("order", "asc")
    if text not in ("asc", "desc"):
        raise invalid("order", f"must be `asc` or `desc`, got {text!r}")
    return text == "desc"


def stream_param(value: str, name: str = "stream_id") -> str:
    """A path's stream id."""
    if STREAM_ID_RE.match(value) is None:
        raise invalid(name, f"{value[:80]!r} is not a stream id (pattern {STREAM_ID_RE.pattern})")
    return value


def optional_text(params: QueryParams, name: str, max_length: int = 256) -> str | None:
    """A free string parameter, length-bounded."""
    text = params.get(name)
    if text is not None and (not text or len(text) > max_length):
        raise invalid(name, f"must be 1 to {max_length} characters")
    return text

"""Structured logs: JSON lines in production, readable lines in development.

Each record carries the tenant, stream and trace ids of the RequestContext set for
the current task (or set with ``log_fields``), so logs join up with traces.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from event_spine.observability.ratelimit import RepeatFilter
from event_spine.schemas.context import current_context

#: Attributes passed with ``extra=`` that belong in the JSON line.
_RECORD_FIELDS = (
    "traceparents",
    "tenant_id",
    "stream_id",
    "reason",
    "topic",
    "partition",
    "offset",
    "count",
    "suppressed",
    "reasons",
)
#: Libraries that install their own handlers (faststream: coloured, on stdout and
#: stderr, propagate=False): configure_logging takes them over.
_LIBRARY_LOGGERS = ("faststream", "faststream.access", "aiokafka", "kafka")

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "event_spine_log_fields", default=None
)


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Add fields to every log record in this block (e.g. stream_id, traceparent)."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def context_fields() -> dict[str, Any]:
    """Tenant, stream and trace fields for the current task."""
    out: dict[str, Any] = {}
    ctx = current_context()
    if ctx is not None:
        out.update(tenant_id=ctx.tenant_id, trace_id=ctx.trace_id, request_id=ctx.request_id)
    out.update(_fields.get() or {})
    return {k: v for k, v in out.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize the record with its context fields."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(),
        }
        for name in _RECORD_FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class PrettyFormatter(logging.Formatter):
    """Human-readable, with the context fields appended."""

    def format(self, record: logging.LogRecord) -> str:
        """Time, level, logger, message, then key=value fields."""
        base = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in context_fields().items())
        return f"{base} {extra}" if extra else base


def configure_logging(
    fmt: Literal["json", "pretty"] = "pretty",
    level: int | str = "INFO",
    storm_window_s: float = 10.0,
) -> None:
    """Install one stderr handler on the root logger and route every library through it.

    With ``fmt="json"`` every line on stderr is then one JSON object, faststream's and
    aiokafka's included. Repeats of a client warning (aiokafka's "Unable connect"
    during an outage) collapse to one line per ``storm_window_s`` with a count.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else PrettyFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RepeatFilter(storm_window_s))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # faststream's module logger is made (with its handler) at import: import it first,
    # so its handler is removed here rather than added after.
    importlib.import_module("faststream")
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
        library.setLevel(logging.NOTSET)  # the root level decides (the CLI may have muted it)

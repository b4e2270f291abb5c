"""Module-level emit through a default producer the application installs once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from event_spine.errors import ProducerNotConfigured
from event_spine.producers.producer import EventSpineProducer
from event_spine.schemas.context import RequestContext

_default: EventSpineProducer | None = None


def set_default_producer(producer: EventSpineProducer | None) -> None:
    """Install (or with None, remove) the producer module-level emits go through."""
    global _default  # noqa: PLW0603 - one explicit, app-installed handle, never implicit
    _default = producer


def get_default_producer() -> EventSpineProducer:
    """The installed producer; raises ProducerNotConfigured instead of guessing one."""
    if _default is None:
        raise ProducerNotConfigured(
            "No default producer: create an EventSpineProducer and call "
            "set_default_producer() at startup."
        )
    return _default


def emit_event(
    ctx: RequestContext | None,
    event_type: str,
    stream_id: str,
    payload: dict[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
) -> str:
    """Fire-and-forget: buffer one event on the default producer, return its id."""
    producer = _default if _default is not None else get_default_producer()
    return producer.emit_event(ctx, event_type, stream_id, payload, metadata, event_id=event_id)

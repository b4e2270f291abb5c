"""Item encoding: attribute values, keys, and the items of one event."""

from __future__ import annotations

from typing import Any, Final

from event_spine.backends.base import StreamKey, event_body
from event_spine.schemas.wire import StoredEvent

Item = dict[str, Any]

#: Body bytes per item: 400 KB item limit minus room for keys and attribute names.
PART_BYTES: Final = 380_000


def _s(value: str) -> Item:
    return {"S": value}


def _n(value: int) -> Item:
    return {"N": str(value)}


def _key(pk: str, sk: int | str) -> Item:
    return {"pk": _s(pk), "sk": _n(sk) if isinstance(sk, int) else _s(sk)}


def _stream_pk(key: StreamKey) -> str:
    return f"ev#{key.text()}"


def identity(scope: tuple[str, ...], event_id: str) -> str:
    """An event's identity as key text: ``<tenant>|<env>|<mode>|<project>|<event_id>``."""
    return "|".join((*scope, event_id))


def identity_of(event: StoredEvent) -> str:
    """The identity of a stored event (its record's scope and id)."""
    return identity(event.record.routing.key(), event.record.event_id)


def _event_items(pk: str, event: StoredEvent) -> list[Item]:
    """The ev# item, plus part# items when the body is larger than one part."""
    body = event_body(event)
    parts = [body[i : i + PART_BYTES] for i in range(0, len(body), PART_BYTES)]
    head: Item = {**_key(pk, event.position), "e": _s(event.record.event_id), "b": {"B": parts[0]}}
    if len(parts) > 1:
        head["n"] = _n(len(parts))
    ident = identity_of(event)
    rest = [{**_key(f"part#{ident}", i), "b": {"B": part}} for i, part in enumerate(parts)]
    return [head, *rest[1:]]


def _id_item(pk: str, event: StoredEvent) -> Item:
    return {**_key(f"id#{identity_of(event)}", 0), "s": _s(pk), "p": _n(event.position)}

"""Event identity per scope on Cosmos (layout 2): one claim item per scope + event_id.

Cosmos keeps ids unique per logical partition only, and an event item lives in its
stream's partition, so the event item alone makes ids unique per stream. The claim
item ``pk = "id#<tenant>|<env>|<mode>|<project>|<event_id>"``, ``id = "id"`` is
created (never upserted) before the event item: the one create that succeeds decides
which stream and position hold the identity. Each claim is its own logical
partition, so claims spread evenly (no hot "index" partition).
"""

from __future__ import annotations

from typing import Final

from azure.cosmos.exceptions import CosmosResourceExistsError

from event_spine.backends.base import ScopeKey
from event_spine.backends.cosmos.container import _Container, _mapped
from event_spine.backends.cosmos.layout import Item
from event_spine.errors import StoreLayoutOutdated
from event_spine.schemas.wire import StoredEvent

#: Version 2: claim items keep event ids unique per scope (1, unmarked: per stream).
LAYOUT_VERSION: Final = 2
_MARKER_PK: Final = "layout"
_MARKER_ID: Final = "events"
_CLAIM_ID: Final = "id"
# Event items carry `position`; claims (`at`), watermarks and the marker do not.
_ANY_EVENT: Final = "SELECT c.id FROM c WHERE IS_DEFINED(c.position)"
_ALL_EVENTS: Final = "SELECT c.id, c.pk, c.position FROM c WHERE IS_DEFINED(c.position)"


def claim_pk(scope: ScopeKey | tuple[str, ...], event_id: str) -> str:
    """The partition of an identity's claim."""
    return "id#" + "|".join((*scope, event_id))


def claim_item(stream_pk: str, event: StoredEvent) -> Item:
    """The claim of ``event``'s identity by its stream (``stream_pk``) and position."""
    scope = stream_pk.rsplit("|", 1)[0]
    pk = f"id#{scope}|{event.record.event_id}"
    return {"id": _CLAIM_ID, "pk": pk, "stream": stream_pk, "at": event.position}


async def claim(container: _Container, item: Item) -> Item | None:
    """Create the claim; None if it is now ours, else the claim that holds the identity
    (which may be ours from an earlier attempt: same stream and position)."""
    with _mapped(container.what):
        try:
            await container.proxy.create_item(item)
        except CosmosResourceExistsError:
            pass
        else:
            return None
    held = await container.find(item["pk"], _CLAIM_ID)
    if held is None:  # deleted between the two calls: only a migration test does that
        return await claim(container, item)
    return held


async def find_claim(container: _Container, scope: ScopeKey, event_id: str) -> Item | None:
    """The claim of an identity, or None."""
    return await container.find(claim_pk(scope, event_id), _CLAIM_ID)


async def check_layout(container: _Container) -> None:
    """Refuse a container in layout 1; mark an empty one as layout 2."""
    marker = await container.find(_MARKER_PK, _MARKER_ID)
    if marker is not None and int(marker["version"]) >= LAYOUT_VERSION:
        return
    if await container.query(_ANY_EVENT, {}, None, 1):
        raise StoreLayoutOutdated(
            f"{container.what} holds events in layout 1 (event ids unique per stream, not "
            f"per scope); this release reads layout {LAYOUT_VERSION}. Migrate it first: "
            f"`spine migrate 'cosmos:<this route's config as JSON>'`."
        )
    await _mark(container)


async def migrate_layout(container: _Container) -> str:
    """Claim every stored event's identity, then mark the container (so a run cut
    short can simply be rerun). An id that layout 1 let two streams of one scope hold
    stays readable in both streams; ``get`` answers the one claimed first: reported."""
    await container.open()
    marker = await container.find(_MARKER_PK, _MARKER_ID)
    if marker is not None and int(marker["version"]) >= LAYOUT_VERSION:
        return f"already at layout {LAYOUT_VERSION}: nothing to do"
    items = await container.query(_ALL_EVENTS, {}, None)
    shared: list[str] = []
    for item in sorted(items, key=lambda i: (i["pk"], i["position"])):
        wanted = {
            "id": _CLAIM_ID,
            "pk": claim_pk(tuple(item["pk"].split("|")[:4]), item["id"]),
            "stream": item["pk"],
            "at": item["position"],
        }
        held = await claim(container, wanted)
        if held is not None and (held["stream"], held["at"]) != (item["pk"], item["position"]):
            shared.append(f"{item['id']} ({item['pk']} and {held['stream']})")
    await _mark(container)
    note = ""
    if shared:
        note = f"; {len(shared)} id(s) held by two streams of one scope, get() answers the first: "
        note += ", ".join(shared[:20])
    return f"claimed {len(items)} event id(s); now at layout {LAYOUT_VERSION}{note}"


async def _mark(container: _Container) -> None:
    body = {"id": _MARKER_ID, "pk": _MARKER_PK, "version": LAYOUT_VERSION}
    current = await container.find(_MARKER_PK, _MARKER_ID)
    await container.swap(body, current)  # False: a racing writer marked it first

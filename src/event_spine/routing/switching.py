"""Switch a scope's writers (event_spine) without silently leaving its readers behind.

After a cutover a scope has two routes: ``event_spine`` (where workers write) and
``event_stream`` (where reads go, preferred over event_spine). A later plain switch of
event_spine alone would leave readers on the old store, which no longer receives
events: the stream looks frozen. So a switch of event_spine with a separate
event_stream route must say what happens to the readers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from event_spine.errors import ConfigurationError
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey


class Readers(StrEnum):
    """What a switch of event_spine does to the scope's event_stream route."""

    REFUSE = "refuse"  # refuse when the readers' route would be left on another store
    MOVE = "move"  # switch the event_stream route to the same store too
    SPLIT = "split"  # leave it: readers and writers on different stores, on purpose


async def switch_scope(
    registry: RoutingRegistry,
    key: RouteKey,
    backend: BackendType | str,
    config: dict[str, Any],
    *,
    actor: str,
    reason: str,
    readers: Readers = Readers.REFUSE,
) -> list[ResourceRoute]:
    """Switch ``key`` (and its event_stream route when ``readers`` is MOVE): the new routes."""
    backend = BackendType(backend)
    reads = key._replace(resource_kind=ResourceKind.EVENT_STREAM)
    held = None
    if key.resource_kind is ResourceKind.EVENT_SPINE and readers is not Readers.SPLIT:
        held = await registry.store.load(reads)
        if held is not None and (held.backend_type, held.config) == (backend, config):
            held = None  # readers are already where the writers go
    if held is not None and readers is Readers.REFUSE:
        raise ConfigurationError(
            f"The scope also has an {reads.describe()} on {held.backend_type.value} "
            f"{held.config}: switching only the writers would leave readers on a store that "
            f"no longer receives events. Pass `--move-readers` to switch both, or "
            f"`--split-readers` to switch the writers only (as `spine cutover` does)."
        )
    moved = [await registry.switch_route(key, backend, config, actor=actor, reason=reason)]
    if held is not None:
        moved.append(
            await registry.switch_route(reads, backend, config, actor=actor, reason=reason)
        )
    return moved

"""Every backend a route can name, by its spec, and the route rules the specs imply.

Adding a backend: its package (``__init__.py`` with the ``SPEC``, ``config.py``,
``events.py``, ``registry.py``, ``tabular.py``), one line here, its ``BackendType``
member. tests/unit/test_backend_specs.py checks every member has a complete spec whose
stores the factory builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from event_spine.backends.cosmos import SPEC as COSMOS
from event_spine.backends.dynamodb import SPEC as DYNAMODB
from event_spine.backends.filesystem import SPEC as FILESYSTEM
from event_spine.backends.firestore import SPEC as FIRESTORE
from event_spine.backends.memory import SPEC as MEMORY
from event_spine.backends.postgres import SPEC as POSTGRES
from event_spine.backends.spec import BackendSpec, refuse_outside_lab
from event_spine.backends.sqlite import SPEC as SQLITE
from event_spine.errors import BackendNotDurable, UnknownBackend
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute

BACKENDS: Final[Mapping[BackendType, BackendSpec[Any]]] = MappingProxyType(
    {
        spec.backend: spec
        for spec in (MEMORY, SQLITE, FILESYSTEM, POSTGRES, DYNAMODB, FIRESTORE, COSMOS)
    }
)

#: Resources that must survive a restart: outside mode ``lab`` their routes may
#: only name a durable backend (``BackendSpec.durable``).
DURABLE_KINDS: Final = frozenset(
    {ResourceKind.EVENT_SPINE, ResourceKind.EVENT_STREAM, ResourceKind.TABULAR_STORE}
)


def spec_of(backend: BackendType | str, context: str = "") -> BackendSpec[Any]:
    """The spec of ``backend``; UnknownBackend names the known ones."""
    try:
        return BACKENDS[BackendType(backend)]
    except (ValueError, KeyError):
        known = ", ".join(sorted(b.value for b in BACKENDS))
        raise UnknownBackend(
            f"{context or 'A route'} names backend {str(backend)!r}: unknown ({known})."
        ) from None


def check_route_allowed(route: ResourceRoute) -> None:
    """Refuse a route its backend's spec does not allow in the route's mode.

    Read by the registry (set, switch), the workers' factories, cutover and replay.
    """
    spec = spec_of(route.backend_type, route.describe())
    if spec.lab_only:
        refuse_outside_lab(
            route.mode,
            f"The {route.backend_type.value} backend ({route.describe()})",
        )
    if not spec.durable and route.resource_kind in DURABLE_KINDS and route.mode != "lab":
        raise BackendNotDurable(
            f"{route.describe()}: backend {route.backend_type.value!r} is not durable (what "
            f"it holds is lost on restart); a {route.resource_kind.value} route may name it "
            f"only in mode 'lab', not {route.mode!r}. Route this scope to sqlite, postgres "
            f"or a cloud store."
        )

"""``BackendSpec``: everything the rest of event-spine may know about one backend.

Each backend package declares one ``SPEC`` in its ``__init__.py``: its config model,
its three store classes, the extra that installs its SDK and the rules routes to it
obey. The factory builds stores from it, the registry, the workers, cutover and
replay check routes against it (``catalog.check_route_allowed``), the CLI and the
timeline read their few questions from it, and docs/backends.md is generated from
it. Nothing imports a backend's modules to learn a rule, and no class is named by a
string: a spec that names a missing class fails mypy and the import of the loader.

The store classes are behind ``stores`` (a function that imports them) because they
import the backend's SDK: ``import event_spine`` must work without boto3, and a
missing SDK is reported as ``MissingDependency`` only when a route needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from event_spine.backends.seams import EventStore, RegistryStore, TabularStore
from event_spine.errors import BackendNotAllowed, ConfigurationError, MissingDependency
from event_spine.schemas.formats import PRODUCTION_MODES
from event_spine.schemas.routes import BackendType

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class StoreClasses(Generic[C]):
    """A backend's store per role, each built from its parsed route config."""

    events: Callable[[C], EventStore]
    registry: Callable[[C], RegistryStore]
    tabular: Callable[[C], TabularStore]


@dataclass(frozen=True, kw_only=True)
class BackendSpec(Generic[C]):
    """One backend: its classes, its dependency and its rules (read, never re-derived).

    - ``durable``: what it stores survives a restart of the process that wrote it.
      Outside mode ``lab`` the kinds in ``catalog.DURABLE_KINDS`` may only name a
      durable backend.
    - ``lab_only``: refused outside mode ``lab`` for every resource kind.
    - ``in_process``: the store lives in the process that reads it (the timeline
      serves such routes from its own memory instead of through Kafka).
    - ``path_key``: the config key holding a local path (file backends): the CLI's
      ``BACKEND:/path`` locations fill it, and a path that does not exist yet holds
      nothing. None: a server reached over the network, config given as JSON.
    - ``extra``: the ``pip install 'event-spine[EXTRA]'`` that brings its SDK.
    - ``layout``: how it lays out what it stores (its package docstring);
      ``query_costs``: the indexes queries use and what a page costs. Both are
      printed in docs/backends.md.
    """

    backend: BackendType
    config: type[C]
    stores: Callable[[], StoreClasses[C]]
    layout: str
    query_costs: str
    extra: str | None = None
    durable: bool = True
    lab_only: bool = False
    in_process: bool = False
    path_key: str | None = None

    def load(self) -> StoreClasses[C]:
        """The store classes (imports the SDK; MissingDependency names the extra)."""
        try:
            return self.stores()
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if self.extra is None or not missing or missing.startswith("event_spine"):
                raise  # a bug of ours, not a missing SDK
            raise MissingDependency(self.backend.value, self.extra, missing) from exc

    def parse(self, config: dict[str, Any], context: str = "") -> C:
        """The route's config as this backend's model (ConfigurationError naming the keys)."""
        try:
            return self.config.model_validate(config)
        except ValidationError as exc:
            # Field names and problems only: input values could hold secrets.
            problems = "; ".join(
                f"`{'.'.join(map(str, e['loc'])) or 'config'}`: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            name = self.backend.value
            raise ConfigurationError(
                f"{context or 'Backend ' + name}: invalid `config` for backend {name!r}: {problems}"
            ) from None


def refuse_outside_lab(mode: str, what: str = "The filesystem store") -> None:
    """Raise BackendNotAllowed for production modes (the rule of ``lab_only`` backends)."""
    if mode in PRODUCTION_MODES:
        raise BackendNotAllowed(
            f"{what} is allowed only in mode 'lab', not {mode!r}: it is not shared "
            f"between hosts nor backed up. Route this scope to sqlite, postgres or a "
            f"cloud store."
        )

"""Every backend a route can name has a complete BackendSpec, and the factory builds
each of its three stores from it; a missing SDK is reported, never an import error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from event_spine.backends import (
    BACKENDS,
    EventStore,
    RegistryStore,
    TabularStore,
    build_store,
    spec_of,
)
from event_spine.errors import ConfigurationError, UnknownBackend
from event_spine.schemas.routes import BackendType


def smallest_config(backend: BackendType, tmp_path: Path) -> dict[str, Any]:
    """A valid route config (nothing is opened: building a store connects to nothing)."""
    return {
        BackendType.MEMORY: {},
        BackendType.SQLITE: {"path": str(tmp_path / "events.db")},
        BackendType.FILESYSTEM: {"root": str(tmp_path / "fs")},
        BackendType.POSTGRES: {"dsn": "postgresql://db.invalid/spine"},
        BackendType.DYNAMODB: {},
        BackendType.FIRESTORE: {},
        BackendType.COSMOS: {"endpoint": "https://cosmos.invalid:8081", "database": "spine"},
    }[backend]


def test_every_backend_type_has_its_spec() -> None:
    assert set(BACKENDS) == set(BackendType)
    for backend, spec in BACKENDS.items():
        assert spec.backend is backend


@pytest.mark.parametrize("backend", list(BackendType), ids=str)
def test_the_spec_is_complete(backend: BackendType) -> None:
    spec = BACKENDS[backend]
    assert issubclass(spec.config, BaseModel)
    # A typo in a route config must be an error naming the key, and configs are shared.
    assert spec.config.model_config.get("extra") == "forbid"
    assert spec.config.model_config.get("frozen") is True
    assert spec.layout.strip(), "the package docstring is the layout docs/backends.md shows"
    assert spec.query_costs.strip()
    if spec.path_key is not None:
        assert spec.path_key in spec.config.model_fields
    classes = spec.load()
    assert {c.__module__.rpartition(".")[0] for c in vars(classes).values()} == {
        f"event_spine.backends.{backend.value}"
    }, "a backend's stores live in its own package"


@pytest.mark.parametrize("backend", list(BackendType), ids=str)
def test_the_factory_builds_every_kind_from_the_spec(backend: BackendType, tmp_path: Path) -> None:
    config = smallest_config(backend, tmp_path)
    classes = BACKENDS[backend].load()
    events = build_store(backend, config, "events")
    registry = build_store(backend, config, "registry")
    tabular = build_store(backend, config, "tabular")
    assert (type(events), type(registry), type(tabular)) == (
        classes.events,
        classes.registry,
        classes.tabular,
    )
    assert isinstance(events, EventStore)
    assert isinstance(registry, RegistryStore)
    assert isinstance(tabular, TabularStore)


def test_an_unknown_backend_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownBackend, match=r"`--registry` names backend 'sqlit': unknown \("):
        spec_of("sqlit", "`--registry`")


def test_a_bad_config_names_the_key_not_its_value() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid `config` for backend 'sqlite'") as e:
        build_store("sqlite", {"path": "x", "pasword": "hunter2"}, "events")
    assert "pasword" in str(e.value)
    assert "hunter2" not in str(e.value)


# Runs in a fresh interpreter where the cloud SDKs cannot be imported.
_WITHOUT_SDKS = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = (
        "aioboto3", "aiobotocore", "boto3", "botocore", "asyncpg", "google.cloud",
        "google.api_core", "azure",
    )

    def blocked(name):
        return any(name == b or name.startswith(b + ".") for b in BLOCKED)

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    import event_spine
    from event_spine.backends import BACKENDS, build_store, check_route_allowed
    from event_spine.errors import MissingDependency
    from event_spine.schemas import ResourceRoute

    route = ResourceRoute(
        resource_kind="event_spine", tenant_id="t_acme", env="prod", project_id="p_core",
        mode="saas", backend_type="dynamodb", config={},
    )
    check_route_allowed(route)  # the rules need no SDK
    assert BACKENDS[route.backend_type].durable
    try:
        build_store("dynamodb", {}, "events")
    except MissingDependency as exc:
        print(exc)
    loaded = sorted(m for m in sys.modules if blocked(m))
    print("sdks loaded:", loaded)
    """
)


def test_event_spine_imports_and_checks_routes_without_the_cloud_sdks() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SDKS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, f"importing event_spine needed an SDK:\n{run.stderr}"
    shown = run.stdout
    assert "The `dynamodb` backend needs the `aioboto3` package" in shown
    assert "pip install 'event-spine[dynamodb]'" in shown
    assert "sdks loaded: []" in shown

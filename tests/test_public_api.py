"""The public API is exactly what __all__ lists, and each package exports what it names."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import event_spine

PACKAGES = [
    "event_spine",
    "event_spine.schemas",
    "event_spine.producers",
    "event_spine.services",
    "event_spine.sink_workers",
    "event_spine.pipeline",
    "event_spine.routing",
    "event_spine.backends",
    *(f"event_spine.backends.{name}" for name in ("memory", "sqlite", "filesystem")),
    *(f"event_spine.backends.{name}" for name in ("postgres", "dynamodb", "firestore", "cosmos")),
    "event_spine.tabular",
    "event_spine.kafka",
    "event_spine.api",
    "event_spine.dlq",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve_without_duplicates(name: str) -> None:
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__))  # ruff (RUF022) keeps it sorted
    for attr in module.__all__:
        assert getattr(module, attr) is not None


def test_top_level_surface() -> None:
    expected = {
        "emit_event",
        "EventSpineProducer",
        "StreamEvent",
        "RequestContext",
        "RoutingRegistry",
        "SinkWorker",
        "EventStreamService",
        "EventStore",
        "RouteNotFound",
        "ScopeViolation",
    }
    assert expected <= set(event_spine.__all__)
    public = {n for n in dir(event_spine) if not n.startswith("_")}
    # Imported subpackages show up as attributes; anything else must be in __all__.
    subpackages = {m.name for m in pkgutil.iter_modules(event_spine.__path__)}
    assert public - set(event_spine.__all__) <= subpackages

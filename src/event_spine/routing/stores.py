"""Open a RegistryStore for a backend and its config (CLI flags, settings)."""

from __future__ import annotations

from typing import Any

from event_spine.backends.factory import build_registry_store
from event_spine.backends.seams import RegistryStore
from event_spine.schemas.routes import BackendType


async def open_registry_store(backend: BackendType | str, config: dict[str, Any]) -> RegistryStore:
    """Build and open a RegistryStore."""
    store = build_registry_store(backend, config)
    await store.open()
    return store

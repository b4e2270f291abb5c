"""Tabular: routed key/value tables per scope (the ``tabular_store`` resource kind)."""

from event_spine.tabular.base import TabularStore, validate_key
from event_spine.tabular.service import TabularStoreService

__all__ = ["TabularStore", "TabularStoreService", "validate_key"]

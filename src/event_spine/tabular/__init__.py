"""Tabular: routed key/value tables per scope (the ``tabular_store`` resource kind).

The store seam itself is ``event_spine.backends.TabularStore``.
"""

from event_spine.tabular.service import TabularStoreService, validate_key

__all__ = ["TabularStoreService", "validate_key"]

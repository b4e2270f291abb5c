"""A pipeline (broker topic, SQLite routes, a sink worker) and `spine serve` over it,
with keys for tenants t_alpha (a), t_beta (b) and an admin key."""

from support.api_fixtures import api, pipeline

__all__ = ["api", "pipeline"]

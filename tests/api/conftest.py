"""An app pipeline (broker topic, SQLite routes, a sink worker) and the API over it."""

from support.api_fixtures import api, pipeline

__all__ = ["api", "pipeline"]

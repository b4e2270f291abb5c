"""The operator console: server-rendered pages at ``/console`` over the HTTP API's state."""

from event_spine.console.app import build_app_with_console
from event_spine.console.pages import console_routes

__all__ = ["build_app_with_console", "console_routes"]

"""The operator console: server-rendered pages at ``/console`` over the HTTP API's state."""

from event_spine.console.pages import console_routes

__all__ = ["console_routes"]

"""The `spine` entry point: the app inside the one error surface.

`spine worker` runs the worker command alone (``cli.worker``), in a lean process
(``lean_worker_process``): without the other commands' imports (the HTTP API,
replay, audit, the console...) and uvicorn, its imports take 0.87 s of CPU instead of
1.21 s (a process that only imports them, medians of 11, load 7-9), which a restarted
worker pays inside its crash recovery (docs/operations.md, crash recovery).
Everything else runs the whole app (``cli.app``). This module imports nothing heavy
itself.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    """Run `spine` with the command line's arguments; exit with its code."""
    from event_spine.cli.failures import run  # noqa: PLC0415 - see the module docstring

    if sys.argv[1:2] == ["worker"]:
        lean_worker_process()
        from event_spine.cli.worker import worker_app  # noqa: PLC0415

        sys.exit(run(worker_app()))
    from event_spine.cli.app import app  # noqa: PLC0415

    sys.exit(run(app))


def lean_worker_process() -> None:
    """Process-wide choices for a process that only runs sink workers; call it before
    anything imports faststream.

    faststream imports uvicorn whenever it is installed (``faststream._internal.
    _compat``), only for its ASGI app runner, which a sink worker never uses; the
    ``all`` extra installs it for `spine serve`. Marking uvicorn unavailable here saves
    that import, about 0.1 s of CPU (``python -X importtime``, this 2-core machine).
    Never call it in a process that serves HTTP with uvicorn.
    """
    sys.modules.setdefault("uvicorn", None)  # type: ignore[arg-type]  # import -> ImportError


def __getattr__(name: str) -> Any:
    """``app`` (the whole app), for callers that import it from here."""
    if name == "app":
        from event_spine.cli.app import app  # noqa: PLC0415

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()

"""What every `spine` app shares: the root help, the exit-code epilog, ``--debug``."""

from __future__ import annotations

import typer

from event_spine.cli.failures import exit_code_table

HELP = "`spine`: run the local broker, sink workers, the demo job, and manage routes."
EPILOG = (
    "Exit codes (every command; a traceback only with --debug or SPINE_DEBUG=1):\n\n"
    + "\n\n".join(exit_code_table().splitlines())
)


def spine(
    debug: bool = typer.Option(
        False, "--debug", help="Print the traceback of an error (also SPINE_DEBUG=1)."
    ),
) -> None:
    """Run the local broker, sink workers, the demo job, and manage routes."""
    # `run` reads --debug from the command line itself: it must know before parsing.
    del debug

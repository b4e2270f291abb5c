"""Run `spine` in-process through its real entry point (the one error surface)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from event_spine.cli.failures import run
from event_spine.cli.main import app


@dataclass(frozen=True)
class Result:
    """Exit code and captured output of one invocation."""

    code: int
    out: str
    err: str


def invoke(args: list[str]) -> Result:
    """One `spine` invocation, as the `spine` script runs it, with output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(app, args)
    return Result(code, out.getvalue(), err.getvalue())

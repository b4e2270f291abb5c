"""`spine worker` runs without the rest of the CLI (cli.main's lean path).

A restarted worker's imports are part of its crash recovery (docs/operations.md), so
`spine worker` must not import the other commands (the HTTP API, replay, audit...) nor
uvicorn, and must still show the same help and errors as the whole app's `worker`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from event_spine.cli.main import app

#: Imported by the whole app, never needed by a sink worker. (uvicorn itself is listed
#: either way: the lean process answers faststream's attempt with an ImportError.)
NOT_FOR_A_WORKER = (
    "uvicorn.config",
    "event_spine.cli.app",
    "event_spine.cli.serve",
    "event_spine.api",
    "event_spine.replay",
)


def _spine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "event_spine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
    )


def _imported(stderr: str) -> set[str]:
    return {
        line.split("|")[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_spine_worker_imports_only_the_worker() -> None:
    done = _spine("worker", "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    imported = _imported(done.stderr)
    assert "event_spine.cli.worker" in imported
    assert "faststream" in imported  # the worker itself is loaded
    for name in NOT_FOR_A_WORKER:
        assert name not in imported, f"`spine worker` imported {name}"


def test_the_lean_worker_command_is_the_whole_apps_worker_command() -> None:
    lean = _spine("worker", "--help")
    whole = CliRunner().invoke(
        app, ["worker", "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"}, prog_name="spine"
    )
    assert lean.returncode == whole.exit_code == 0
    assert lean.stdout == whole.output


def test_a_bad_worker_flag_is_refused_the_same_way() -> None:
    lean = _spine("worker", "--no-such-flag")
    assert lean.returncode == 2
    assert "--no-such-flag" in lean.stderr
    whole = _spine("--debug", "worker", "--no-such-flag")  # not argv[1] == worker: whole app
    assert whole.returncode == 2
    assert "--no-such-flag" in whole.stderr

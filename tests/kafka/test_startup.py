"""Bounded, interruptible startup of the long-running Kafka commands, as real processes.

Each command is pointed at a closed port on 127.0.0.1 (connection refused at once, so
only the startup retry decides how long it runs). Asserted: one log line per attempt
(no aiokafka "Unable connect" storm), one clear error naming the address and the
setting, and a SIGTERM / SIGINT at several moments of the startup ends the process
within a bounded wait (the goal is 1 s; the bound here is generous for a loaded
machine, but far below the ~17 s a SIGTERM used to wait).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from event_spine.routing.stores import open_registry_store

#: Generous but bounded: a process that honours the signal exits well inside it.
SIGNAL_BOUND_S = 5.0
#: A process that ignored the startup bound would still be running after this.
EXIT_BOUND_S = 60.0
ATTEMPT = "cannot reach Kafka at"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("startup") / "registry.db"

    async def create() -> None:
        store = await open_registry_store("sqlite", {"path": str(path)})
        await store.close()

    asyncio.run(create())
    return f"sqlite:{path}"


def commands(registry: str) -> dict[str, list[str]]:
    return {
        "worker": ["worker", "--registry", registry, "--http-port", "0"],
        "replay": [
            "replay",
            "--registry",
            registry,
            "--into-backend",
            "sqlite",
            "--into-config",
            orjson.dumps({"path": registry.removeprefix("sqlite:") + ".target"}).decode(),
        ],
        "tail": [
            "tail",
            "--registry",
            registry,
            "--tenant",
            "t_1",
            "--env",
            "dev",
            "--mode",
            "lab",
            "--project",
            "p_1",
        ],
        "dlq list": ["dlq", "list"],
    }


class Spine:
    """One `spine` process; its output (stdout and stderr) in a file read while it runs."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        self.err_path = workdir / f"stderr-{time.monotonic_ns()}.txt"
        self._err = self.err_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("SPINE_KAFKA_STARTUP_TIMEOUT_S", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "event_spine.cli.main", *args],
            stdout=self._err,  # errors are printed to either, depending on the command
            stderr=subprocess.STDOUT,
            env=env,
        )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for_text(self, text: str, timeout_s: float = EXIT_BOUND_S) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.stderr:
            assert self.proc.poll() is None, f"exited before {text!r}: {self.stderr}"
            assert time.monotonic() < deadline, f"no {text!r} in {timeout_s}s: {self.stderr}"
            time.sleep(0.02)

    def signal_and_time(self, sig: signal.Signals) -> float:
        """Send ``sig``; seconds until the process exited (fails past SIGNAL_BOUND_S)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(SIGNAL_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name} not honoured within {SIGNAL_BOUND_S}s: {self.stderr}")
        return time.monotonic() - sent

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[Spine]]:
    started: list[Spine] = []
    yield started
    for proc in started:
        proc.close()


NAMES = ["worker", "replay", "tail", "dlq list"]


@pytest.mark.parametrize("name", NAMES)
def test_unreachable_broker_retries_then_one_clear_error(
    name: str, registry: str, spawn: list[Spine], tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    args = [*commands(registry)[name], "--bootstrap", bootstrap]
    spine = Spine([*args, "--startup-timeout-s", "3"], tmp_path)
    spawn.append(spine)
    rc = spine.proc.wait(EXIT_BOUND_S)
    err = spine.stderr
    assert rc == 4, err  # the documented exit code of an unreachable broker
    flat = " ".join(err.split())  # an error message may be wrapped to the terminal
    final = re.search(r"after (\d+) attempt\(s\) in 3s", flat)
    assert final, f"no final error naming the attempts: {err}"
    attempts = int(final.group(1))
    # Backoff 0.5 s doubling: a 3 s budget allows at most 1 + 3 / 0.5 attempts.
    assert 2 <= attempts <= 7, err
    lines = [line for line in err.splitlines() if ATTEMPT in line and "attempt " in line]
    assert len(lines) == attempts - 1, err  # one line per retried attempt, then the error
    assert bootstrap in flat
    assert "--startup-timeout-s" in flat
    assert "Unable connect" not in err, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("moment", ["at_spawn", "first_attempt", "later"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_startup_ends_the_command(
    name: str, moment: str, sig: signal.Signals, registry: str, spawn: list[Spine], tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    args = [*commands(registry)[name], "--bootstrap", bootstrap]
    spine = Spine([*args, "--startup-timeout-s", "120"], tmp_path)
    spawn.append(spine)
    if moment != "at_spawn":
        spine.wait_for_text(ATTEMPT)
    if moment == "later":
        # Inside the retry loop's back-off sleep or a later attempt.
        spine.wait_for_text("attempt 3")
    spine.signal_and_time(sig)
    if moment == "at_spawn":  # a SIGINT inside Python's own imports prints its traceback
        return
    assert "Traceback" not in spine.stderr, spine.stderr
    if name == "worker" or (name == "tail" and sig is signal.SIGINT):
        # The worker: a stop request, as after startup; tail runs "until Ctrl-C".
        assert spine.proc.returncode == 0, spine.stderr
    elif sig is signal.SIGINT:
        assert spine.proc.returncode == 130, spine.stderr  # the documented "interrupted"
    else:  # Python's default SIGTERM action
        assert spine.proc.returncode == -signal.SIGTERM, spine.stderr

"""Start ``benchmarks.worker_proc`` children and follow their progress lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT


class WorkerProcess:
    """One child sink worker; ``state`` is its latest progress line."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        registry_db: Path,
        latency_ms: float,
        sink: dict[str, Any] | None = None,
        *,
        wait_go: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "benchmarks.worker_proc",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--registry-db",
            str(registry_db),
            "--latency-ms",
            str(latency_ms),
            "--sink-json",
            json.dumps(sink or {}),
            *(["--wait-go"] if wait_go else []),
            *(["--log-file", str(log_file)] if log_file is not None else []),
        ]
        self.wait_go = wait_go
        self.state: dict[str, Any] = {}
        #: Key -> ``t`` of the first progress line where that key was truthy.
        self.first_seen: dict[str, float] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Spawn the child (cwd: the repository, so ``benchmarks`` imports)."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")]),
        }
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE if self.wait_go else None,
        )
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self.state = json.loads(line)
                for key, value in self.state.items():
                    if value and key not in self.first_seen and "t" in self.state:
                        self.first_seen[key] = self.state["t"]

    async def wait_ready_to_go(self, timeout_s: float = 60.0) -> None:
        """With ``wait_go``: until the child has imported everything and waits for go()."""
        deadline = time.monotonic() + timeout_s
        while not self.state.get("waiting"):
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError("a worker process did not get ready to join")
            await asyncio.sleep(0.01)

    def go(self) -> None:
        """With ``wait_go``: let the child join its group now."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"go\n")

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no commit, no cleanup (a crash, OOM or node loss)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.returncode is None

    async def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (the worker leaves its group), SIGKILL after the deadline."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            await self._reader


def merged_committed(workers: list[WorkerProcess]) -> dict[int, int]:
    """Highest committed offset per partition over all workers."""
    merged: dict[int, int] = {}
    for worker in workers:
        for p, off in worker.state.get("committed", {}).items():
            merged[int(p)] = max(merged.get(int(p), 0), off)
    return merged


async def wait_assigned(workers: list[WorkerProcess], partitions: int, timeout_s: float) -> None:
    """Until every partition is owned (sum of assignments), each worker owning some."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = [w.state.get("assigned", 0) for w in workers]
        if sum(counts) == partitions and all(counts):
            return
        if not all(w.alive for w in workers):
            raise RuntimeError("a worker process exited during start")
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers own {counts} of {partitions} partitions")
        await asyncio.sleep(0.01)

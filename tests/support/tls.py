"""TLS for the tests: certificates made per session, and a TLS terminator in front of Tansu.

Tansu 0.6.0 cannot serve TLS itself (its CLI refuses ``--cert`` with ``--key``, and
``--cert`` alone leaves the listener in plaintext; ../shared/SERVERS.md), so the tests
put a small asyncio TLS terminator in front of it: clients speak TLS to the proxy, the
proxy pipes plaintext to the broker, and the broker advertises the proxy's address
(``--advertised-listener-url tcp://localhost:PROXYPORT``) so every metadata answer
sends clients back through TLS.

The proxy runs on its own thread and event loop: librdkafka and the CLI's runners
block the test's loop, and the proxy must keep serving while they do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from event_spine.broker.tansu import free_port

_LOG = logging.getLogger("tests.tls")
_HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path


class Authority:
    """A certificate authority that lives in a directory for one test session."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"event-spine test {name}")])
        self._subject = subject
        self._cert = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cafile = directory / f"{name}-ca.pem"
        self.cafile.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, name: str, hosts: list[str], *, client: bool = False, key_password: str | None = None
    ) -> Issued:
        """A leaf certificate for ``hosts`` (DNS names or IP addresses).

        With ``key_password`` the key file is encrypted with it (PKCS#8).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = _builder(subject, self._subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(
            cert=self.directory / f"{self.name}-{name}.pem",
            key=self.directory / f"{self.name}-{name}.key",
        )
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(key_password.encode())
                if key_password
                else serialization.NoEncryption(),
            )
        )
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )


@dataclass(frozen=True)
class Pki:
    """Everything the security tests need, made once per session."""

    ca: Authority
    server: Issued  # SAN localhost and 127.0.0.1, signed by ``ca``
    client: Issued  # for mutual TLS, signed by ``ca``
    wrong_host: Issued  # signed by ``ca`` but for another host name
    untrusted_ca: Authority  # a second CA no listener trusts
    untrusted_server: Issued  # SAN localhost, signed by ``untrusted_ca``


def make_pki(directory: Path) -> Pki:
    """A CA, its server/client/wrong-host certificates and an unrelated second CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = Authority(directory, "trusted")
    other = Authority(directory, "untrusted")
    return Pki(
        ca=ca,
        server=ca.issue("server", ["localhost", "127.0.0.1"]),
        client=ca.issue("client", [], client=True),
        wrong_host=ca.issue("wrong-host", ["not-this-host.example"]),
        untrusted_ca=other,
        untrusted_server=other.issue("server", ["localhost", "127.0.0.1"]),
    )


def server_context(pki: Pki, cert: Issued, *, require_client_cert: bool) -> ssl.SSLContext:
    """The proxy's TLS context; with ``require_client_cert`` it is a mutual-TLS listener."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca.cafile)
    return context


@dataclass
class TlsProxy:
    """Terminates TLS on ``port`` and pipes plaintext to the broker at ``upstream_port``.

    ``refusals`` keeps why each failed handshake failed: asyncio's own TLS server
    (``start_server(ssl=...)``) drops them silently, and a plain server upgraded with
    ``start_tls`` in the handler races its reader for the ClientHello (seen: handshakes
    hung under load). So connections are accepted raw and handed to
    ``connect_accepted_socket(ssl=...)``, which raises the handshake's failure here.
    """

    context: ssl.SSLContext
    upstream_port: int
    port: int = field(default_factory=free_port)
    refusals: list[str] = field(default_factory=list)
    connections: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _listener: socket.socket | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def bootstrap_servers(self) -> str:
        """What clients dial: the name in the server certificate, as advertised."""
        return f"localhost:{self.port}"

    def start(self) -> None:
        """Listen on 127.0.0.1:port on a thread of its own; returns once listening."""
        listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        listener.setblocking(False)
        self._listener = listener
        self._loop = loop = asyncio.new_event_loop()
        accepting = loop.create_task(self._accept(listener))

        def serve() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(accepting)

        self._thread = threading.Thread(
            target=serve,
            name=f"tls-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every piped connection, then end the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(cancel_all)
        if self._thread is not None:
            self._thread.join(10)
        if self._listener is not None:
            self._listener.close()
        loop.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                conn, _ = await loop.sock_accept(listener)
                self.connections += 1
                task = loop.create_task(self._handle(conn))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.context,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.refusals.append(f"{type(exc).__name__}: {exc}")
            _LOG.info("TLS proxy refused a handshake: %r", exc)
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            transport.abort()
            return
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )

    def __enter__(self) -> TlsProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.contextmanager
def tls_proxy(
    pki: Pki, upstream_port: int, cert: Issued, *, require_client_cert: bool = False
) -> Iterator[TlsProxy]:
    """A running proxy for the broker at ``upstream_port`` presenting ``cert``."""
    with TlsProxy(
        server_context(pki, cert, require_client_cert=require_client_cert), upstream_port
    ) as proxy:
        yield proxy

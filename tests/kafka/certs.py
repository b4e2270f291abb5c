"""A throwaway CA, a server certificate and a client certificate, for TLS tests.

The same authority as the security suite's (``support.tls``), with the client key
encrypted so ``ssl_key_password`` is exercised too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.tls import Authority


@dataclass(frozen=True)
class Certificates:
    """PEM files in one folder."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with ``client_key_password``
    client_key_password: str


def make_certificates(
    folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Certificates:
    """A CA, a server certificate for ``hosts`` and a client certificate, signed by it."""
    authority = Authority(folder, "kafka")
    server = authority.issue("localhost", list(hosts))
    password = "client-key-secret"
    client = authority.issue("spine-client", [], client=True, key_password=password)
    return Certificates(
        ca=authority.cafile,
        server_cert=server.cert,
        server_key=server.key,
        client_cert=client.cert,
        client_key=client.key,
        client_key_password=password,
    )

"""Session-wide secured brokers: Tansu behind a TLS terminator (server-only and mutual
TLS), terminators with an untrusted and a wrong-host certificate, and Tansu with
``--authentication`` (SASL SCRAM, no user can log in with this build)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from event_spine.broker.tansu import TansuBroker, free_port
from support.tls import Issued, Pki, TlsProxy, server_context


@dataclass(frozen=True)
class TlsEndpoint:
    """A TLS listener in front of a Tansu broker."""

    proxy: TlsProxy
    broker: TansuBroker
    pki: Pki

    @property
    def bootstrap_servers(self) -> str:
        return self.proxy.bootstrap_servers


def _secured(pki: Pki, cert: Issued, *, mutual: bool) -> Iterator[TlsEndpoint]:
    port = free_port()
    # The broker advertises the proxy, by the name its certificate lists, so every
    # metadata answer sends clients back through TLS.
    broker = TansuBroker(advertised_url=f"tcp://localhost:{port}")
    context = server_context(pki, cert, require_client_cert=mutual)
    with broker, TlsProxy(context, broker.port, port=port) as proxy:
        yield TlsEndpoint(proxy, broker, pki)


@pytest.fixture(scope="session")
def tls(pki: Pki) -> Iterator[TlsEndpoint]:
    """Tansu behind TLS with the trusted server certificate (SAN localhost, 127.0.0.1)."""
    yield from _secured(pki, pki.server, mutual=False)


@pytest.fixture(scope="session")
def mtls(pki: Pki) -> Iterator[TlsEndpoint]:
    """Tansu behind mutual TLS: clients must show a certificate the test CA signed."""
    yield from _secured(pki, pki.server, mutual=True)


@pytest.fixture(scope="session")
def untrusted_tls(pki: Pki, tls: TlsEndpoint) -> Iterator[TlsEndpoint]:
    """A TLS listener (in front of the same broker) whose certificate another CA signed."""
    context = server_context(pki, pki.untrusted_server, require_client_cert=False)
    with TlsProxy(context, tls.broker.port) as proxy:
        yield TlsEndpoint(proxy, tls.broker, pki)


@pytest.fixture(scope="session")
def wrong_host_tls(pki: Pki, tls: TlsEndpoint) -> Iterator[TlsEndpoint]:
    """A TLS listener whose certificate (trusted CA) names another host."""
    context = server_context(pki, pki.wrong_host, require_client_cert=False)
    with TlsProxy(context, tls.broker.port) as proxy:
        yield TlsEndpoint(proxy, tls.broker, pki)


@pytest.fixture(scope="session")
def sasl_broker() -> Iterator[TansuBroker]:
    """Tansu demanding SASL SCRAM: every login is refused (no user store in this build)."""
    with TansuBroker(authentication=True) as running:
        yield running
